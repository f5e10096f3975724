/**
 * The Socratic figures measured on the project's labelled set (data/socratic_eval/labelled.jsonl, rules in
 * data/socratic_eval/README.md). The rules of src/eval/metrics.ts were tuned on the TUNING half only; the
 * targets below are asserted on the TEST half (issue #15): socratic_score AUROC of good replies against each
 * other class >= 0.90, its bootstrap lower bound (contexts resampled, fixed seed) >= 0.80, and no per-reply
 * figure inverted (good > lecture AUROC >= 0.5).
 */
import assert from "node:assert/strict";
import { REPLY_FIGURES, scoreReply } from "../../src/eval/metrics.ts";
import { charNgrams } from "../../src/eval/japanese.ts";
import { parseScoreRecords, type ScoreRecord } from "../../src/eval/score_file.ts";
import {
  auroc,
  aurocOf,
  bootstrapLowerBound,
  type Label,
  LABELS,
  type Scored,
} from "../../src/eval/validation.ts";

const SET = new URL("../../data/socratic_eval/labelled.jsonl", import.meta.url);
const BUNDLED = new URL("../../data/dialogue/processed/1gouki.json", import.meta.url);

/** The labelled records, read through the same loader as `maieutic score`. */
const records = (): (ScoreRecord & { label: NonNullable<ScoreRecord["label"]> })[] => {
  const recs = parseScoreRecords(Deno.readFileSync(SET), "labelled.jsonl");
  for (const r of recs) assert.ok(r.label, `record ${r.index} has no label fields`);
  return recs as (ScoreRecord & { label: NonNullable<ScoreRecord["label"]> })[];
};

const half = (split: "tune" | "test") => records().filter((r) => r.label.split === split);
const NEGATIVES = LABELS.filter((l) => l !== "good") as Label[];

Deno.test("auroc: ranks with ties counted half; bootstrap bound is seeded and below the point estimate", () => {
  assert.equal(auroc([3, 4], [1, 2]), 1);
  assert.equal(auroc([1, 2], [3, 4]), 0);
  assert.equal(auroc([1, 1], [1, 1]), 0.5);
  assert.equal(auroc([2, 0], [1]), 0.5);
  assert.ok(Number.isNaN(auroc([], [1])));
  const rows: Scored[] = [];
  for (let c = 0; c < 12; c++) {
    rows.push({ context: `c${c}`, label: "good", score: 0.5 + c / 40 });
    rows.push({ context: `c${c}`, label: "lecture", score: 0.3 + c / 30 });
  }
  const point = aurocOf(rows, "lecture");
  const a = bootstrapLowerBound(rows, "lecture", { rounds: 300 });
  assert.equal(a, bootstrapLowerBound(rows, "lecture", { rounds: 300 }));
  assert.ok(a < point && a > 0.3, `bound ${a} vs point ${point}`);
});

Deno.test("labelled set: >= 40 contexts, >= 200 replies over 4 classes with subtypes, split by context", () => {
  const recs = records();
  assert.ok(recs.length >= 200, `${recs.length} replies`);
  const contexts = new Map<string, Set<string>>();
  for (const r of recs) {
    contexts.set(r.label.context_id, (contexts.get(r.label.context_id) ?? new Set()).add(r.label.split));
  }
  assert.ok(contexts.size >= 40, `${contexts.size} contexts`);
  for (const [c, splits] of contexts) assert.equal(splits.size, 1, `context ${c} is in both halves`);
  for (const split of ["tune", "test"]) {
    const n = [...contexts.values()].filter((s) => s.has(split)).length;
    assert.ok(n >= 20, `${split}: ${n} contexts`);
  }
  for (const l of LABELS) {
    const subtypes = new Set(recs.filter((r) => r.label.label === l).map((r) => r.label.subtype));
    assert.ok(subtypes.size >= 4, `${l}: subtypes ${[...subtypes]}`);
  }
  // Single- and multi-turn contexts; ids unique.
  assert.ok(
    recs.some((r) => r.sample.context.length === 1) && recs.some((r) => r.sample.context.length >= 3),
  );
  assert.equal(new Set(recs.map((r) => r.label.id)).size, recs.length);
});

Deno.test("labelled set: written apart from the training data (no turn copied or near-copied from 1gouki.json)", () => {
  const bundled: { messages: { content: string }[] }[] = JSON.parse(Deno.readTextFileSync(BUNDLED));
  const train = bundled.flatMap((d) => d.messages.map((m) => m.content));
  const exact = new Set(train.map((t) => t.trim()));
  const trainGrams = train.map((u) => charNgrams(u, 3));
  const texts = new Set(
    records().flatMap((r) => [r.sample.generated, ...r.sample.context.map((t) => t.content)]),
  );
  for (const t of texts) {
    if (!t.trim()) continue;
    assert.ok(!exact.has(t.trim()), `a training turn: ${t}`);
    // Same topics are welcome, same sentences are not: at most 70% of a text's 3-grams in one training turn.
    const mine = charNgrams(t, 3); // as containment() in src/eval/metrics.ts: 3-grams inside word runs
    if (mine.size >= 10) {
      const worst = Math.max(...trainGrams.map((u) => [...mine].filter((g) => u.has(g)).length / mine.size));
      assert.ok(worst < 0.7, `near-copy of a training turn (${worst.toFixed(2)}): ${t}`);
    }
  }
});

const scored = (recs: ReturnType<typeof records>, figure: (typeof REPLY_FIGURES)[number]): Scored[] =>
  recs.map((r) => ({
    context: r.label.context_id,
    label: r.label.label,
    score: scoreReply(r.sample).figures[figure],
  }));

Deno.test("test half: socratic_score separates good replies from each class (AUROC >= 0.90, bound >= 0.80)", () => {
  const rows = scored(half("test"), "socratic_score");
  for (const neg of NEGATIVES) {
    const a = aurocOf(rows, neg);
    const lb = bootstrapLowerBound(rows, neg, { rounds: 1000, alpha: 0.05, seed: 15 });
    assert.ok(a >= 0.9, `good vs ${neg}: AUROC ${a.toFixed(3)}`);
    assert.ok(lb >= 0.8, `good vs ${neg}: bootstrap 5% bound ${lb.toFixed(3)}`);
  }
});

Deno.test("test half: no reported per-reply figure is inverted (good > lecture AUROC >= 0.5)", () => {
  const recs = half("test");
  for (const f of REPLY_FIGURES) {
    const a = aurocOf(scored(recs, f), "lecture");
    assert.ok(a >= 0.5, `${f}: good vs lecture AUROC ${a.toFixed(3)}`);
  }
});

Deno.test("labels agree with the figures' own reasons: degenerate replies fail the gate, good ones pass", () => {
  // Checked on both halves: a label rule that the gate contradicts would be a labelling or a rule error.
  for (const r of records()) {
    const s = scoreReply(r.sample);
    if (r.label.label === "degenerate") {
      assert.notEqual(s.degenerate, null, `record ${r.index} ${r.label.id}`);
    }
    if (r.label.label === "good") {
      assert.equal(s.degenerate, null, `record ${r.index} ${r.label.id}: ${s.degenerate}`);
    }
  }
});
