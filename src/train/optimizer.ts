/**
 * Gradient clipping + AdamW on the GPU over one flat arena of all LoRA parameters (docs/ARCHITECTURE.md#one-training-step): the total
 * norm and the clip coefficient stay on the GPU (stats buffer), so a step needs no readback; the trainer reads
 * `stats` together with the loss once per step for logging.
 */
import adamwSource from "../../kernels/adamw.wgsl" with { type: "text" };
import normSource from "../../kernels/grad_norm.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { defineKernel, getKernel } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { Gemma2Engine } from "../model/engine.ts";

export interface AdamWHyper {
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  maxGradNorm: number;
}

export interface OptimizerBuffers {
  n: number;
  param: GPUBuffer;
  grad: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  /** [total_norm, clip_coef] after recordClip. */
  stats: GPUBuffer;
  partials: GPUBuffer;
}

/** The buffers plus copies of param, m and v from before the last step (the loss watchdog restores them). */
export interface OptimizerState extends OptimizerBuffers {
  snapshot: readonly [GPUBuffer, GPUBuffer, GPUBuffer];
}

export const NORM_PARTIALS = 256;

/**
 * The optimizer's state for a training engine's LoRA arena, from the engine's pool (kind "optimizer", so the
 * memory plan counts it): AdamW's m and v, the norm statistics and partials, and the snapshot.
 */
export function allocOptimizer(engine: Pick<Gemma2Engine, "pool" | "lora">): OptimizerState {
  const lora = engine.lora;
  if (!lora?.grad) throw new Error("allocOptimizer needs a training engine with LoRA parameters");
  const bytes = lora.layout.total * 4;
  const pool = engine.pool;
  const opt = (label: string) => pool.persistent(label, "optimizer", bytes);
  return {
    n: lora.layout.total,
    param: lora.param,
    grad: lora.grad,
    m: opt("adam.m"),
    v: opt("adam.v"),
    stats: pool.persistent("opt.stats", "optimizer", 16),
    partials: pool.persistent("opt.partials", "optimizer", NORM_PARTIALS * 4),
    snapshot: [opt("snap.param"), opt("snap.m"), opt("snap.v")],
  };
}

/** Copies param/m/v aside (the loss watchdog restores them when a step goes bad). */
export function recordSnapshot(rec: Recorder, o: OptimizerState): void {
  const bytes = o.n * 4;
  rec.copy(o.param, 0, o.snapshot[0], 0, bytes);
  rec.copy(o.m, 0, o.snapshot[1], 0, bytes);
  rec.copy(o.v, 0, o.snapshot[2], 0, bytes);
}

export function recordRestore(rec: Recorder, o: OptimizerState): void {
  const bytes = o.n * 4;
  rec.copy(o.snapshot[0], 0, o.param, 0, bytes);
  rec.copy(o.snapshot[1], 0, o.m, 0, bytes);
  rec.copy(o.snapshot[2], 0, o.v, 0, bytes);
}

const GRAD_NORM = defineKernel({
  file: "grad_norm.wgsl",
  code: normSource,
  params: { n: "u32", nPartials: "u32", maxNorm: "f32" },
});
const ADAMW = defineKernel({
  file: "adamw.wgsl",
  code: adamwSource,
  params: {
    n: "u32",
    decay: "f32",
    beta1: "f32",
    beta2: "f32",
    oneMinusBeta1: "f32",
    oneMinusBeta2: "f32",
    eps: "f32",
    stepSize: "f32",
    sqrtBc2: "f32",
  },
});

/** Records the global gradient norm and clip coefficient into `stats`. */
export function recordClip(rec: Recorder, b: OptimizerBuffers, maxGradNorm: number): void {
  const gpu: Gpu = rec.gpu;
  const partial = getKernel(gpu, { ...GRAD_NORM, entry: "partial" });
  const finish = getKernel(gpu, { ...GRAD_NORM, entry: "finish" });
  const params = { n: b.n, nPartials: NORM_PARTIALS, maxNorm: maxGradNorm };
  rec.dispatch(partial, [b.grad, b.partials, null], params, [NORM_PARTIALS, 1, 1]);
  rec.dispatch(finish, [null, b.partials, b.stats], params, [1, 1, 1]);
}

/** Records one AdamW step (step is 1-based, as torch's state["step"] after increment). */
export function recordAdamW(rec: Recorder, b: OptimizerBuffers, h: AdamWHyper, step: number): void {
  const k = getKernel(rec.gpu, ADAMW);
  const bc1 = 1 - h.beta1 ** step;
  const bc2 = 1 - h.beta2 ** step;
  rec.dispatch(
    k,
    [b.param, b.grad, b.m, b.v, b.stats],
    {
      n: b.n,
      decay: 1 - h.lr * h.weightDecay,
      beta1: h.beta1,
      beta2: h.beta2,
      oneMinusBeta1: 1 - h.beta1,
      oneMinusBeta2: 1 - h.beta2,
      eps: h.eps,
      stepSize: h.lr / bc1,
      sqrtBc2: Math.sqrt(bc2),
    },
    Math.ceil(b.n / 256),
  );
}
