/**
 * Folding a LoRA adapter into a base weight (PEFT lora/layer.py Linear.merge / get_delta_weight):
 *   W' = W + scaling · (B · A)          W [out, in], A [r, in], B [out, r]
 * The delta is computed in f32 (PEFT computes B @ A in the LoRA dtype, f32, then multiplies by scaling), and
 * added to the f32 (dequantized, for a 4-bit base: bnb.py Linear4bit.merge) weight. CPU only: merge runs once.
 */
import type { LoraModuleInfo, LoraParams } from "./params.ts";
import { tensorView } from "./params.ts";

/** scaling · (B · A) as f32, [out, in]. */
export function loraDelta(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  outF: number,
  inF: number,
  r: number,
  scaling: number,
): Float32Array<ArrayBuffer> {
  if (A.length !== r * inF || B.length !== outF * r) {
    throw new RangeError(
      `loraDelta: A has ${A.length} (want ${r * inF}), B has ${B.length} (want ${outF * r})`,
    );
  }
  const out = new Float32Array(outF * inF);
  const row = new Float64Array(inF);
  for (let o = 0; o < outF; o++) {
    row.fill(0);
    for (let j = 0; j < r; j++) {
      const b = B[o * r + j];
      if (b === 0) continue;
      const ao = j * inF;
      for (let k = 0; k < inF; k++) row[k] += b * A[ao + k];
    }
    for (let k = 0; k < inF; k++) out[o * inF + k] = Math.fround(Math.fround(row[k]) * scaling);
  }
  return out;
}

/** W + scaling · B·A for one targeted projection of `params` (W [out, in] f32, not modified). */
export function mergeLoraWeight(
  W: ArrayLike<number>,
  params: LoraParams,
  m: LoraModuleInfo,
): Float32Array<ArrayBuffer> {
  if (W.length !== m.outF * m.inF) {
    throw new RangeError(
      `mergeLoraWeight: ${m.module} weight has ${W.length} values, want ${m.outF}×${m.inF}`,
    );
  }
  const d = loraDelta(
    tensorView(params, m.A),
    tensorView(params, m.B),
    m.outF,
    m.inF,
    params.layout.r,
    params.scaling,
  );
  for (let i = 0; i < d.length; i++) d[i] = Math.fround(W[i] + d[i]);
  return d;
}
