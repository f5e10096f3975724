/**
 * Deterministic pseudo-random fill of a GPU buffer (kernels/fill_random.wgsl: a PCG hash of (seed, word index)),
 * for the gemma-2-2b-random preset: real-shape weights exist on the GPU without a download or a host copy.
 * Only their scale matters, so there is no CPU reference.
 */
import fillSource from "../../../kernels/fill_random.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

const FILL_RANDOM = defineKernel({
  file: "fill_random.wgsl",
  code: fillSource,
  params: { words: "u32", seed: "u32", lo: "f32", hi: "f32" },
});

/** What each u32 word of the buffer holds: random bits, one f32 in [lo, hi), or two f16 in [lo, hi). */
export const FILL_MODES = { bits: 0, f32: 1, f16: 2 } as const;
export type FillMode = keyof typeof FILL_MODES;

/** `words` u32 words of `out` filled by the hash of `seed` (see FillMode). */
export function fillRandom(
  rec: Recorder,
  out: Binding,
  s: { words: number; mode: FillMode; lo: number; hi: number; seed: number },
): void {
  const k = getKernel(rec.gpu, { ...FILL_RANDOM, constants: { MODE: FILL_MODES[s.mode] } });
  rec.dispatch(
    k,
    [out],
    { words: s.words, seed: s.seed >>> 0, lo: s.lo, hi: s.hi },
    Math.ceil(s.words / 256),
  );
}
