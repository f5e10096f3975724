/**
 * Float64 CPU reference for Gemma-2 RMSNorm (tests only).
 * transformers `modeling_gemma2.py` Gemma2RMSNorm: `x * rsqrt(mean(x²) + eps) * (1 + w)` (Gemma scales by
 * 1 + w, unlike Llama). Rows are token-major `[rows, dim]`.
 */

/**
 * y = x · rstd · (1 + w) with rstd = 1/sqrt(mean(x²) + eps) per row; rstd is returned for the backward.
 * `f32`: emulate transformers' float32 island (Gemma2RMSNorm runs `self._norm(x.float())`, so even a float64
 * model normalizes in float32 and casts back): every step rounded to float32, the mean's sum correctly rounded
 * (torch's own reduction order can differ in the last bit).
 */
export function rmsnormFwd(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  rows: number,
  dim: number,
  eps: number,
  f32 = false,
): { y: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(rows * dim);
  const rstd = new Float64Array(rows);
  if (f32) {
    const f = Math.fround;
    const epsF = f(eps);
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += f(f(x[o + j]) * f(x[o + j]));
      // rsqrt on CPU tensors: 1 / sqrt, each correctly rounded to float32
      const rs = f(1 / f(Math.sqrt(f(f(ss / dim) + epsF))));
      rstd[r] = rs;
      for (let j = 0; j < dim; j++) y[o + j] = f(f(f(x[o + j]) * rs) * f(1 + f(w[j])));
    }
    return { y, rstd };
  }
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[o + j] * x[o + j];
    const rs = 1 / Math.sqrt(ss / dim + eps);
    rstd[r] = rs;
    for (let j = 0; j < dim; j++) y[o + j] = x[o + j] * rs * (1 + w[j]);
  }
  return { y, rstd };
}

/**
 * Backward of rmsnormFwd. With g = dy·(1+w):
 * dx = rstd·g − x·rstd³·mean(g·x), dw = Σ_rows dy·x·rstd.
 */
export function rmsnormBwd(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  rstd: ArrayLike<number>,
  rows: number,
  dim: number,
): { dx: Float64Array; dw: Float64Array } {
  const dx = new Float64Array(rows * dim);
  const dw = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const rs = rstd[r];
    let gx = 0;
    for (let j = 0; j < dim; j++) gx += dy[o + j] * (1 + w[j]) * x[o + j];
    const c = rs * rs * rs * gx / dim;
    for (let j = 0; j < dim; j++) {
      dx[o + j] = rs * dy[o + j] * (1 + w[j]) - x[o + j] * c;
      dw[j] += dy[o + j] * x[o + j] * rs;
    }
  }
  return { dx, dw };
}
