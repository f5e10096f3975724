/** float64 CPU reference of kernels/matmul.wgsl (same argument conventions as MatmulShape). */
import type { MatmulShape } from "./matmul.ts";

export function matmulRef(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  C: ArrayLike<number> | null,
  s: MatmulShape,
): Float64Array {
  const lda = s.lda ?? (s.transA ? s.M : s.K);
  const ldb = s.ldb ?? (s.transB ? s.N : s.K);
  const ldc = s.ldc ?? s.N;
  const batch = s.batch ?? 1;
  const alpha = s.alpha ?? 1;
  const beta = s.beta ?? 0;
  const size = (s.offC ?? 0) + (batch - 1) * (s.sc ?? 0) + (s.M - 1) * ldc + s.N;
  const out = new Float64Array(C ? Math.max(C.length, size) : size);
  if (C) { for (let i = 0; i < C.length; i++) out[i] = C[i]; }
  for (let b = 0; b < batch; b++) {
    const oa = (s.offA ?? 0) + b * (s.sa ?? 0);
    const ob = (s.offB ?? 0) + b * (s.sb ?? 0);
    const oc = (s.offC ?? 0) + b * (s.sc ?? 0);
    for (let m = 0; m < s.M; m++) {
      for (let n = 0; n < s.N; n++) {
        let acc = 0;
        for (let k = 0; k < s.K; k++) {
          const a = s.transA ? A[oa + k * lda + m] : A[oa + m * lda + k];
          const bv = s.transB ? B[ob + k * ldb + n] : B[ob + n * ldb + k];
          acc += a * bv;
        }
        const i = oc + m * ldc + n;
        out[i] = alpha * acc + (beta !== 0 ? beta * out[i] : 0);
      }
    }
  }
  return out;
}
