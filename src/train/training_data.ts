/**
 * The data a run trains and evaluates on: the dialogue files read and fingerprinted before any download or GPU
 * work (`readTrainingInputs`), then tokenized with the model's tokenizer and split into training and
 * evaluation examples (`prepareData`: by a seeded shuffle of dialogues, src/data/split.ts, unless
 * --eval-data gives a separate file), and batched per epoch as a pure function of (seed, epoch).
 */
import type { Config, TrainingConfig } from "../config/schema.ts";
import {
  type Dialogue,
  epochOrder,
  type Example,
  loadDialogues,
  makeBatches,
  splitDialogues,
  tokenizeDialogues,
} from "../data/mod.ts";
import { type DataReport, dataReport } from "../data/report.ts";
import { sha256DataFile } from "../data/load.ts";
import type { ChatTokenizer } from "../tokenizer/tokenizer.ts";
import { UsageError } from "../util/errors.ts";
import { type EvalContext, evalContextsFrom } from "../eval/in_training.ts";
import type { TrainBatch } from "./loop.ts";
import type { Fingerprints } from "./run_identity.ts";

export interface TrainingInputs {
  dialogues: Dialogue[];
  /** The --eval-data dialogues, or null (then eval_split of `dialogues` is held out). */
  evalDialogues: Dialogue[] | null;
  fingerprints: Fingerprints;
}

/** Reads and validates the data files (a bad record is a usage error naming it) and fingerprints them. */
export async function readTrainingInputs(cfg: Config): Promise<TrainingInputs> {
  const dialogues = await loadDialogues(cfg.data);
  const evalDialogues = cfg.eval_data ? await loadDialogues(cfg.eval_data) : null;
  const fingerprints = {
    data_sha256: await sha256DataFile(cfg.data),
    eval_data_sha256: cfg.eval_data ? await sha256DataFile(cfg.eval_data) : undefined,
  };
  return { dialogues, evalDialogues, fingerprints };
}

export interface TrainingData {
  train: Example[];
  eval: Example[];
  /** What the data report says and logs/data_report.json holds (src/data/report.ts). */
  report: DataReport;
  /** The held-out dialogues the eval generates replies for (src/eval/in_training.ts). */
  evalContexts: EvalContext[];
  /** The longest example, training or eval: the engine's sequence capacity. */
  maxSeq: number;
}

/** Tokenizes and splits the dialogues; a UsageError when no training example is left. */
export function prepareData(cfg: Config, inputs: TrainingInputs, tok: ChatTokenizer): TrainingData {
  const t = cfg.training;
  const { dialogues, evalDialogues } = inputs;
  const maxLen = cfg.model.max_sequence_length;
  let trainIdx: number[];
  let evalExamples: Example[];
  let split: { train: number[]; eval: number[] } | undefined;
  if (evalDialogues) {
    trainIdx = dialogues.map((_, i) => i);
    evalExamples = tokenizeDialogues(tok, evalDialogues, maxLen).examples;
  } else {
    split = t.eval_split > 0 ? splitDialogues(dialogues.length, t.eval_split, t.seed) : {
      train: dialogues.map((_, i) => i),
      eval: [],
    };
    trainIdx = split.train;
    evalExamples = tokenizeDialogues(tok, dialogues, maxLen, split.eval).examples;
  }
  const all = tokenizeDialogues(tok, dialogues, maxLen);
  const trainSet = new Set(trainIdx);
  const trainExamples = all.examples.filter((e) => trainSet.has(e.dialogueIndex));
  if (!trainExamples.length) throw new UsageError(`${cfg.data}: no training examples after the split`);
  const report = dataReport({
    file: cfg.data,
    dialogues,
    examples: all.examples,
    stats: all.stats,
    tokenizer: tok,
    maxLen,
    split,
    evalFile: evalDialogues && cfg.eval_data
      ? { file: cfg.eval_data, dialogues: evalDialogues.length, examples: evalExamples }
      : undefined,
  });
  return {
    train: trainExamples,
    eval: evalExamples,
    report,
    evalContexts: evalContextsFrom(evalDialogues ?? (split?.eval ?? []).map((i) => dialogues[i])),
    maxSeq: Math.max(
      ...trainExamples.map((e) => e.inputIds.length),
      ...evalExamples.map((e) => e.inputIds.length),
    ),
  };
}

/** The batches of each epoch (the loop's `batchesForEpoch`): the last epoch's are kept for its next windows. */
export function epochBatches(train: readonly Example[], t: TrainingConfig, padId: number) {
  let cache: { epoch: number; batches: TrainBatch[] } | null = null;
  return (epoch: number): TrainBatch[] => {
    if (cache?.epoch !== epoch) {
      const order = epochOrder(train.length, t.seed, epoch);
      cache = {
        epoch,
        batches: makeBatches(train, order, t.per_device_train_batch_size, padId, t.group_by_length),
      };
    }
    return cache.batches;
  };
}

/** The eval examples in file order, in batches of per_device_eval_batch_size. */
export function evalBatches(
  evalExamples: readonly Example[],
  t: TrainingConfig,
  padId: number,
): TrainBatch[] {
  return makeBatches(evalExamples, evalExamples.map((_, i) => i), t.per_device_eval_batch_size, padId);
}
