import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError } from "../../src/util/errors.ts";
import { TINY_VOCAB_SIZE, tinyChatTokenizer, tinyTokenizerFiles } from "../../src/tokenizer/tiny.ts";
import { type ChatMessage, loadTokenizer } from "../../src/tokenizer/tokenizer.ts";

async function writeFiles(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "maieutic_tok_" });
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(join(dir, name), text);
  return dir;
}

Deno.test("tiny tokenizer: exactly TINY_VOCAB_SIZE distinct tokens in the Gemma id layout", () => {
  const files = tinyTokenizerFiles();
  assert.deepEqual(Object.keys(files).sort(), [
    "generation_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
  ]);
  const tj = JSON.parse(files["tokenizer.json"]);
  const vocab = tj.model.vocab as Record<string, number>;
  const ids = Object.values(vocab).sort((a, b) => a - b);
  assert.deepEqual(TINY_VOCAB_SIZE, 1024);
  assert.deepEqual(ids.length, TINY_VOCAB_SIZE);
  assert.deepEqual(ids, Array.from({ length: TINY_VOCAB_SIZE }, (_, i) => i));
  const byId = Object.fromEntries(Object.entries(vocab).map(([t, i]) => [i, t]));
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => byId[i]), [
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<start_of_turn>",
    "<end_of_turn>",
  ]);
  assert.deepEqual(byId[6], "<0x00>");
  assert.deepEqual(byId[6 + 0x0a], "<0x0A>");
  assert.deepEqual(byId[261], "<0xFF>");
  assert(tj.model.byte_fallback);
  for (
    const c of [
      "あ",
      "ア",
      "ー",
      "。",
      "、",
      "「",
      "？",
      "！",
      "　",
      "考",
      "定",
      "義",
      "矛",
      "盾",
      "▁",
      "\n",
      "A",
      "~",
    ]
  ) {
    assert(c in vocab, `missing ${JSON.stringify(c)}`);
  }
  for (const [a, b] of tj.model.merges as [string, string][]) {
    assert(a in vocab && b in vocab && a + b in vocab);
  }
  // Deterministic: the same bytes every call.
  assert.deepEqual(tinyTokenizerFiles(), files);
  const gen = JSON.parse(files["generation_config.json"]);
  assert.deepEqual(gen.eos_token_id, [1, 5]);
  const cfg = JSON.parse(files["tokenizer_config.json"]);
  assert.deepEqual(cfg.add_bos_token, true);
  assert.deepEqual([cfg.bos_token, cfg.eos_token, cfg.pad_token], ["<bos>", "<eos>", "<pad>"]);
});

Deno.test("loadTokenizer on the written tiny files: ids, stop ids, vocab size", async () => {
  const dir = await writeFiles(tinyTokenizerFiles());
  try {
    const tok = await loadTokenizer(dir);
    assert.deepEqual([tok.padId, tok.eosId, tok.bosId, tok.endOfTurnId], [0, 1, 2, 5]);
    assert.deepEqual(tok.stopIds.sort(), [1, 5]);
    assert.deepEqual(tok.vocabSize, TINY_VOCAB_SIZE);
    assert.deepEqual(tok.addBosToken, true);
    assert.deepEqual(tok.tokenToId("<start_of_turn>"), 4);
    assert.deepEqual(tok.idToToken(5), "<end_of_turn>");
    const mem = tinyChatTokenizer();
    const s = "こんにちは、What is the 意味ですか？";
    assert.deepEqual(tok.encode(s), mem.encode(s));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encode adds no special tokens; decode inverts encode (Japanese, English, bytes, spaces)", () => {
  const tok = tinyChatTokenizer();
  for (
    const s of [
      "正義とは何ですか？",
      "  leading and trailing spaces  ",
      "full-width　space、「括弧」と…記号！",
      "emoji 😀 and rare kanji 鬱 fall back to bytes",
      "line one\nline two\n\n",
      "What's the point, really?  Isn't it obvious.",
    ]
  ) {
    const ids = tok.encode(s);
    assert(!ids.includes(tok.bosId), "encode must not add <bos>");
    assert.deepEqual(tok.decode(ids), s);
  }
  assert.deepEqual(tok.encode(""), []);
  assert.deepEqual(tok.decode([]), "");
  // Rare characters go through byte fallback, never <unk>.
  assert(!tok.encode("鬱😀").includes(3));
  assert.deepEqual(tok.encode("<bos><start_of_turn>user\n"), [2, 4, ...tok.encode("user\n")]);
});

Deno.test("renderChat uses the model's Gemma-2 template (layout, trim, generation prompt, roles)", () => {
  const tok = tinyChatTokenizer();
  const msgs: ChatMessage[] = [
    { role: "user", content: "  質問です。 " },
    { role: "model", content: "\u3000どう思いますか？\n" },
  ];
  assert.deepEqual(
    tok.renderChat(msgs, false),
    "<bos><start_of_turn>user\n質問です。<end_of_turn>\n<start_of_turn>model\nどう思いますか？<end_of_turn>\n",
  );
  assert.deepEqual(
    tok.renderChat(msgs.slice(0, 1), true),
    "<bos><start_of_turn>user\n質問です。<end_of_turn>\n<start_of_turn>model\n",
  );
  assert.deepEqual(tok.renderChat([], false), "<bos>");
  // The template's own rules: no system role, alternation.
  assert.throws(
    () => tok.renderChat([{ role: "system" as "user", content: "x" }], false),
    /System role not supported/,
  );
  assert.throws(
    () => tok.renderChat([{ role: "user", content: "a" }, { role: "user", content: "b" }], false),
    /alternate/,
  );
});

Deno.test("loadTokenizer: missing files and a missing chat template are UsageErrors; chat_template.jinja works", async () => {
  const missing = await Deno.makeTempDir({ prefix: "maieutic_tok_" });
  try {
    const e = await loadTokenizer(missing).catch((x) => x);
    assert(e instanceof UsageError && e.message.includes("tokenizer.json"), String(e));
  } finally {
    await Deno.remove(missing, { recursive: true });
  }
  const files = tinyTokenizerFiles();
  const cfg = JSON.parse(files["tokenizer_config.json"]);
  const template = cfg.chat_template;
  delete cfg.chat_template;
  const noTemplate = await writeFiles({ ...files, "tokenizer_config.json": JSON.stringify(cfg) });
  try {
    const e = await loadTokenizer(noTemplate).catch((x) => x);
    assert(e instanceof UsageError && e.message.includes("chat_template"), String(e));
    await Deno.writeTextFile(join(noTemplate, "chat_template.jinja"), template);
    const tok = await loadTokenizer(noTemplate);
    assert.deepEqual(
      tok.renderChat([{ role: "user", content: "a" }], true),
      "<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\n",
    );
  } finally {
    await Deno.remove(noTemplate, { recursive: true });
  }
});
