/**
 * Validating the Socratic figures against labelled replies (data/socratic_eval/labelled.jsonl, issue #15):
 * the labelled record schema, AUROC of good replies against another class, and its bootstrap lower bound
 * resampled by CONTEXT (replies of one context are not independent: they share the user turn).
 */
import { z } from "zod";
import { seededRandom } from "../util/random.ts";

export const LABELS = ["good", "lecture", "pseudo", "degenerate"] as const;
export type Label = (typeof LABELS)[number];

/** The label fields of a labelled record; the rest of the record is an ordinary chat record. */
export const LabelFieldsSchema = z.object({
  /** `<context_id>/<n>`, unique in the file. */
  id: z.string().min(1),
  /** Replies to the same context share it; the tuning/test split is by context. */
  context_id: z.string().min(1),
  split: z.enum(["tune", "test"]),
  label: z.enum(LABELS),
  /** e.g. definition, counterexample (good); explain, list (lecture); closed, leading (pseudo); loop (degenerate). */
  subtype: z.string().min(1),
});
export type LabelFields = z.infer<typeof LabelFieldsSchema>;

/**
 * P(score of a random positive > score of a random negative), ties counted half (the Mann-Whitney U / n·m).
 * NaN when either side is empty.
 */
export function auroc(positives: readonly number[], negatives: readonly number[]): number {
  if (!positives.length || !negatives.length) return NaN;
  // Rank-based: sort all values once, average ranks over ties.
  const all = [
    ...positives.map((v) => ({ v, p: true })),
    ...negatives.map((v) => ({ v, p: false })),
  ].sort((a, b) => a.v - b.v);
  let rankSumPos = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j + 1 < all.length && all[j + 1].v === all[i].v) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (all[k].p) rankSumPos += rank;
    i = j + 1;
  }
  const n = positives.length, m = negatives.length;
  return (rankSumPos - (n * (n + 1)) / 2) / (n * m);
}

export interface Scored {
  context: string;
  label: Label;
  score: number;
}

/** AUROC of `good` against `negative` over the scored replies. */
export function aurocOf(rows: readonly Scored[], negative: Label): number {
  return auroc(
    rows.filter((r) => r.label === "good").map((r) => r.score),
    rows.filter((r) => r.label === negative).map((r) => r.score),
  );
}

/**
 * The `alpha` quantile (e.g. 0.05: a one-sided 95% lower bound) of the AUROC of good vs `negative` over
 * `rounds` bootstrap resamples of the CONTEXTS (with replacement; each drawn context brings all its replies),
 * with a fixed seed so the figure is reproducible. Resamples without a good or a negative reply are redrawn.
 */
export function bootstrapLowerBound(
  rows: readonly Scored[],
  negative: Label,
  { rounds = 1000, alpha = 0.05, seed = 15 }: { rounds?: number; alpha?: number; seed?: number } = {},
): number {
  const byContext = new Map<string, Scored[]>();
  for (const r of rows) byContext.set(r.context, [...(byContext.get(r.context) ?? []), r]);
  const contexts = [...byContext.keys()].sort();
  const rand = seededRandom(seed, 0x62737472, 0); // "bstr"
  const values: number[] = [];
  for (let tries = 0; values.length < rounds && tries < rounds * 10; tries++) {
    const pos: number[] = [], neg: number[] = [];
    for (let i = 0; i < contexts.length; i++) {
      const c = contexts[Math.floor(rand() * contexts.length)];
      for (const r of byContext.get(c)!) {
        if (r.label === "good") pos.push(r.score);
        else if (r.label === negative) neg.push(r.score);
      }
    }
    if (pos.length && neg.length) values.push(auroc(pos, neg));
  }
  if (!values.length) return NaN;
  values.sort((a, b) => a - b);
  return values[Math.min(values.length - 1, Math.floor(alpha * values.length))];
}
