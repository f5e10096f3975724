// Register-blocked variant of kernels/nf4_matmul_dx.wgsl for CPU adapters (chosen by src/model/ops/linear.ts
// when gpu.isSoftware, or MAIEUTIC_KERNELS=regblock): the same input gradient through the frozen NF4 weight
//   dX = dY · W  +  mask ∘ (dU · A)  (+ dX when beta = 1), f32 accumulation,
// with the same Params, bindings, dequantization and operand rounding (see nf4_matmul_dx.wgsl and
// nf4_matmul_regblock.wgsl) and the same order: the LoRA part first (f32), masked, then the base product in k
// order. No workgroup memory and no barriers (BENCHMARKS.md finding 1), and few loads per multiply-add:
//   - a workgroup owns TM ≤ 8 rows (row0 = wg.y * TM) and WG packed words of columns; each invocation owns one
//     word, i.e. 8 consecutive columns of W (FAST, host: N % 8 == 0: a word never straddles rows or 64-blocks),
//     and keeps the TM × 8 block of dX in registers;
//   - per k it loads one word (8 weights), its absmax (one per word: consecutive k are N apart, in other
//     64-blocks) and TM values of dY, for 8·TM multiply-adds; codes go through the select tree and
//     rounding of kernels/lib/nf4_regs.wgsl (shared with nf4_matmul_regblock.wgsl); every invocation needs the same TM values
//     of dY, so with subgroups each lane loads and rounds one row's and the subgroup shares them
//     (kernels/lib/row8_*.wgsl, rows_at).
// N % 8 != 0 (tests' odd shapes only) takes a per-element path. Rows/columns past the edge are clamped to the
// last valid one for loading (their results are dropped).
// The dropout library (pcg_hash, dropout_mult) is appended by the host from kernels/lora_dropout.wgsl.

struct Params {
  M: u32, N: u32, K: u32, ldy: u32,
  ldx: u32, offY: u32, offX: u32, beta: f32,
  offset: f32, zero: u32, R: u32, dropout: u32,
  k0: u32, k1: u32, threshold: u32, scale: f32,
}

override FAST: u32 = 0u;
override F16: u32 = 0u;
override TM: u32 = 8u;
override WG: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> DY: array<Y_T>;
@group(0) @binding(2) var<storage, read> Wq: array<u32>;
@group(0) @binding(3) var<storage, read> Qa: array<u32>;
@group(0) @binding(4) var<storage, read> absmax2: array<f32>;
@group(0) @binding(5) var<storage, read> tables: array<f32>;
@group(0) @binding(6) var<storage, read> DU: array<f32>;
@group(0) @binding(7) var<storage, read> LA: array<f32>;
@group(0) @binding(8) var<storage, read_write> DX: array<f32>;

// #include nf4_regs

// One row's 8 columns (a: columns 0..3 of the invocation's word, b: 4..7).
struct Acc { a: vec4f, b: vec4f }

fn deq8(word: u32, am: f32, t: Code) -> Acc {
  let cl = (vec4u(word) >> vec4u(4u, 0u, 12u, 8u)) & vec4u(0xfu);
  let ch = (vec4u(word) >> vec4u(20u, 16u, 28u, 24u)) & vec4u(0xfu);
  return Acc(rnd4(lut4(cl, t) * am), rnd4(lut4(ch, t) * am));
}

fn mac(c: Acc, y: f32, w: Acc) -> Acc {
  return Acc(fma(vec4f(y), w.a, c.a), fma(vec4f(y), w.b, c.b));
}

// dY[i] rounded to the operand type; rows_at (kernels/lib/row8_*.wgsl) gets one per row for a k.
fn fetch1(i: u32) -> f32 {
  return rnd4(vec4f(f32(DY[i]), 0.0, 0.0, 0.0)).x;
}

struct V8 { lo: vec4f, hi: vec4f }

// #include row8

// W[k, n] dequantized and unrounded (per-element path; n clamped to the last column).
fn w1(k: u32, n: u32) -> f32 {
  let ei = k * p.N + min(n, p.N - 1u);
  let byte = (Wq[ei >> 3u] >> (((ei >> 1u) & 3u) * 8u)) & 0xffu;
  return tables[select(byte & 0xfu, byte >> 4u, (ei & 1u) == 0u)] * absmax_of(ei >> 6u);
}

// LoRA: c += dU[m, r] · A[r, n0 .. n0+8) over r, f32 operands, then the dropout mask of the forward (element
// index m * N + n, the index of x), as nf4_matmul_dx.wgsl does before the base product.
fn lora(m: u32, n0: u32) -> Acc {
  var c = Acc(vec4f(0.0), vec4f(0.0));
  let um = min(m, p.M - 1u) * p.R;
  let N1 = p.N - 1u;
  for (var r = 0u; r < p.R; r++) {
    let a = r * p.N;
    c = mac(c, DU[um + r], Acc(vec4f(LA[a + min(n0, N1)], LA[a + min(n0 + 1u, N1)], LA[a + min(n0 + 2u, N1)],
                                     LA[a + min(n0 + 3u, N1)]),
                               vec4f(LA[a + min(n0 + 4u, N1)], LA[a + min(n0 + 5u, N1)], LA[a + min(n0 + 6u, N1)],
                                     LA[a + min(n0 + 7u, N1)])));
  }
  if (p.dropout != 0u && m < p.M) {
    for (var j = 0u; j < 8u; j++) {
      let n = n0 + j;
      if (n < p.N) {
        let d = dropout_mult(p.k0, p.k1, p.threshold, p.scale, m * p.N + n);
        if (j < 4u) { c.a[j] *= d; } else { c.b[j - 4u] *= d; }
      }
    }
  }
  return c;
}

fn store(m: u32, n0: u32, c: Acc) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 8u; j++) {
    let n = n0 + j;
    if (n >= p.N) { return; }
    let idx = p.offX + m * p.ldx + n;
    var v = select(c.b[j & 3u], c.a[j & 3u], j < 4u);
    if (p.beta != 0.0) { v += p.beta * DX[idx]; }
    DX[idx] = v;
  }
}

fn yrow(m: u32) -> u32 {
  return p.offY + min(m, p.M - 1u) * p.ldy;
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, r8: Row8) {
  let t = code_regs();
  let row0 = wg.y * TM;
  let rows = row_offsets(array<u32, 8>(yrow(row0), yrow(row0 + 1u), yrow(row0 + 2u), yrow(row0 + 3u),
                                       yrow(row0 + 4u), yrow(row0 + 5u), yrow(row0 + 6u), yrow(row0 + 7u)), TM, r8);
  let n0 = (wg.x * WG + lid.x) * 8u; // first of the invocation's 8 columns
  var c0 = Acc(vec4f(0.0), vec4f(0.0));
  var c1 = c0;
  var c2 = c0;
  var c3 = c0;
  var c4 = c0;
  var c5 = c0;
  var c6 = c0;
  var c7 = c0;
  if (p.R > 0u) {
    c0 = lora(row0, n0);
    if (TM > 1u) { c1 = lora(row0 + 1u, n0); }
    if (TM > 2u) { c2 = lora(row0 + 2u, n0); }
    if (TM > 3u) { c3 = lora(row0 + 3u, n0); }
    if (TM > 4u) { c4 = lora(row0 + 4u, n0); }
    if (TM > 5u) { c5 = lora(row0 + 5u, n0); }
    if (TM > 6u) { c6 = lora(row0 + 6u, n0); }
    if (TM > 7u) { c7 = lora(row0 + 7u, n0); }
  }
  // FAST: the word of row k holding columns n0 .. n0+8 (n0 clamped to the last word).
  let nw = min(n0, p.N - select(1u, 8u, FAST != 0u));
  for (var k = 0u; k < p.K; k++) {
    var w: Acc;
    if (FAST != 0u) {
      let e = k * p.N + nw;
      w = deq8(Wq[e >> 3u], absmax_of(e >> 6u), t);
    } else {
      w = Acc(rnd4(vec4f(w1(k, n0), w1(k, n0 + 1u), w1(k, n0 + 2u), w1(k, n0 + 3u))),
              rnd4(vec4f(w1(k, n0 + 4u), w1(k, n0 + 5u), w1(k, n0 + 6u), w1(k, n0 + 7u))));
    }
    let y = rows_at(rows, k); // dY[row0 + m, k] for the TM rows
    c0 = mac(c0, y.lo.x, w);
    if (TM > 1u) { c1 = mac(c1, y.lo.y, w); }
    if (TM > 2u) { c2 = mac(c2, y.lo.z, w); }
    if (TM > 3u) { c3 = mac(c3, y.lo.w, w); }
    if (TM > 4u) { c4 = mac(c4, y.hi.x, w); }
    if (TM > 5u) { c5 = mac(c5, y.hi.y, w); }
    if (TM > 6u) { c6 = mac(c6, y.hi.z, w); }
    if (TM > 7u) { c7 = mac(c7, y.hi.w, w); }
  }
  store(row0, n0, c0);
  if (TM > 1u) { store(row0 + 1u, n0, c1); }
  if (TM > 2u) { store(row0 + 2u, n0, c2); }
  if (TM > 3u) { store(row0 + 3u, n0, c3); }
  if (TM > 4u) { store(row0 + 4u, n0, c4); }
  if (TM > 5u) { store(row0 + 5u, n0, c5); }
  if (TM > 6u) { store(row0 + 6u, n0, c6); }
  if (TM > 7u) { store(row0 + 7u, n0, c7); }
}
