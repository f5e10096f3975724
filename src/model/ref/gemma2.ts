/** Small float64 helpers shared by the Gemma-2 references (tests only). */

/** Gemma-2 logit softcap `tanh(x/c)·c` (transformers `modeling_gemma2.py`); null = identity. */
export function softcap(x: number, c: number | null): number {
  return c === null ? x : Math.tanh(x / c) * c;
}

/** d softcap / dx = 1 − tanh²(x/c). */
export function softcapGrad(x: number, c: number | null): number {
  if (c === null) return 1;
  const t = Math.tanh(x / c);
  return 1 - t * t;
}

/** a + b elementwise (the residual add). */
export function residualAdd(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

/** In place a += b. */
export function addInto(a: Float64Array, b: ArrayLike<number>): Float64Array {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
  return a;
}

/** y = x·Wᵀ for x [N, inF], W [outF, inF]. */
export function matmulXWt(
  x: ArrayLike<number>,
  W: ArrayLike<number>,
  N: number,
  inF: number,
  outF: number,
): Float64Array {
  const y = new Float64Array(N * outF);
  for (let n = 0; n < N; n++) {
    const xo = n * inF;
    for (let o = 0; o < outF; o++) {
      const wo = o * inF;
      let s = 0;
      for (let k = 0; k < inF; k++) s += x[xo + k] * W[wo + k];
      y[n * outF + o] = s;
    }
  }
  return y;
}

/** dx = dy·W for dy [N, outF], W [outF, inF] → [N, inF]. */
export function matmulDyW(
  dy: ArrayLike<number>,
  W: ArrayLike<number>,
  N: number,
  inF: number,
  outF: number,
): Float64Array {
  const dx = new Float64Array(N * inF);
  for (let n = 0; n < N; n++) {
    const xo = n * inF;
    for (let o = 0; o < outF; o++) {
      const g = dy[n * outF + o];
      if (g === 0) continue;
      const wo = o * inF;
      for (let k = 0; k < inF; k++) dx[xo + k] += g * W[wo + k];
    }
  }
  return dx;
}

/** dW = dyᵀ·x for dy [N, outF], x [N, inF] → [outF, inF]. */
export function matmulDyTX(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  N: number,
  inF: number,
  outF: number,
): Float64Array {
  const dW = new Float64Array(outF * inF);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < outF; o++) {
      const g = dy[n * outF + o];
      if (g === 0) continue;
      const wo = o * inF;
      const xo = n * inF;
      for (let k = 0; k < inF; k++) dW[wo + k] += g * x[xo + k];
    }
  }
  return dW;
}
