/**
 * The LoRA dropout mask exported as multipliers (kernels/lora_dropout.wgsl), for tests and debugging: the
 * training kernels regenerate the mask where they need it (kernels/lib/dropout.wgsl) and never store it. CPU
 * reference: dropoutMaskCpu in src/lora/dropout.ts, which also derives the mask's key.
 */
import dropoutSource from "../../../kernels/lora_dropout.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";
import { dropoutParams, type DropoutSpec } from "../../lora/dropout.ts";

const LORA_DROPOUT = defineKernel({
  file: "lora_dropout.wgsl",
  code: dropoutSource,
  params: { count: "u32", k0: "u32", k1: "u32", threshold: "u32", scale: "f32" },
});

/**
 * Records a dispatch writing the mask multipliers of elements 0..count-1 into `out` (f32), for tests and
 * debugging: the training kernels never materialize it. Inactive dropout writes 1s.
 */
export function recordDropoutMask(
  rec: Recorder,
  out: Binding,
  count: number,
  d: DropoutSpec | null | undefined,
): void {
  const k = getKernel(rec.gpu, LORA_DROPOUT);
  // Inactive: k0 = k1 = threshold = 0 and scale 1, so every element is kept with multiplier 1.
  const { k0, k1, threshold, scale } = dropoutParams(d);
  rec.dispatch(k, [out], { count, k0, k1, threshold, scale }, Math.ceil(count / 256));
}
