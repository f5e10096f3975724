// Register-blocked variant of kernels/matmul.wgsl for CPU adapters (lavapipe/llvmpipe, SwiftShader), chosen by
// src/gpu/ops/matmul.ts when gpu.isSoftware (or MAIEUTIC_KERNELS=regblock): the same
//   C = alpha * op(A) · op(B)ᵀ + beta * C
// with the same Params, TRANS_A / TRANS_B, A_T / B_T / C_T substitutions, batch (workgroup z, strides sa/sb/sc)
// and view offsets, f32 accumulation in the same k order as the tiled kernel (f32 results are identical).
// No workgroup memory and no barriers. On lavapipe a workgroupBarrier() suspends and resumes every SIMD batch
// of the workgroup (the tiled kernel spends most of its time there: BENCHMARKS.md finding 1), and every load
// from a buffer, uniform or not, is done lane by lane (about 10 instructions per lane and element, where a
// vector FMA is one), so the schedule is built to load few elements per multiply-add:
//   - a workgroup owns TM ≤ 8 rows (row0 = wg.y * TM; the host sets TM = min(M, 8), so a decode row computes
//     no padding rows) and WG·8 columns; each invocation owns 8 columns interleaved at stride WG
//     (n = col0 + lid + WG·j), so neighbouring lanes read neighbouring columns (contiguous when B is stored
//     K×N) and store contiguously;
//   - per k it loads TM values of A and 8 of B for 8·TM multiply-adds, into a TM × 8 block of accumulators
//     held as vec4 pairs (no private arrays: a CPU compiler may keep a dynamically indexed array in memory);
//     the TM values of A are the same for every invocation, so with subgroups each lane loads one row's and
//     the subgroup shares them (kernels/lib/row8_*.wgsl, rows_at).
// Rows/columns past the edge are clamped to the last valid one for loading (their results are dropped), so the
// K loop has no branches.

struct Params {
  M: u32, N: u32, K: u32, lda: u32,
  ldb: u32, ldc: u32, alpha: f32, beta: f32,
  sa: u32, sb: u32, sc: u32, offA: u32,
  offB: u32, offC: u32,
}

override TRANS_A: u32 = 0u;
override TRANS_B: u32 = 0u;
override TM: u32 = 8u;
override WG: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<A_T>;
@group(0) @binding(2) var<storage, read> B: array<B_T>;
@group(0) @binding(3) var<storage, read_write> C: array<C_T>;

// One row's 8 columns (a: columns 0..3 of the invocation, b: 4..7).
struct Acc { a: vec4f, b: vec4f }

fn mac(c: Acc, a: f32, b: Acc) -> Acc {
  return Acc(fma(vec4f(a), b.a, c.a), fma(vec4f(a), b.b, c.b));
}

// Offsets of row m of op(A) and column n of op(B) (clamped to the last valid one).
fn a_row(base: u32, m: u32) -> u32 {
  return base + min(m, p.M - 1u) * select(p.lda, 1u, TRANS_A != 0u);
}

fn b_col(base: u32, n: u32) -> u32 {
  return base + min(n, p.N - 1u) * select(p.ldb, 1u, TRANS_B != 0u);
}

// A[i]; rows_at (kernels/lib/row8_*.wgsl) gets one per row of the workgroup for a k.
fn fetch1(i: u32) -> f32 {
  return f32(A[i]);
}

struct V8 { lo: vec4f, hi: vec4f }

// #include row8

fn store(cbase: u32, m: u32, n0: u32, c: Acc) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 8u; j++) {
    let n = n0 + WG * j;
    if (n >= p.N) { return; }
    let idx = cbase + m * p.ldc + n;
    var v = p.alpha * select(c.b[j & 3u], c.a[j & 3u], j < 4u);
    if (p.beta != 0.0) { v += p.beta * f32(C[idx]); }
    C[idx] = C_T(v);
  }
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, r8: Row8) {
  let batch = wg.z;
  let row0 = wg.y * TM;
  let col0 = wg.x * WG * 8u + lid.x;
  let bk = select(1u, p.ldb, TRANS_B != 0u);
  let ak = select(1u, p.lda, TRANS_A != 0u);
  let abase = p.offA + batch * p.sa;
  let rows = row_offsets(array<u32, 8>(a_row(abase, row0), a_row(abase, row0 + 1u), a_row(abase, row0 + 2u),
                                       a_row(abase, row0 + 3u), a_row(abase, row0 + 4u), a_row(abase, row0 + 5u),
                                       a_row(abase, row0 + 6u), a_row(abase, row0 + 7u)), TM, r8);
  let bbase = p.offB + batch * p.sb;
  let b0 = b_col(bbase, col0);
  let b1 = b_col(bbase, col0 + WG);
  let b2 = b_col(bbase, col0 + 2u * WG);
  let b3 = b_col(bbase, col0 + 3u * WG);
  let b4 = b_col(bbase, col0 + 4u * WG);
  let b5 = b_col(bbase, col0 + 5u * WG);
  let b6 = b_col(bbase, col0 + 6u * WG);
  let b7 = b_col(bbase, col0 + 7u * WG);
  var c0 = Acc(vec4f(0.0), vec4f(0.0));
  var c1 = c0;
  var c2 = c0;
  var c3 = c0;
  var c4 = c0;
  var c5 = c0;
  var c6 = c0;
  var c7 = c0;
  for (var k = 0u; k < p.K; k++) {
    let kb = k * bk;
    let b = Acc(vec4f(f32(B[b0 + kb]), f32(B[b1 + kb]), f32(B[b2 + kb]), f32(B[b3 + kb])),
                vec4f(f32(B[b4 + kb]), f32(B[b5 + kb]), f32(B[b6 + kb]), f32(B[b7 + kb])));
    let a = rows_at(rows, k * ak); // op(A)[row0 + m, k] for the TM rows
    c0 = mac(c0, a.lo.x, b);
    if (TM > 1u) { c1 = mac(c1, a.lo.y, b); }
    if (TM > 2u) { c2 = mac(c2, a.lo.z, b); }
    if (TM > 3u) { c3 = mac(c3, a.lo.w, b); }
    if (TM > 4u) { c4 = mac(c4, a.hi.x, b); }
    if (TM > 5u) { c5 = mac(c5, a.hi.y, b); }
    if (TM > 6u) { c6 = mac(c6, a.hi.z, b); }
    if (TM > 7u) { c7 = mac(c7, a.hi.w, b); }
  }
  let cbase = p.offC + batch * p.sc;
  store(cbase, row0, col0, c0);
  if (TM > 1u) { store(cbase, row0 + 1u, col0, c1); }
  if (TM > 2u) { store(cbase, row0 + 2u, col0, c2); }
  if (TM > 3u) { store(cbase, row0 + 3u, col0, c3); }
  if (TM > 4u) { store(cbase, row0 + 4u, col0, c4); }
  if (TM > 5u) { store(cbase, row0 + 5u, col0, c5); }
  if (TM > 6u) { store(cbase, row0 + 6u, col0, c6); }
  if (TM > 7u) { store(cbase, row0 + 7u, col0, c7); }
}
