/**
 * Central finite differences for checking the float64 references' backwards (tests only).
 * The checked scalar is L = Σ f(x)·R for a fixed random cotangent R, so dL/dx is what a backward returns
 * when given dy = R.
 */

/** Numerical gradient of `loss` w.r.t. every element of `x` (x is perturbed in place and restored). */
export function numericGrad(x: Float64Array, loss: () => number, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + h;
    const lp = loss();
    x[i] = x0 - h;
    const lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

/** Σ a·b. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Deterministic float64 array in [−scale, scale) from a mulberry32 stream. */
export function randF64(n: number, rand: () => number, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

/** max |a − b| / max(max |b|, tiny): an error relative to the tensor's scale. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  let r = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    r = Math.max(r, Math.abs(b[i]));
  }
  return m / Math.max(r, 1e-300);
}

/** Throws when `cond` is false (the test files avoid a registry dependency for asserts). */
export function assert(cond: boolean, what = "assertion failed"): asserts cond {
  if (!cond) throw new Error(what);
}
