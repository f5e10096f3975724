/**
 * Seeded, deterministic ordering (docs/ARCHITECTURE.md#data, #one-training-step): the train/eval split is a seeded shuffle of dialogues (never
 * of turns), and each epoch's example order is a pure function of (seed, epoch), so a resumed run replays the
 * same order. PRNG: src/util/random.ts (mulberry32 seeded through a splitmix32-style mix of (seed, stream, epoch)).
 */
import { UsageError } from "../util/errors.ts";
import { seededRandom } from "../util/random.ts";

/** Fisher–Yates shuffle of 0..n-1. */
export function shuffledRange(n: number, rand: () => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const STREAM_SPLIT = 0x5b1d;
const STREAM_EPOCH = 0xe90c;

/**
 * Splits n dialogues into train and eval by a seeded shuffle: ceil(n * evalSplit) for eval, at least 1 when
 * evalSplit > 0, and at least 1 left for training. Both lists are sorted ascending.
 */
export function splitDialogues(
  n: number,
  evalSplit: number,
  seed: number,
): { train: number[]; eval: number[] } {
  if (!(evalSplit >= 0 && evalSplit < 1)) {
    throw new UsageError(`training.eval_split must be in [0, 1), got ${evalSplit}`);
  }
  if (evalSplit === 0) return { train: Array.from({ length: n }, (_, i) => i), eval: [] };
  if (n < 2) {
    throw new UsageError(
      `${n} dialogue${n === 1 ? "" : "s"} cannot be split into train and eval; ` +
        `set --set training.eval_split=0 or pass --eval-data FILE`,
    );
  }
  const nEval = Math.min(n - 1, Math.max(1, Math.ceil(n * evalSplit - 1e-9)));
  const order = shuffledRange(n, seededRandom(seed, STREAM_SPLIT));
  const byNum = (a: number, b: number) => a - b;
  return { train: order.slice(nEval).sort(byNum), eval: order.slice(0, nEval).sort(byNum) };
}

/** The order of the training examples in `epoch` (0-based): a permutation of 0..nExamples-1. */
export function epochOrder(nExamples: number, seed: number, epoch: number): number[] {
  return shuffledRange(nExamples, seededRandom(seed, STREAM_EPOCH, epoch));
}
