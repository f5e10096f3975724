/**
 * The report of `maieutic score` (issue #15): per-record figures, a summary per figure (mean and quantiles),
 * the socratic_score histogram, the question forms and degenerate reasons counted apart, the eval_* rates, and,
 * for a labelled file, the AUROC of good replies against each other class. `formatScoreReport` is the
 * human-readable table with the lowest-scoring replies.
 */
import {
  DEGENERATE_REASONS,
  QUESTION_FORMS,
  REPLY_FIGURES,
  type ReplyFigure,
  scoreReply,
  scoreSamplesDetailed,
  type SocraticMetrics,
} from "./metrics.ts";
import type { ScoreRecord } from "./score_file.ts";
import { aurocOf, LABELS, type Scored } from "./validation.ts";

export interface RecordResult {
  index: number;
  /** The model turn scored (its index among the dialogue's turns). */
  turn: number;
  metrics: Record<string, number>;
  degenerate: string | null;
  question_form: string;
  telling: number;
  /** socratic_score of the record's gold `reference`, when it has one. */
  reference_socratic_score?: number;
  label?: string;
  subtype?: string;
  split?: string;
}

export interface FigureSummary {
  mean: number;
  min: number;
  p10: number;
  median: number;
  p90: number;
  max: number;
}

export interface ScoreSummary {
  file: string;
  replies: number;
  figures: Record<string, FigureSummary>;
  /** socratic_score in ten bins [0,0.1), ..., [0.9,1]. */
  socratic_score_histogram: { from: number; to: number; count: number }[];
  question_forms: Record<string, number>;
  degenerate: Record<string, number>;
  /** The eval_* aggregates a training run logs, over these replies. */
  rates: SocraticMetrics;
  /** Labelled files only. */
  labels?: {
    counts: Record<string, number>;
    mean_socratic_score: Record<string, number>;
    /** AUROC of socratic_score, good against each other class (all records, and per split when present). */
    auroc: Record<string, Record<string, number>>;
  };
}

export interface ScoreReport {
  records: RecordResult[];
  summary: ScoreSummary;
}

/** Linear-interpolated quantile of sorted values. */
function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return 0;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function summarize(xs: number[]): FigureSummary {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : 0;
  return {
    mean,
    min: s[0] ?? 0,
    p10: quantile(s, 0.1),
    median: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    max: s.at(-1) ?? 0,
  };
}

/** Scores every record (see the file comment). */
export function scoreRecords(file: string, recs: readonly ScoreRecord[]): ScoreReport {
  const detailed = scoreSamplesDetailed(recs.map((r) => r.sample));
  const records: RecordResult[] = recs.map((r, i) => {
    const s = detailed.replies[i];
    const metrics: Record<string, number> = { ...s.figures };
    if (s.response_consistency !== null) metrics.response_consistency = s.response_consistency;
    if (s.distinct_2 !== null) metrics.distinct_2 = s.distinct_2;
    const ref = r.sample.reference;
    return {
      index: r.index,
      turn: r.turn,
      metrics,
      degenerate: s.degenerate,
      question_form: s.question_form,
      telling: s.telling,
      ...(ref !== undefined
        ? {
          reference_socratic_score:
            scoreReply({ context: r.sample.context, generated: ref }).figures.socratic_score,
        }
        : {}),
      ...(r.label ? { label: r.label.label, subtype: r.label.subtype, split: r.label.split } : {}),
    };
  });
  const figures: Record<string, FigureSummary> = {};
  const names: string[] = [...REPLY_FIGURES];
  if (records.some((r) => "response_consistency" in r.metrics)) {
    names.push("response_consistency", "distinct_2");
  }
  for (const k of names) {
    figures[k] = summarize(records.map((r) => r.metrics[k]).filter((x) => x !== undefined));
  }
  const histogram = Array.from({ length: 10 }, (_, b) => ({ from: b / 10, to: (b + 1) / 10, count: 0 }));
  for (const r of records) histogram[Math.min(9, Math.floor(r.metrics.socratic_score * 10))].count++;
  const count = (key: (r: RecordResult) => string, keys: readonly string[]) =>
    Object.fromEntries(keys.map((k) => [k, records.filter((r) => key(r) === k).length]));
  const summary: ScoreSummary = {
    file,
    replies: records.length,
    figures,
    socratic_score_histogram: histogram,
    question_forms: count((r) => (r.degenerate === null ? r.question_form : "degenerate"), [
      ...QUESTION_FORMS,
      "degenerate",
    ]),
    degenerate: count((r) => r.degenerate ?? "none", ["none", ...DEGENERATE_REASONS]),
    rates: detailed.metrics,
  };
  const labelled = records.filter((r) => r.label !== undefined);
  if (labelled.length) {
    const rows = (split?: string): Scored[] =>
      recs.flatMap((r, i) =>
        r.label && (split === undefined || r.label.split === split)
          ? [{ context: r.label.context_id, label: r.label.label, score: records[i].metrics.socratic_score }]
          : []
      );
    const aurocs = (rs: Scored[]) =>
      Object.fromEntries(LABELS.filter((l) => l !== "good").map((l) => [l, aurocOf(rs, l)]));
    const auroc: Record<string, Record<string, number>> = { all: aurocs(rows()) };
    for (const split of ["tune", "test"]) {
      if (labelled.some((r) => r.split === split)) auroc[split] = aurocs(rows(split));
    }
    const mean = (l: string) => {
      const xs = labelled.filter((r) => r.label === l).map((r) => r.metrics.socratic_score);
      return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
    };
    summary.labels = {
      counts: count((r) => r.label ?? "", LABELS),
      mean_socratic_score: Object.fromEntries(LABELS.map((l) => [l, mean(l)])),
      auroc,
    };
  }
  return { records, summary };
}

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : "  -  ");

/** One line of a reply for the table: newlines shown as ⏎, long replies shortened. */
function preview(text: string, max = 70): string {
  const t = text.replace(/\r?\n/g, "⏎");
  if (!t.trim()) return JSON.stringify(text);
  return [...t].length > max ? [...t].slice(0, max).join("") + "…" : t;
}

/** The default output: summary table per figure, forms and reasons, histogram, lowest-scoring replies. */
export function formatScoreReport(
  report: ScoreReport,
  replies: readonly string[],
  lowest = 5,
): string {
  const s = report.summary;
  const lines = [`scored ${s.replies} replies of ${s.file}`, ""];
  lines.push(
    `  ${"figure".padEnd(22)} ${
      ["mean", "min", "p10", "median", "p90", "max"].map((h) => h.padStart(6)).join(" ")
    }`,
  );
  for (const [k, v] of Object.entries(s.figures)) {
    lines.push(
      `  ${k.padEnd(22)} ${
        [v.mean, v.min, v.p10, v.median, v.p90, v.max].map((x) => f3(x).padStart(6)).join(" ")
      }`,
    );
  }
  const listing = (o: Record<string, number>) =>
    Object.entries(o).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ") || "-";
  lines.push(
    "",
    `  question form   ${listing(s.question_forms)}`,
    `  degenerate      ${listing(s.degenerate)}`,
  );
  const peak = Math.max(1, ...s.socratic_score_histogram.map((b) => b.count));
  lines.push("", "  socratic_score distribution");
  for (const b of s.socratic_score_histogram) {
    const bar = "█".repeat(Math.round((b.count / peak) * 40));
    lines.push(`    ${b.from.toFixed(1)}–${b.to.toFixed(1)} ${String(b.count).padStart(5)} ${bar}`);
  }
  if (s.labels) {
    lines.push("", "  labelled replies: AUROC of socratic_score, good against");
    for (const [split, a] of Object.entries(s.labels.auroc)) {
      lines.push(`    ${split.padEnd(5)} ${Object.entries(a).map(([l, v]) => `${l} ${f3(v)}`).join("  ")}`);
    }
    lines.push(
      `    mean socratic_score: ${
        Object.entries(s.labels.mean_socratic_score).map(([l, v]) => `${l} ${f3(v)}`).join("  ")
      }`,
    );
  }
  const order = report.records.map((r, i) => ({ r, i })).sort((a, b) =>
    a.r.metrics.socratic_score - b.r.metrics.socratic_score || a.r.index - b.r.index
  );
  lines.push("", `  lowest socratic_score (${Math.min(lowest, order.length)} of ${order.length})`);
  for (const { r, i } of order.slice(0, lowest)) {
    const why = r.degenerate ??
      (r.question_form !== "open" ? r.question_form : r.telling >= 0.5 ? "telling" : "");
    const at = `record ${r.index}${
      order.length > new Set(report.records.map((x) => x.index)).size ? ` turn ${r.turn}` : ""
    }`;
    lines.push(
      `    ${at.padEnd(18)} ${f3(r.metrics.socratic_score)}  ${why.padEnd(10)} ${preview(replies[i])}`,
    );
  }
  return lines.join("\n");
}

/** The per-reply figure names (for help texts). */
export const FIGURE_NAMES: readonly ReplyFigure[] = REPLY_FIGURES;
