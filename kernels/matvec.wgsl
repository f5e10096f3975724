// Small-M variant of kernels/matmul.wgsl (decode: M ≤ 8 rows, e.g. the tied LM head over a vocab chunk or a
// dense projection with tokens = rows), chosen by src/gpu/ops/matmul.ts for the tiled (GPU) family when
// M ≤ 8 and TRANS_B = 0 (B stored N×K, contiguous along k):
//   C = alpha * op(A) · Bᵀ + beta * C
// with the same Params, TRANS_A, A_T / B_T / C_T substitutions, batch (workgroup z) and view offsets. The tiled
// kernel computes a 16·TM × 64 tile, mostly padding for one row, and runs on few workgroups; here a workgroup
// computes NB = 4 columns for all M rows, its WG invocations split K (neighbouring invocations read neighbouring
// k of a row of B, so each row of B is streamed once, coalesced), and the partial sums are added in workgroup
// (wg_sum_n: subgroups where the device has them, else a tree in workgroup memory) at the end. Column blocks form a 1-D grid folded over x/y.

struct Params {
  M: u32, N: u32, K: u32, lda: u32,
  ldb: u32, ldc: u32, alpha: f32, beta: f32,
  sa: u32, sb: u32, sc: u32, offA: u32,
  offB: u32, offC: u32,
}

override TRANS_A: u32 = 0u;
override MR: u32 = 8u; // rows computed (the host passes M), ≤ 8
const WG: u32 = 64u;
const NB: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<A_T>;
@group(0) @binding(2) var<storage, read> B: array<B_T>;
@group(0) @binding(3) var<storage, read_write> C: array<C_T>;

// #include reduce

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let li = lanes.li;
  let batch = wg.z;
  let n0 = (wg.x + wg.y * nwg.x) * NB; // may overshoot N: loads clamped, stores guarded
  let abase = p.offA + batch * p.sa;
  let bbase = p.offB + batch * p.sb;
  var brow: array<u32, 4>;
  for (var j = 0u; j < NB; j++) { brow[j] = bbase + min(n0 + j, p.N - 1u) * p.ldb; }
  var acc: array<f32, 32>; // [MR][NB]
  for (var k = li; k < p.K; k += WG) {
    var b: array<f32, 4>;
    for (var j = 0u; j < NB; j++) { b[j] = f32(B[brow[j] + k]); }
    for (var i = 0u; i < MR; i++) {
      var a: f32;
      if (TRANS_A == 0u) { a = f32(A[abase + i * p.lda + k]); } else { a = f32(A[abase + k * p.lda + i]); }
      for (var j = 0u; j < NB; j++) { acc[i * NB + j] = fma(a, b[j], acc[i * NB + j]); }
    }
  }
  let total = wg_sum_n(&acc, MR * NB, lanes); // invocation v gets Σ acc[v]
  if (li < MR * NB) {
    let i = li / NB;
    let n = n0 + li % NB;
    if (i < p.M && n < p.N) {
      let idx = p.offC + batch * p.sc + i * p.ldc + n;
      var v = p.alpha * total;
      if (p.beta != 0.0) { v += p.beta * f32(C[idx]); }
      C[idx] = C_T(v);
    }
  }
}
