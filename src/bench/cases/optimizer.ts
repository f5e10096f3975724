/**
 * The optimizer case: gradient-norm clipping then AdamW (src/train/optimizer.ts) over a LoRA arena (by
 * default the config's q/k/v/o adapter at rank r), with the trainer's default hyperparameters.
 */
import { createBuffer } from "../../gpu/buffers.ts";
import { loraLayout } from "../../lora/params.ts";
import { NORM_PARTIALS, type OptimizerBuffers, recordAdamW, recordClip } from "../../gpu/ops/adamw.ts";
import type { CaseContext, KernelCase } from "./context.ts";

export function optimizerCases(x: CaseContext): KernelCase[] {
  const { gpu, o } = x;
  const n = o.optimizerElems ?? loraLayout(o.config, o.r, ["q_proj", "k_proj", "v_proj", "o_proj"]).total;
  const opt: OptimizerBuffers = {
    n,
    param: x.fill.f32("opt.param", n, -0.01, 0.01),
    grad: x.fill.f32("opt.grad", n, -1e-3, 1e-3),
    m: createBuffer(gpu, "opt.m", n * 4),
    v: createBuffer(gpu, "opt.v", n * 4),
    stats: createBuffer(gpu, "opt.stats", 16),
    partials: createBuffer(gpu, "opt.partials", NORM_PARTIALS * 4),
  };
  const hyper = { lr: 8e-5, weightDecay: 0.06, beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 };
  return [{
    name: "clip + adamw",
    family: "optimizer",
    shape: `${n} LoRA parameters (grad norm, clip, AdamW)`,
    flop: 16 * n,
    flopNote: "nominal 16 FLOP per parameter",
    subgroups: true,
    bytes: 8 * n * 4,
    record: (rec) => {
      recordClip(rec, opt, hyper.maxGradNorm);
      recordAdamW(rec, opt, hyper, 1);
    },
  }];
}
