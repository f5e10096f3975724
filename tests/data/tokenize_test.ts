import assert from "node:assert/strict";
import { UsageError } from "../../src/util/errors.ts";
import { parseDialogues } from "../../src/data/load.ts";
import type { Dialogue } from "../../src/data/schema.ts";
import {
  countTargets,
  newTokenizeStats,
  tokenizeDialogue,
  tokenizeDialogues,
} from "../../src/data/tokenize.ts";
import { tinyChatTokenizer, tinyTokenizerFiles } from "../../src/tokenizer/tiny.ts";
import { createChatTokenizer } from "../../src/tokenizer/tokenizer.ts";
import { targetSpans } from "./helpers.ts";

const tok = tinyChatTokenizer();
const EOT = "<end_of_turn>";

function dialogue(pairs: [string, string][], index = 0): Dialogue {
  return {
    index,
    format: "chat",
    turns: pairs.flatMap(([u, m], k) => [
      { role: "user" as const, content: u, field: `messages[${2 * k}].content` },
      { role: "model" as const, content: m, field: `messages[${2 * k + 1}].content` },
    ]),
  };
}

const TRICKY: [string, string][] = [
  ["  正義とは何ですか？  ", "\u3000あなたは「正義」をどう定義しますか？\u3000"],
  ["Justice is giving everyone what they deserve. ", "  And who decides what someone deserves?  \n"],
  ["たぶん…法律です！", "法律が間違っている場合は、どうなりますか？（例を一つ挙げてみてください）"],
  ["\tHmm.\n", "What's an example of a law you'd call unfair, and why?"],
  ["絵文字😀も使えますか", "もちろんです。ところで、その絵文字は何を表していますか？😀"],
];

Deno.test("label spans decode exactly to the model turns (trimmed) plus <end_of_turn>; one <bos>", () => {
  const d = dialogue(TRICKY);
  const ex = tokenizeDialogue(tok, d, 4096);
  assert.equal(ex.length, 1);
  const e = ex[0];
  assert.equal(e.inputIds.length, e.labels.length);
  assert.equal(e.inputIds[0], tok.bosId);
  assert.equal(e.inputIds.filter((x) => x === tok.bosId).length, 1);
  assert.equal(e.labels[0], -100);
  assert.deepEqual(targetSpans(tok, e), TRICKY.map(([, m]) => m.trim() + EOT));
  // The input is exactly the model's template rendering, encoded.
  assert.equal(tok.decode(e.inputIds), tok.renderChat(d.turns, false));
  // Every <end_of_turn> of a model turn is a target, user ones are not.
  const eotTargets = e.inputIds.filter((x, i) => x === tok.endOfTurnId && e.labels[i] !== -100).length;
  assert.equal(eotTargets, TRICKY.length);
  assert.equal(e.inputIds.filter((x) => x === tok.endOfTurnId).length, 2 * TRICKY.length);
  assert.equal(countTargets(e.labels), e.labels.filter((l) => l !== -100).length);
});

Deno.test("splitting: long dialogues become windows at exchange boundaries, each <bos> + a user turn", () => {
  const pairs: [string, string][] = Array.from({ length: 9 }, (_, k) => [
    `質問${k}：それはどういう意味ですか？`.repeat(1 + (k % 3)),
    `答え${k}: What do you mean by that, exactly?`.repeat(1 + ((k + 1) % 2)),
  ]);
  const d = dialogue(pairs, 7);
  const whole = tokenizeDialogue(tok, d, 100000)[0];
  const maxLen = Math.ceil(whole.inputIds.length / 3);
  const stats = newTokenizeStats();
  const ex = tokenizeDialogue(tok, d, maxLen, stats);
  assert.ok(ex.length >= 3, `expected >= 3 windows, got ${ex.length}`);
  assert.equal(stats.splitDialogues, 1);
  assert.equal(stats.cutExchanges, 0);
  assert.equal(stats.examples, ex.length);
  let nextTurn = 0;
  const spans: string[] = [];
  ex.forEach((e, w) => {
    assert.ok(e.inputIds.length <= maxLen);
    assert.equal(e.dialogueIndex, 7);
    assert.deepEqual([e.window, e.windows, e.truncated], [w, ex.length, false]);
    assert.equal(e.turnStart, nextTurn);
    assert.equal(e.turnStart % 2, 0);
    nextTurn = e.turnEnd;
    // Each window is exactly what the template renders for its own turns.
    const turns = d.turns.slice(e.turnStart, e.turnEnd);
    assert.deepEqual(e.inputIds, tok.encode(tok.renderChat(turns, false)));
    assert.ok(tok.decode(e.inputIds).startsWith("<bos><start_of_turn>user\n"));
    assert.equal(e.inputIds.filter((x) => x === tok.bosId).length, 1);
    spans.push(...targetSpans(tok, e));
  });
  assert.equal(nextTurn, d.turns.length);
  assert.deepEqual(spans, pairs.map(([, m]) => m.trim() + EOT));
  // A window is as long as fits: adding the next exchange would pass maxLen.
  for (let w = 0; w + 1 < ex.length; w++) {
    const turns = d.turns.slice(ex[w].turnStart, ex[w].turnEnd + 2);
    assert.ok(tok.encode(tok.renderChat(turns, false)).length > maxLen);
  }
});

Deno.test("cutting: a single exchange longer than maxLen is cut at the right; no target left -> dropped", () => {
  const longAnswer = "それは本当にそうでしょうか？".repeat(40);
  const d = dialogue([["短い質問です。", longAnswer], ["次は？", "あなたはどう考えますか？"]]);
  const stats = newTokenizeStats();
  const ex = tokenizeDialogue(tok, d, 64, stats);
  assert.equal(ex.length, 2);
  assert.equal(ex[0].truncated, true);
  assert.equal(ex[0].inputIds.length, 64);
  const full = tok.encode(tok.renderChat(d.turns.slice(0, 2), false));
  assert.deepEqual(ex[0].inputIds, full.slice(0, 64));
  const span = targetSpans(tok, ex[0]);
  assert.equal(span.length, 1);
  assert.ok(longAnswer.startsWith(span[0].replace(/\uFFFD+$/, "")));
  assert.equal(ex[1].truncated, false);
  assert.deepEqual(targetSpans(tok, ex[1]), ["あなたはどう考えますか？" + EOT]);
  assert.equal(stats.cutExchanges, 1);
  assert.equal(stats.splitDialogues, 1);

  // The user turn alone fills the window: nothing to learn, dropped and counted.
  const s2 = newTokenizeStats();
  const ex2 = tokenizeDialogue(tok, dialogue([["長い".repeat(200), "はい。"], ["ok?", "Why?"]]), 48, s2);
  assert.equal(ex2.length, 1);
  assert.equal(s2.droppedExchanges, 1);
  assert.deepEqual(targetSpans(tok, ex2[0]), ["Why?" + EOT]);
});

Deno.test("a trailing user turn is left out and counted; special tokens in text are a UsageError", () => {
  const d = dialogue([["a", "b"]]);
  d.turns.push({ role: "user", content: "dangling", field: "messages[2].content" });
  const stats = newTokenizeStats();
  const ex = tokenizeDialogue(tok, d, 512, stats);
  assert.equal(stats.droppedTrailingUserTurns, 1);
  assert.equal(ex[0].turnEnd, 2);
  assert.ok(!tok.decode(ex[0].inputIds).includes("dangling"));

  const bad = dialogue([["hello <start_of_turn>", "b"]], 3);
  assert.throws(
    () => tokenizeDialogue(tok, bad, 512),
    (e: unknown) =>
      e instanceof UsageError && e.message.includes("record 3") && e.message.includes("messages[0].content"),
  );
});

Deno.test("a token merged across the prompt/answer boundary is kept as a target and counted", () => {
  // A tokenizer variant whose merges join the template's "\n" with the first character of the answer.
  const files = tinyTokenizerFiles();
  const tj = JSON.parse(files["tokenizer.json"]);
  const vocab = tj.model.vocab as Record<string, number>;
  const victim = Object.entries(vocab).find(([t]) => t === "ー")!;
  delete vocab[victim[0]];
  vocab["\nな"] = victim[1];
  tj.model.merges = [["\n", "な"], ...tj.model.merges];
  const merged = createChatTokenizer({ tokenizer: tj, config: JSON.parse(files["tokenizer_config.json"]) });
  const stats = newTokenizeStats();
  const ex = tokenizeDialogue(merged, dialogue([["質問", "なぜですか？"], ["q", "だから？"]]), 512, stats);
  assert.equal(stats.boundaryMerges, 1);
  assert.deepEqual(targetSpans(merged, ex[0]), ["\nなぜですか？" + EOT, "だから？" + EOT]);
});

Deno.test("tokenizeDialogues accumulates stats over a file and keeps dialogue indices", () => {
  const ds = parseDialogues(
    JSON.stringify([
      { messages: [{ role: "user", content: "一" }, { role: "assistant", content: "二？" }] },
      { conversations: [{ from: "human", value: "three" }, { from: "gpt", value: "four?" }] },
      { input: "五", output: "六？" },
    ]),
    "x.json",
  );
  const { examples, stats } = tokenizeDialogues(tok, ds, 512, [2, 0]);
  assert.deepEqual(examples.map((e) => e.dialogueIndex), [2, 0]);
  assert.equal(stats.dialogues, 2);
  assert.equal(stats.examples, 2);
});
