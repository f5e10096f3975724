/**
 * Batches (docs/ARCHITECTURE.md#data): rows of examples padded on the right to the longest row of the batch (dynamic padding),
 * labels padded with -100, attention mask 1 on real tokens and 0 on padding. targetTokens counts the targets
 * after the model's shift (labels[t+1] != -100), the normalizer of the loss (docs/ARCHITECTURE.md#one-training-step).
 * group_by_length follows transformers' LengthGroupedSampler: the order is cut into mega-batches of
 * 50 x batchSize, each sorted by length (longest first), and the batch with the longest example goes first.
 */
import { countTargets, type Example, IGNORE_INDEX } from "./tokenize.ts";

export interface Batch {
  /** rows x seqLen, row-major. */
  inputIds: Int32Array;
  labels: Int32Array;
  attentionMask: Uint8Array;
  rows: number;
  seqLen: number;
  /** Positions t with labels[t+1] != -100, summed over the rows. */
  targetTokens: number;
  /** Which examples the rows are, in row order. */
  exampleIndices: number[];
}

export const MEGA_BATCH_MULT = 50;

/** Reorders `order` as transformers' LengthGroupedSampler does (given the already shuffled order). */
export function groupByLength(
  lengths: readonly number[],
  order: readonly number[],
  batchSize: number,
): number[] {
  const mega = batchSize * MEGA_BATCH_MULT;
  const groups: number[][] = [];
  for (let i = 0; i < order.length; i += mega) {
    // Stable sort, longest first.
    groups.push(order.slice(i, i + mega).sort((a, b) => lengths[b] - lengths[a]));
  }
  if (groups.length > 0) {
    // The longest example leads, so an out-of-memory shows at the first step.
    let best = 0;
    for (let g = 1; g < groups.length; g++) if (lengths[groups[g][0]] > lengths[groups[best][0]]) best = g;
    [groups[0][0], groups[best][0]] = [groups[best][0], groups[0][0]];
  }
  return groups.flat();
}

/** Builds one padded batch from the given examples. */
export function collate(examples: readonly Example[], indices: readonly number[], padId: number): Batch {
  const rows = indices.length;
  let seqLen = 0;
  for (const i of indices) seqLen = Math.max(seqLen, examples[i].inputIds.length);
  const inputIds = new Int32Array(rows * seqLen).fill(padId);
  const labels = new Int32Array(rows * seqLen).fill(IGNORE_INDEX);
  const attentionMask = new Uint8Array(rows * seqLen);
  let targetTokens = 0;
  indices.forEach((ex, r) => {
    const e = examples[ex];
    inputIds.set(e.inputIds, r * seqLen);
    labels.set(e.labels, r * seqLen);
    attentionMask.fill(1, r * seqLen, r * seqLen + e.inputIds.length);
    targetTokens += countTargets(e.labels);
  });
  return { inputIds, labels, attentionMask, rows, seqLen, targetTokens, exampleIndices: [...indices] };
}

/**
 * Cuts `order` (indices into examples) into batches of batchSize rows (the last may be smaller), each padded
 * on the right with padId to its longest row.
 */
export function makeBatches(
  examples: readonly Example[],
  order: readonly number[],
  batchSize: number,
  padId: number,
  groupByLengthFlag = false,
): Batch[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`batch size must be >= 1, got ${batchSize}`);
  }
  const seq = groupByLengthFlag
    ? groupByLength(examples.map((e) => e.inputIds.length), order, batchSize)
    : [...order];
  const out: Batch[] = [];
  for (let i = 0; i < seq.length; i += batchSize) {
    out.push(collate(examples, seq.slice(i, i + batchSize), padId));
  }
  return out;
}
