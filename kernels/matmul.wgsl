// Tiled matrix product with f32 accumulation:  C = alpha * op(A) · op(B)ᵀ + beta * C
//   op(A)[m,k] = A[m*lda + k]          (TRANS_A = 0, A stored M×K)   or A[k*lda + m] (TRANS_A = 1, A stored K×M)
//   op(B)[n,k] = B[n*ldb + k]          (TRANS_B = 0, B stored N×K, the nn.Linear weight layout: x·Wᵀ)
//             or B[k*ldb + n]          (TRANS_B = 1, B stored K×N)
// Batched over workgroup z with element strides sa/sb/sc; offA/offB/offC select views of larger buffers.
// A_T/B_T/C_T are substituted by the host (f32 or f16). Each workgroup computes a BM×BN tile (WG_Y*TM × WG_X*TN)
// stepping over K in TK-wide slices staged in workgroup memory; each invocation accumulates TM×TN outputs.
// TM (rows per invocation) is chosen by the host from M: 4 for big products, 1 or 2 when M is small (decode,
// a few rows against the 256k-row embedding) so that a 64-row tile does not compute mostly padding.

struct Params {
  M: u32, N: u32, K: u32, lda: u32,
  ldb: u32, ldc: u32, alpha: f32, beta: f32,
  sa: u32, sb: u32, sc: u32, offA: u32,
  offB: u32, offC: u32,
}

override TRANS_A: u32 = 0u;
override TRANS_B: u32 = 0u;
override TM: u32 = 4u;
const WG_X: u32 = 16u;
const WG_Y: u32 = 16u;
const TN: u32 = 4u;
const TK: u32 = 16u;
override BM: u32 = WG_Y * TM;
const BN: u32 = 64u; // WG_X * TN

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<A_T>;
@group(0) @binding(2) var<storage, read> B: array<B_T>;
@group(0) @binding(3) var<storage, read_write> C: array<C_T>;

var<workgroup> As: array<f32, BM * TK>; // laid out [k][m]
var<workgroup> Bs: array<f32, 1024>; // BN * TK, laid out [k][n]

fn loadA(b: u32, m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  let base = p.offA + b * p.sa;
  if (TRANS_A == 0u) { return f32(A[base + m * p.lda + k]); }
  return f32(A[base + k * p.lda + m]);
}

fn loadB(b: u32, n: u32, k: u32) -> f32 {
  if (n >= p.N || k >= p.K) { return 0.0; }
  let base = p.offB + b * p.sb;
  if (TRANS_B == 0u) { return f32(B[base + n * p.ldb + k]); }
  return f32(B[base + k * p.ldb + n]);
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let batch = wg.z;
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  var acc: array<f32, 16>; // TM * TN
  let nthreads = WG_X * WG_Y;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // Stage the slices; the index order follows the memory order of each operand so loads coalesce.
    for (var e = li; e < BM * TK; e += nthreads) {
      var m: u32; var k: u32;
      if (TRANS_A == 0u) { m = e / TK; k = e % TK; } else { m = e % BM; k = e / BM; }
      As[k * BM + m] = loadA(batch, row0 + m, k0 + k);
    }
    for (var e = li; e < BN * TK; e += nthreads) {
      var n: u32; var k: u32;
      if (TRANS_B == 0u) { n = e / TK; k = e % TK; } else { n = e % BN; k = e / BN; }
      Bs[k * BN + n] = loadB(batch, col0 + n, k0 + k);
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var a: array<f32, 4>; // TM ≤ 4
      var bv: array<f32, 4>;
      for (var i = 0u; i < TM; i++) { a[i] = As[k * BM + lid.y * TM + i]; }
      for (var j = 0u; j < TN; j++) { bv[j] = Bs[k * BN + lid.x * TN + j]; }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) { acc[i * TN + j] = fma(a[i], bv[j], acc[i * TN + j]); }
      }
    }
    workgroupBarrier();
  }
  let cbase = p.offC + batch * p.sc;
  for (var i = 0u; i < TM; i++) {
    let m = row0 + lid.y * TM + i;
    if (m >= p.M) { continue; }
    for (var j = 0u; j < TN; j++) {
      let n = col0 + lid.x * TN + j;
      if (n >= p.N) { continue; }
      let idx = cbase + m * p.ldc + n;
      var v = p.alpha * acc[i * TN + j];
      if (p.beta != 0.0) { v += p.beta * f32(C[idx]); }
      C[idx] = C_T(v);
    }
  }
}
