/**
 * torch's optimizer step on the GPU over one flat buffer of parameters: `clip_grad_norm_` (the total norm
 * and the clip coefficient stay on the GPU in `stats`, so a step needs no readback) then AdamW
 * (torch.optim.AdamW, decoupled weight decay, bias corrections as torch computes them). Reference: torch's
 * own two steps in tests/fixtures/golden/adamw.safetensors (tests/gpu/adamw_test.ts).
 */
import adamwSource from "../../../kernels/adamw.wgsl" with { type: "text" };
import normSource from "../../../kernels/grad_norm.wgsl" with { type: "text" };
import type { Gpu } from "../device.ts";
import { defineKernel, getKernel } from "../kernel.ts";
import type { Recorder } from "../recorder.ts";

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

/** Workgroups of the norm's first pass (each writes one partial sum of squares). */
export const NORM_PARTIALS = 256;

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
