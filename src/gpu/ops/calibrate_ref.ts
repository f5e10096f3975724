/**
 * CPU reference (float64) of kernels/calibrate.wgsl: every workgroup of 64 lanes in lockstep, the neighbour
 * mix read after the barrier. Lanes at or past `n` still run (they feed their neighbours) but write nothing.
 */
export function calibrationRef(n: number, iters: number): Float64Array {
  const groups = Math.ceil(n / 64);
  const out = new Float64Array(n);
  const m = [0.999, 0.998, 0.997, 0.996], c = [1e-3, 2e-3, 3e-3, 4e-3];
  for (let g = 0; g < groups; g++) {
    let a = Array.from({ length: 64 }, (_, li) => [(g * 64 + li) * 1e-6, 0.25, 0.5, 0.75]);
    for (let k = 0; k < iters; k++) {
      for (const v of a) for (let j = 0; j < 16; j++) for (let q = 0; q < 4; q++) v[q] = v[q] * m[q] + c[q];
      a = a.map((v, li) => v.map((x, q) => 0.5 * (x + a[(li + 1) % 64][q])));
    }
    for (let li = 0; li < 64 && g * 64 + li < n; li++) out[g * 64 + li] = a[li].reduce((s, x) => s + x, 0);
  }
  return out;
}
