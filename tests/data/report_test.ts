import assert from "node:assert/strict";
import { loadDialogues, modelVersion } from "../../src/data/load.ts";
import { dataReport, TARGET_CLOSE, TARGET_OPEN } from "../../src/data/report.ts";
import { splitDialogues } from "../../src/data/split.ts";
import { tokenizeDialogues } from "../../src/data/tokenize.ts";
import { makeBatches } from "../../src/data/batch.ts";
import { epochOrder } from "../../src/data/split.ts";
import { tinyChatTokenizer } from "../../src/tokenizer/tiny.ts";
import { BUNDLED, targetSpans } from "./helpers.ts";

const tok = tinyChatTokenizer();

Deno.test("the bundled 1gouki.json loads, tokenizes with exact label spans, and its report builds", async () => {
  const ds = await loadDialogues(BUNDLED);
  assert.ok(ds.length >= 10, `${ds.length} dialogues`);
  for (const d of ds) {
    assert.equal(d.turns[0].role, "user");
    assert.equal(d.turns[d.turns.length - 1].role, "model");
  }
  const maxLen = 512;
  const { examples, stats } = tokenizeDialogues(tok, ds, maxLen);
  assert.ok(examples.length >= ds.length);
  assert.equal(stats.boundaryMerges, 0);
  for (const e of examples) {
    assert.ok(e.inputIds.length <= maxLen);
    assert.equal(e.inputIds[0], tok.bosId);
    const turns = ds[e.dialogueIndex].turns.slice(e.turnStart, e.turnEnd);
    const expected = turns.filter((t) => t.role === "model").map((t) => t.content.trim() + "<end_of_turn>");
    if (!e.truncated) assert.deepEqual(targetSpans(tok, e), expected);
  }
  const split = splitDialogues(ds.length, 0.1, 42);
  const report = dataReport({ file: BUNDLED, dialogues: ds, examples, stats, tokenizer: tok, maxLen, split });
  const j = report.json;
  assert.equal(j.model_version, "1gouki");
  assert.equal(j.dialogues, ds.length);
  assert.equal(j.examples, examples.length);
  assert.equal(j.length_histogram.reduce((s, h) => s + h.count, 0), examples.length);
  assert.equal(j.train!.examples + j.eval!.examples, examples.length);
  assert.equal(j.eval!.dialogues, split.eval.length);
  assert.ok(j.tokens.targets > 0 && j.tokens.targets < j.tokens.total);
  assert.ok(j.first_example!.marked.includes(TARGET_OPEN) && j.first_example!.marked.includes(TARGET_CLOSE));
  assert.deepEqual(JSON.parse(JSON.stringify(j)), j);
  for (const s of ["1gouki", `${ds.length} dialogues`, "length histogram", "first example", TARGET_OPEN]) {
    assert.ok(report.text.includes(s), `report text lacks ${s}:\n${report.text}`);
  }
  // And it batches.
  const train = examples.filter((e) => split.train.includes(e.dialogueIndex));
  const batches = makeBatches(train, epochOrder(train.length, 42, 0), 4, tok.padId);
  assert.equal(batches.reduce((s, b) => s + b.rows, 0), train.length);
  assert.ok(batches.every((b) => b.targetTokens > 0));
});

Deno.test("report marks exactly the target spans and reports splits/cuts and a separate eval file", async () => {
  const ds = await loadDialogues("data/dialogue/processed/sample_en.jsonl");
  const { examples, stats } = tokenizeDialogues(tok, ds, 48);
  assert.ok(stats.cutExchanges + stats.splitDialogues > 0);
  const r = dataReport({
    file: "data/dialogue/processed/sample_en.jsonl",
    dialogues: ds,
    examples,
    stats,
    tokenizer: tok,
    maxLen: 48,
    evalFile: { file: "held_out.jsonl", dialogues: 1, examples: examples.slice(0, 1) },
  });
  assert.equal(r.json.model_version, modelVersion("sample_en.jsonl"));
  assert.equal(r.json.split_dialogues, stats.splitDialogues);
  assert.equal(r.json.cut_exchanges, stats.cutExchanges);
  assert.equal(r.json.eval!.file, "held_out.jsonl");
  const marked = r.json.first_example!.marked;
  const inside = [...marked.matchAll(/⟦([\s\S]*?)⟧/g)].map((m) => m[1]);
  assert.deepEqual(inside, targetSpans(tok, examples[0]));
  assert.equal(
    marked.replaceAll(TARGET_OPEN, "").replaceAll(TARGET_CLOSE, ""),
    tok.decode(examples[0].inputIds),
  );
});
