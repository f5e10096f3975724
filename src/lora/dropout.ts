/**
 * LoRA dropout (PEFT lora/layer.py: `lora_dropout[adapter]` = nn.Dropout(p) on the branch input only), as a
 * counter-based mask that is regenerated wherever it is needed instead of being stored
 * (kernels/lib/dropout.wgsl, `// #include dropout`). The mask of one LoRA layer in one forward is a pure function of
 * (seed, step, stream, element index):
 *  - `seed`: the run's seed (training.seed);
 *  - `step`: unique per forward of a micro-batch (e.g. the global micro-batch counter), so every micro-batch
 *    of an accumulation window gets a fresh mask, and the backward (or a checkpointed re-forward) of the same
 *    micro-batch gets the same one;
 *  - `stream`: the LoRA layer (loraStreamId(layer, module)): q/k/v share their input but, like PEFT's separate
 *    nn.Dropout modules, draw independent masks;
 *  - element index: token * in_features + feature of x.
 * Kept elements are scaled by f32(1/(1-p)) (inverted dropout, as torch); p = 1 drops everything.
 */

export interface DropoutSpec {
  /** Drop probability (lora_dropout). 0 = identity. */
  p: number;
  seed: number;
  /** Unique per micro-batch forward; see the module comment. */
  step: number;
  /** Per LoRA layer: loraStreamId(layer, module). */
  stream: number;
}

/** PCG-RXS-M-XS 32-bit hash (kernels/lib/pcg.wgsl `pcg`), bit-identical. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

function u32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`dropout ${name} must be an integer in [0, 2^32), got ${v}`);
  }
  return v;
}

/** The two 32-bit words that select one mask. Independent derivations so (step, stream) pairs do not alias. */
export function dropoutKey(seed: number, step: number, stream: number): [number, number] {
  const [s, t, l] = [u32("seed", seed), u32("step", step), u32("stream", stream)];
  const k0 = pcgHash(pcgHash(pcgHash(s) ^ t) ^ l);
  const k1 = pcgHash((pcgHash((pcgHash(s ^ 0x6a09e667) + t) >>> 0) ^ Math.imul(l, 0x9e3779b1)) >>> 0);
  return [k0, k1];
}

/** Whether a spec actually drops anything (p > 0). Eval / inference passes no spec (or p = 0). */
export function isActive(d: DropoutSpec | null | undefined): d is DropoutSpec {
  return Boolean(d && d.p > 0);
}

/** The Params fields of every kernel that applies the mask (kernels/lib/dropout.wgsl), spread last into theirs. */
export const DROPOUT_PARAMS = {
  dropout: "u32",
  k0: "u32",
  k1: "u32",
  threshold: "u32",
  scale: "f32",
} as const;

/** The values of DROPOUT_PARAMS. Inactive dropout gives dropout = 0 (the others are then unused). */
export function dropoutParams(
  d: DropoutSpec | null | undefined,
): { dropout: number; k0: number; k1: number; threshold: number; scale: number } {
  if (!isActive(d)) return { dropout: 0, k0: 0, k1: 0, threshold: 0, scale: 1 };
  if (!(d.p <= 1)) throw new RangeError(`lora_dropout must be in [0, 1], got ${d.p}`);
  const [k0, k1] = dropoutKey(d.seed, d.step, d.stream);
  return { dropout: 1, k0, k1, threshold: dropoutThreshold(d.p), scale: dropoutScale(d.p) };
}

/** threshold = round(p · 2^32) (clamped): an element is kept when its hash is >= threshold. */
export function dropoutThreshold(p: number): number {
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/** The multiplier of kept elements, f32(1/(1-p)); 0 for p = 1 (nn.Dropout(1) outputs zeros). */
export function dropoutScale(p: number): number {
  return p >= 1 ? 0 : Math.fround(1 / (1 - p));
}

/** CPU twin of the GPU mask: multipliers (0 or scale) for elements 0..count-1. Identity (all 1) when inactive. */
export function dropoutMaskCpu(count: number, d: DropoutSpec | null | undefined): Float32Array<ArrayBuffer> {
  const out = new Float32Array(count);
  if (!isActive(d)) return out.fill(1);
  const [k0, k1] = dropoutKey(d.seed, d.step, d.stream);
  const thr = dropoutThreshold(d.p);
  const scale = dropoutScale(d.p);
  for (let i = 0; i < count; i++) {
    out[i] = pcgHash((pcgHash((i + k0) >>> 0) ^ k1) >>> 0) >= thr ? scale : 0;
  }
  return out;
}
