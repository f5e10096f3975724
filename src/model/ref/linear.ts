/**
 * Float64 CPU reference for a LoRA linear layer (tests only), PEFT `lora/layer.py` Linear.forward:
 * `y = x·Wᵀ + scaling · lora_B(lora_A(dropout(x)))`, dropout on the LoRA branch only.
 * W [outF, inF], A [r, inF], B [outF, r], x [N, inF]; dropMask [N, inF] holds the dropout multipliers
 * (0 or 1/(1−p)), or is undefined for no dropout.
 */
import { matmulDyTX, matmulDyW, matmulXWt } from "./gemma2.ts";

function dropped(x: ArrayLike<number>, dropMask: ArrayLike<number> | undefined): ArrayLike<number> {
  if (!dropMask) return x;
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * dropMask[i];
  return out;
}

export function loraLinearFwd(
  x: ArrayLike<number>,
  W: ArrayLike<number>,
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  N: number,
  inF: number,
  outF: number,
  r: number,
  scaling: number,
  dropMask?: ArrayLike<number>,
): { y: Float64Array; u: Float64Array } {
  const y = matmulXWt(x, W, N, inF, outF);
  const u = matmulXWt(dropped(x, dropMask), A, N, inF, r);
  const l = matmulXWt(u, B, N, r, outF);
  for (let i = 0; i < y.length; i++) y[i] += scaling * l[i];
  return { y, u };
}

/**
 * Gradients with W frozen: with g = scaling·dy·B [N, r],
 * dx = dy·W + (g·A)∘mask, dA = gᵀ·dropout(x), dB = scaling·dyᵀ·u.
 */
export function loraLinearBwd(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  W: ArrayLike<number>,
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  N: number,
  inF: number,
  outF: number,
  r: number,
  scaling: number,
  dropMask?: ArrayLike<number>,
): { dx: Float64Array; dA: Float64Array; dB: Float64Array } {
  const xd = dropped(x, dropMask);
  const u = matmulXWt(xd, A, N, inF, r);
  const g = matmulDyW(dy, B, N, r, outF);
  for (let i = 0; i < g.length; i++) g[i] *= scaling;
  const dx = matmulDyW(dy, W, N, inF, outF);
  const dxl = matmulDyW(g, A, N, inF, r);
  for (let i = 0; i < dx.length; i++) dx[i] += dropMask ? dxl[i] * dropMask[i] : dxl[i];
  const dA = matmulDyTX(g, xd, N, inF, r);
  const dB = matmulDyTX(dy, u, N, r, outF);
  for (let i = 0; i < dB.length; i++) dB[i] *= scaling;
  return { dx, dA, dB };
}
