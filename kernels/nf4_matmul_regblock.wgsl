// Register-blocked variant of kernels/nf4_matmul.wgsl for CPU adapters (chosen by src/model/ops/linear.ts when
// gpu.isSoftware, or MAIEUTIC_KERNELS=regblock): the same forward of a QLoRA projection
//   Y = X · Wᵀ  (+ scaling · U · Bᵀ)  (+ Y when beta = 1), f32 accumulation,
// with the same Params, bindings and dequantization (bitsandbytes order, the value rounded to the operand type:
// see nf4_matmul.wgsl) and the same k order of the accumulation, so results equal the tiled kernel's bit for bit.
// Only the schedule differs: no workgroup memory and no barriers. On lavapipe (and other CPU adapters) a
// workgroupBarrier() suspends and resumes every SIMD batch of the workgroup (BENCHMARKS.md finding 1), and every
// load from a buffer, uniform or not, is done lane by lane (about 10 instructions per lane and element), so the
// schedule is built to load as few elements per multiply-add as possible:
//   - a workgroup owns TM ≤ 8 rows of X (row0 = wg.y * TM; the host sets TM = min(M, 8), so decode's M = 1
//     computes no padding rows) and WG·8 output features; each invocation owns 8 features interleaved at stride
//     WG (n = col0 + lid + WG·j) and keeps the TM × 8 block in registers;
//   - per 8 k (FAST, host: K % 8 == 0) an invocation loads 8 packed words (64 weights) and 8·TM values of X for
//     64·TM multiply-adds (with subgroups one value of X per row, the others shared: kernels/lib/row8_*.wgsl,
//     fetch8); the NF4 code is looked up with a select tree over the 16 table values held in registers (a
//     load per code would cost more than the product), and the absmax is loaded once per 64-block
//     (A64, host: K % 64 == 0, so a block never crosses a row) or once per word (else).
// Rounding to OP_T: the tiled kernel's workgroup tiles of type OP_T make the f16 rounding happen; in registers a
// compiler folds f32(f16(v)) back to v, so `rnd4` rounds in integer arithmetic instead: round-to-nearest-even to
// 11 significant bits for |v| ≥ 2^-14, to a multiple of 2^-24 below (f16 subnormals), after the clamp to ±OP_MAX
// (identical to the f32 -> f16 conversion for every finite input; F16 = 0 leaves f32 operands unrounded).
// K % 8 != 0 (tests' odd shapes only) takes a per-element path. Rows/features past the edge are clamped to the
// last valid one for loading (their results are dropped).

struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, offX: u32, offY: u32, beta: f32,
  offset: f32, zero: u32, R: u32, scaling: f32,
}

override FAST: u32 = 0u;
override A64: u32 = 0u;
override F16: u32 = 0u;
override TM: u32 = 8u;
override WG: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<X_T>;
@group(0) @binding(2) var<storage, read> Wq: array<u32>;      // packed NF4 bytes
@group(0) @binding(3) var<storage, read> Qa: array<u32>;      // qabsmax bytes, one per 64-block
@group(0) @binding(4) var<storage, read> absmax2: array<f32>; // one per 256 absmax
@group(0) @binding(5) var<storage, read> tables: array<f32>;  // [0,16): NF4 code, [16,272): dynamic map
@group(0) @binding(6) var<storage, read> U: array<f32>;
@group(0) @binding(7) var<storage, read> LB: array<f32>;
@group(0) @binding(8) var<storage, read_write> Y: array<f32>;

// #include nf4_regs

// Eight consecutive k of one row (of W dequantized, or of X).
struct V8 { lo: vec4f, hi: vec4f }

// The 8 elements of a packed word (byte i/2 holds element i in its high nibble when i is even), dequantized.
fn deq8(word: u32, am: f32, t: Code) -> V8 {
  let cl = (vec4u(word) >> vec4u(4u, 0u, 12u, 8u)) & vec4u(0xfu);
  let ch = (vec4u(word) >> vec4u(20u, 16u, 28u, 24u)) & vec4u(0xfu);
  return V8(rnd4(lut4(cl, t) * am), rnd4(lut4(ch, t) * am));
}

// X[i] rounded to the operand type; fetch8 (kernels/lib/row8_*.wgsl) gets eight consecutive ones, shared
// through the subgroup where the device allows.
fn fetch1(i: u32) -> f32 {
  return rnd4(vec4f(f32(X[i]), 0.0, 0.0, 0.0)).x;
}

// #include row8

// c[j] += Σ_k x[k] · w_j[k] over the 8 k, in k order, for four features.
fn mac8(c: vec4f, x: V8, w0: V8, w1: V8, w2: V8, w3: V8) -> vec4f {
  var r = fma(vec4f(x.lo.x), vec4f(w0.lo.x, w1.lo.x, w2.lo.x, w3.lo.x), c);
  r = fma(vec4f(x.lo.y), vec4f(w0.lo.y, w1.lo.y, w2.lo.y, w3.lo.y), r);
  r = fma(vec4f(x.lo.z), vec4f(w0.lo.z, w1.lo.z, w2.lo.z, w3.lo.z), r);
  r = fma(vec4f(x.lo.w), vec4f(w0.lo.w, w1.lo.w, w2.lo.w, w3.lo.w), r);
  r = fma(vec4f(x.hi.x), vec4f(w0.hi.x, w1.hi.x, w2.hi.x, w3.hi.x), r);
  r = fma(vec4f(x.hi.y), vec4f(w0.hi.y, w1.hi.y, w2.hi.y, w3.hi.y), r);
  r = fma(vec4f(x.hi.z), vec4f(w0.hi.z, w1.hi.z, w2.hi.z, w3.hi.z), r);
  return fma(vec4f(x.hi.w), vec4f(w0.hi.w, w1.hi.w, w2.hi.w, w3.hi.w), r);
}

// One row's 8 features (a: features 0..3, b: 4..7 of the invocation).
struct Acc { a: vec4f, b: vec4f }

// The 8 features' weights at 8 consecutive k.
struct W64 { w0: V8, w1: V8, w2: V8, w3: V8, w4: V8, w5: V8, w6: V8, w7: V8 }

fn row8(c: Acc, x: V8, w: W64) -> Acc {
  return Acc(mac8(c.a, x, w.w0, w.w1, w.w2, w.w3), mac8(c.b, x, w.w4, w.w5, w.w6, w.w7));
}

// One k: c += x · w (per-element path).
fn row1(c: Acc, x: f32, w: Acc) -> Acc {
  return Acc(fma(vec4f(x), w.a, c.a), fma(vec4f(x), w.b, c.b));
}

// W[n, k] dequantized and unrounded (per-element path).
fn w1(n: u32, k: u32) -> f32 {
  let ei = n * p.K + k;
  let byte = (Wq[ei >> 3u] >> (((ei >> 1u) & 3u) * 8u)) & 0xffu;
  return tables[select(byte & 0xfu, byte >> 4u, (ei & 1u) == 0u)] * absmax_of(ei >> 6u);
}

// LoRA: c += (scaling · U[m, r]) · LB[n_j, r] over r, f32 operands, after the base product (as nf4_matmul.wgsl).
fn lora(c: Acc, m: u32, n: array<u32, 8>) -> Acc {
  var r = c;
  let um = min(m, p.M - 1u) * p.R;
  for (var k = 0u; k < p.R; k++) {
    let u = vec4f(p.scaling * U[um + k]);
    r.a = fma(u, vec4f(LB[n[0] * p.R + k], LB[n[1] * p.R + k], LB[n[2] * p.R + k], LB[n[3] * p.R + k]), r.a);
    r.b = fma(u, vec4f(LB[n[4] * p.R + k], LB[n[5] * p.R + k], LB[n[6] * p.R + k], LB[n[7] * p.R + k]), r.b);
  }
  return r;
}

fn store(m: u32, n0: u32, c: Acc) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 8u; j++) {
    let n = n0 + WG * j;
    if (n >= p.N) { return; }
    let idx = p.offY + m * p.ldy + n;
    var v = select(c.b[j & 3u], c.a[j & 3u], j < 4u);
    if (p.beta != 0.0) { v += p.beta * Y[idx]; }
    Y[idx] = v;
  }
}

fn xrow(m: u32) -> u32 {
  return p.offX + min(m, p.M - 1u) * p.ldx;
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, r8: Row8) {
  let t = code_regs();
  let row0 = wg.y * TM;
  let col0 = wg.x * WG * 8u + lid.x;
  let N1 = p.N - 1u;
  let n = array<u32, 8>(min(col0, N1), min(col0 + WG, N1), min(col0 + 2u * WG, N1), min(col0 + 3u * WG, N1),
                        min(col0 + 4u * WG, N1), min(col0 + 5u * WG, N1), min(col0 + 6u * WG, N1),
                        min(col0 + 7u * WG, N1));
  // Element offsets of the rows of W and X.
  let e0 = n[0] * p.K;
  let e1 = n[1] * p.K;
  let e2 = n[2] * p.K;
  let e3 = n[3] * p.K;
  let e4 = n[4] * p.K;
  let e5 = n[5] * p.K;
  let e6 = n[6] * p.K;
  let e7 = n[7] * p.K;
  let xa0 = xrow(row0);
  let xa1 = xrow(row0 + 1u);
  let xa2 = xrow(row0 + 2u);
  let xa3 = xrow(row0 + 3u);
  let xa4 = xrow(row0 + 4u);
  let xa5 = xrow(row0 + 5u);
  let xa6 = xrow(row0 + 6u);
  let xa7 = xrow(row0 + 7u);
  var c0 = Acc(vec4f(0.0), vec4f(0.0));
  var c1 = c0;
  var c2 = c0;
  var c3 = c0;
  var c4 = c0;
  var c5 = c0;
  var c6 = c0;
  var c7 = c0;
  if (FAST != 0u) {
    var a0 = 0.0;
    var a1 = 0.0;
    var a2 = 0.0;
    var a3 = 0.0;
    var a4 = 0.0;
    var a5 = 0.0;
    var a6 = 0.0;
    var a7 = 0.0;
    for (var k = 0u; k < p.K; k += 8u) {
      if (A64 == 0u || (k & 63u) == 0u) {
        a0 = absmax_of((e0 + k) >> 6u);
        a1 = absmax_of((e1 + k) >> 6u);
        a2 = absmax_of((e2 + k) >> 6u);
        a3 = absmax_of((e3 + k) >> 6u);
        a4 = absmax_of((e4 + k) >> 6u);
        a5 = absmax_of((e5 + k) >> 6u);
        a6 = absmax_of((e6 + k) >> 6u);
        a7 = absmax_of((e7 + k) >> 6u);
      }
      let w = W64(deq8(Wq[(e0 + k) >> 3u], a0, t), deq8(Wq[(e1 + k) >> 3u], a1, t),
                  deq8(Wq[(e2 + k) >> 3u], a2, t), deq8(Wq[(e3 + k) >> 3u], a3, t),
                  deq8(Wq[(e4 + k) >> 3u], a4, t), deq8(Wq[(e5 + k) >> 3u], a5, t),
                  deq8(Wq[(e6 + k) >> 3u], a6, t), deq8(Wq[(e7 + k) >> 3u], a7, t));
      c0 = row8(c0, fetch8(xa0 + k, r8), w);
      if (TM > 1u) { c1 = row8(c1, fetch8(xa1 + k, r8), w); }
      if (TM > 2u) { c2 = row8(c2, fetch8(xa2 + k, r8), w); }
      if (TM > 3u) { c3 = row8(c3, fetch8(xa3 + k, r8), w); }
      if (TM > 4u) { c4 = row8(c4, fetch8(xa4 + k, r8), w); }
      if (TM > 5u) { c5 = row8(c5, fetch8(xa5 + k, r8), w); }
      if (TM > 6u) { c6 = row8(c6, fetch8(xa6 + k, r8), w); }
      if (TM > 7u) { c7 = row8(c7, fetch8(xa7 + k, r8), w); }
    }
  } else {
    for (var k = 0u; k < p.K; k++) {
      let lo = rnd4(vec4f(w1(n[0], k), w1(n[1], k), w1(n[2], k), w1(n[3], k)));
      let hi = rnd4(vec4f(w1(n[4], k), w1(n[5], k), w1(n[6], k), w1(n[7], k)));
      let w = Acc(lo, hi);
      c0 = row1(c0, fetch1(xa0 + k), w);
      if (TM > 1u) { c1 = row1(c1, fetch1(xa1 + k), w); }
      if (TM > 2u) { c2 = row1(c2, fetch1(xa2 + k), w); }
      if (TM > 3u) { c3 = row1(c3, fetch1(xa3 + k), w); }
      if (TM > 4u) { c4 = row1(c4, fetch1(xa4 + k), w); }
      if (TM > 5u) { c5 = row1(c5, fetch1(xa5 + k), w); }
      if (TM > 6u) { c6 = row1(c6, fetch1(xa6 + k), w); }
      if (TM > 7u) { c7 = row1(c7, fetch1(xa7 + k), w); }
    }
  }
  if (p.R > 0u) {
    c0 = lora(c0, row0, n);
    if (TM > 1u) { c1 = lora(c1, row0 + 1u, n); }
    if (TM > 2u) { c2 = lora(c2, row0 + 2u, n); }
    if (TM > 3u) { c3 = lora(c3, row0 + 3u, n); }
    if (TM > 4u) { c4 = lora(c4, row0 + 4u, n); }
    if (TM > 5u) { c5 = lora(c5, row0 + 5u, n); }
    if (TM > 6u) { c6 = lora(c6, row0 + 6u, n); }
    if (TM > 7u) { c7 = lora(c7, row0 + 7u, n); }
  }
  store(row0, col0, c0);
  if (TM > 1u) { store(row0 + 1u, col0, c1); }
  if (TM > 2u) { store(row0 + 2u, col0, c2); }
  if (TM > 3u) { store(row0 + 3u, col0, c3); }
  if (TM > 4u) { store(row0 + 4u, col0, c4); }
  if (TM > 5u) { store(row0 + 5u, col0, c5); }
  if (TM > 6u) { store(row0 + 6u, col0, c6); }
  if (TM > 7u) { store(row0 + 7u, col0, c7); }
}
