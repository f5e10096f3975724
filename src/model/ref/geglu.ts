/**
 * Float64 CPU reference for Gemma-2's gated MLP activation (tests only): `gelu_tanh(gate) · up`
 * (transformers `modeling_gemma2.py` Gemma2MLP with `gelu_pytorch_tanh` = torch gelu approximate="tanh").
 */

const K = Math.sqrt(2 / Math.PI);
const C = 0.044715;

/** torch gelu(approximate="tanh"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(K * (x + C * x * x * x)));
}

/** d gelu_tanh / dx. */
export function geluTanhGrad(x: number): number {
  const t = Math.tanh(K * (x + C * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * C * x * x);
}

/** h = gelu_tanh(gate) · up, elementwise over n values. */
export function gegluFwd(gate: ArrayLike<number>, up: ArrayLike<number>, n: number): Float64Array {
  const h = new Float64Array(n);
  for (let i = 0; i < n; i++) h[i] = geluTanh(gate[i]) * up[i];
  return h;
}

export function gegluBwd(
  dh: ArrayLike<number>,
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
  n: number,
): { dgate: Float64Array; dup: Float64Array } {
  const dgate = new Float64Array(n);
  const dup = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    dgate[i] = dh[i] * up[i] * geluTanhGrad(gate[i]);
    dup[i] = dh[i] * geluTanh(gate[i]);
  }
  return { dgate, dup };
}
