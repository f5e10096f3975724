/**
 * The data report (docs/ARCHITECTURE.md#data): printed before training and saved to the logs. Counts of dialogues, turns,
 * tokens and targets, a length histogram, what splitting and cutting did, the train/eval split, and the first
 * example rendered with its target spans marked ⟦like this⟧, so a wrong mask is visible at a glance.
 */
import type { ChatTokenizer } from "../tokenizer/tokenizer.ts";
import { modelVersion } from "./load.ts";
import type { DataFormat, Dialogue } from "./schema.ts";
import { countTargets, type Example, IGNORE_INDEX, type TokenizeStats } from "./tokenize.ts";

export const TARGET_OPEN = "⟦";
export const TARGET_CLOSE = "⟧";

export interface DataReportInput {
  /** The training data file. */
  file: string;
  dialogues: readonly Dialogue[];
  /** Examples of all dialogues (train and eval) as tokenizeDialogues made them. */
  examples: readonly Example[];
  stats: TokenizeStats;
  tokenizer: ChatTokenizer;
  maxLen: number;
  /** Dialogue indices of the split (from splitDialogues); absent when a separate eval file is used. */
  split?: { train: readonly number[]; eval: readonly number[] };
  /** The --eval-data file and its examples, when one is given. */
  evalFile?: { file: string; dialogues: number; examples: readonly Example[] };
}

export interface PartCounts {
  dialogues: number;
  examples: number;
  tokens: number;
  targets: number;
}

export interface DataReportJson {
  file: string;
  model_version: string;
  formats: Partial<Record<DataFormat, number>>;
  dialogues: number;
  turns: { user: number; model: number };
  examples: number;
  tokens: { total: number; targets: number; min: number; mean: number; max: number };
  max_sequence_length: number;
  length_histogram: { from: number; to: number; count: number }[];
  split_dialogues: number;
  cut_exchanges: number;
  dropped_exchanges: number;
  dropped_trailing_user_turns: number;
  boundary_merges: number;
  train?: PartCounts;
  eval?: PartCounts & { file?: string };
  first_example?: { dialogue_index: number; window: number; tokens: number; targets: number; marked: string };
}

export interface DataReport {
  text: string;
  json: DataReportJson;
}

/** The example's text with its target spans wrapped in ⟦ ⟧ (each run of tokens decoded as a whole). */
export function markTargets(tok: ChatTokenizer, ex: Example): string {
  let out = "";
  let i = 0;
  while (i < ex.inputIds.length) {
    const target = ex.labels[i] !== IGNORE_INDEX;
    let j = i;
    while (j < ex.inputIds.length && (ex.labels[j] !== IGNORE_INDEX) === target) j++;
    const text = tok.decode(ex.inputIds.slice(i, j));
    out += target ? TARGET_OPEN + text + TARGET_CLOSE : text;
    i = j;
  }
  return out;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function counts(examples: readonly Example[], dialogues: number): PartCounts {
  let tokens = 0;
  let targets = 0;
  for (const e of examples) {
    tokens += e.inputIds.length;
    targets += countTargets(e.labels);
  }
  return { dialogues, examples: examples.length, tokens, targets };
}

export function dataReport(input: DataReportInput): DataReport {
  const { dialogues, examples, stats, maxLen } = input;
  const formats: Partial<Record<DataFormat, number>> = {};
  let user = 0;
  let model = 0;
  for (const d of dialogues) {
    formats[d.format] = (formats[d.format] ?? 0) + 1;
    for (const t of d.turns) t.role === "user" ? user++ : model++;
  }
  const lengths = examples.map((e) => e.inputIds.length);
  const all = counts(examples, dialogues.length);
  const bins = 8;
  const width = Math.max(1, Math.ceil(maxLen / bins));
  const histogram = Array.from({ length: bins }, (_, b) => ({
    from: b * width + 1,
    to: Math.min(maxLen, (b + 1) * width),
    count: 0,
  }));
  for (const l of lengths) histogram[Math.min(bins - 1, Math.max(0, Math.ceil(l / width) - 1))].count++;

  const json: DataReportJson = {
    file: input.file,
    model_version: modelVersion(input.file),
    formats,
    dialogues: dialogues.length,
    turns: { user, model },
    examples: examples.length,
    tokens: {
      total: all.tokens,
      targets: all.targets,
      min: lengths.length ? lengths.reduce((a, b) => Math.min(a, b)) : 0,
      mean: lengths.length ? Math.round((all.tokens / lengths.length) * 10) / 10 : 0,
      max: lengths.length ? lengths.reduce((a, b) => Math.max(a, b)) : 0,
    },
    max_sequence_length: maxLen,
    length_histogram: histogram,
    split_dialogues: stats.splitDialogues,
    cut_exchanges: stats.cutExchanges,
    dropped_exchanges: stats.droppedExchanges,
    dropped_trailing_user_turns: stats.droppedTrailingUserTurns,
    boundary_merges: stats.boundaryMerges,
  };
  if (input.split) {
    const trainSet = new Set(input.split.train);
    const evalSet = new Set(input.split.eval);
    json.train = counts(examples.filter((e) => trainSet.has(e.dialogueIndex)), trainSet.size);
    json.eval = counts(examples.filter((e) => evalSet.has(e.dialogueIndex)), evalSet.size);
  }
  if (input.evalFile) {
    if (!input.split) json.train = all;
    json.eval = { ...counts(input.evalFile.examples, input.evalFile.dialogues), file: input.evalFile.file };
  }
  const first = examples[0];
  if (first) {
    json.first_example = {
      dialogue_index: first.dialogueIndex,
      window: first.window,
      tokens: first.inputIds.length,
      targets: countTargets(first.labels),
      marked: markTargets(input.tokenizer, first),
    };
  }

  const maxCount = Math.max(1, ...histogram.map((h) => h.count));
  const fmt = Object.entries(formats).map(([k, v]) => `${k} ${v}`).join(", ");
  const part = (name: string, p?: PartCounts) =>
    p
      ? `  ${name.padEnd(6)}${plural(p.dialogues, "dialogue")}, ${plural(p.examples, "example")}, ` +
        `${p.tokens} tokens, ${p.targets} targets`
      : "";
  const lines = [
    `data: ${input.file} (MODEL_VERSION ${json.model_version}; ${fmt})`,
    `  ${plural(dialogues.length, "dialogue")}, ${user} user + ${model} model turns -> ` +
    `${plural(examples.length, "example")} ` +
    `(max_sequence_length ${maxLen})`,
    `  tokens: ${all.tokens} total, ${all.targets} targets; per example min ${json.tokens.min}, ` +
    `mean ${json.tokens.mean}, max ${json.tokens.max}`,
    `  split into windows: ${stats.splitDialogues} dialogues; cut at the right: ${stats.cutExchanges} exchanges; ` +
    `dropped (no room for a target): ${stats.droppedExchanges}; trailing user turns left out: ` +
    `${stats.droppedTrailingUserTurns}` +
    (stats.boundaryMerges ? `; target starts merged with the prompt: ${stats.boundaryMerges}` : ""),
    part("train", json.train),
    part("eval", json.eval) + (json.eval?.file ? ` (${json.eval.file})` : ""),
    "  length histogram (tokens per example):",
    ...histogram.map((h) =>
      `    ${String(h.from).padStart(5)}-${String(h.to).padEnd(5)} ${String(h.count).padStart(5)} ` +
      "#".repeat(Math.round((h.count / maxCount) * 40))
    ).map((l) => l.trimEnd()),
  ].filter((l) => l !== "");
  if (json.first_example) {
    lines.push(
      `  first example (dialogue ${first.dialogueIndex}, window ${first.window + 1}/${first.windows}, ` +
        `${json.first_example.tokens} tokens, targets in ${TARGET_OPEN}${TARGET_CLOSE}):`,
      ...json.first_example.marked.replace(/\n+$/, "").split("\n").map((l) => ("    " + l).trimEnd()),
    );
  }
  return { text: lines.join("\n"), json };
}
