/**
 * NEFTune (Jain et al. 2023; transformers trainer_utils.neftune_post_forward_hook): uniform noise U(−m, m) with
 * m = alpha / sqrt(T·hidden) added to the embedding output of training forwards (kernels/neftune.wgsl). Gemma-2
 * scales that output by √hidden afterwards, so on the engine's (already scaled) x0 the noise is scaled by
 * √hidden too. The noise is a hash of (seed, step, element): a checkpointed re-forward and a resumed run see
 * the same noise.
 */
import neftuneSource from "../../../kernels/neftune.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

const NEFTUNE = defineKernel({
  file: "neftune.wgsl",
  code: neftuneSource,
  params: { n: "u32", seed: "u32", step: "u32", mag: "f32" },
});

/** The noise stream's fixed seed ("NFT"): the step alone varies it between forwards. */
const NEFTUNE_SEED = 0x4e4654;

/** The noise magnitude on the scaled embeddings: alpha / sqrt(T·hidden) · √hidden. */
export function neftuneMagnitude(alpha: number, T: number, hidden: number): number {
  return (alpha / Math.sqrt(T * hidden)) * Math.sqrt(hidden);
}

/** x [n] += U(−mag, mag) noise of forward `step`. */
export function neftune(rec: Recorder, x: Binding, s: { n: number; step: number; mag: number }): void {
  const k = getKernel(rec.gpu, NEFTUNE);
  rec.dispatch(k, [x], { n: s.n, seed: NEFTUNE_SEED, step: s.step >>> 0, mag: s.mag }, Math.ceil(s.n / 256));
}
