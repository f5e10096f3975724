// Small-M variant of kernels/nf4_matmul.wgsl (decode: M = tokens ≤ 8), chosen by src/model/ops/linear.ts for
// the tiled (GPU) family when tokens ≤ 8: the same forward of a QLoRA projection
//   Y = X · Wᵀ  (+ scaling · U · Bᵀ)  (+ Y when beta = 1), f32 accumulation,
// with the same Params, bindings and dequantization (bitsandbytes order, the value rounded to OP_T; X clamped
// and rounded to OP_T: see nf4_matmul.wgsl). The tiled kernel computes 64 × 64 tiles (63 of 64 rows padding
// for one token) on ⌈N/64⌉ workgroups; here a workgroup computes NB = 4 output features for all M rows and its
// WG invocations split K: with FAST (host: K % 8 == 0) invocation t dequantizes words t, t + WG, ... of each
// feature's row (neighbouring invocations read neighbouring words, so the 4-bit weights are streamed once,
// coalesced), with one absmax per word (its 8 elements lie in one row and one 64-block); else element by
// element. The partial sums are added by wg_sum_n (kernels/lib/reduce_*.wgsl); the LoRA term (f32)
// is added after the base product, as in nf4_matmul.wgsl. Feature blocks form a 1-D grid folded over x/y.
// Rounding: as in nf4_matmul.wgsl the rounded operands go through workgroup memory of type OP_T (each
// invocation writes and reads back only its own slots; the barrier in between keeps the compiler from
// forwarding the f32 value and folding f32(OP_T(v)) back to v). One barrier per WG words.

struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, offX: u32, offY: u32, beta: f32,
  offset: f32, zero: u32, R: u32, scaling: f32,
}

override FAST: u32 = 0u;
override MR: u32 = 8u; // rows computed (the host passes M), ≤ 8
const WG: u32 = 32u;
const NB: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<X_T>;
@group(0) @binding(2) var<storage, read> Wq: array<u32>;      // packed NF4 bytes
@group(0) @binding(3) var<storage, read> Qa: array<u32>;      // qabsmax bytes, one per 64-block
@group(0) @binding(4) var<storage, read> absmax2: array<f32>; // one per 256 absmax
@group(0) @binding(5) var<storage, read> tables: array<f32>;  // [0,16): NF4 code, [16,272): dynamic map
@group(0) @binding(6) var<storage, read> U: array<f32>;
@group(0) @binding(7) var<storage, read> LB: array<f32>;
@group(0) @binding(8) var<storage, read_write> Y: array<f32>;

var<workgroup> ws: array<OP_T, 1024>; // [NB * 8][WG] dequantized weights of this step
var<workgroup> xs: array<OP_T, 2048>; // [MR * 8][WG] rounded inputs of this step

// #include reduce

fn absmax_of(block: u32) -> f32 {
  let q = (Qa[block >> 2u] >> ((block & 3u) * 8u)) & 0xffu;
  let prod = tables[16u + q] * absmax2[block >> 8u];
  // Opaque zero: no fma contraction of prod + offset (bitsandbytes rounds the product first).
  return bitcast<f32>(bitcast<u32>(prod) ^ p.zero) + p.offset;
}

fn to_op(v: f32) -> OP_T {
  return OP_T(clamp(v, -OP_MAX, OP_MAX));
}

// NF4 element ei of W (flat index), dequantized.
fn w_at(ei: u32) -> OP_T {
  let byte = (Wq[ei >> 3u] >> (((ei >> 1u) & 3u) * 8u)) & 0xffu;
  return to_op(tables[select(byte & 0xfu, byte >> 4u, (ei & 1u) == 0u)] * absmax_of(ei >> 6u));
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let li = lanes.li;
  let n0 = (wg.x + wg.y * nwg.x) * NB; // may overshoot N: loads clamped, stores guarded
  var wrow: array<u32, 4>; // element offset of each feature's row of W
  for (var j = 0u; j < NB; j++) { wrow[j] = min(n0 + j, p.N - 1u) * p.K; }
  var acc: array<f32, 32>; // [MR][NB]
  // Step: FAST: word kw = base + li (8 k: one word per feature, one absmax per word); else element k.
  let per = select(1u, 8u, FAST != 0u);
  let steps = select(p.K, p.K / 8u, FAST != 0u);
  for (var base = 0u; base < steps; base += WG) {
    let s = base + li;
    let k0 = s * per;
    if (s < steps) {
      for (var j = 0u; j < NB; j++) {
        if (FAST != 0u) {
          let e = wrow[j] + k0;
          let word = Wq[e >> 3u];
          let am = absmax_of(e >> 6u);
          for (var i = 0u; i < 8u; i++) {
            // Byte i/2 of the word holds elements i (high nibble, i even) and i+1 (low nibble).
            let c = (word >> ((i >> 1u) * 8u + select(0u, 4u, (i & 1u) == 0u))) & 0xfu;
            ws[(j * 8u + i) * WG + li] = to_op(tables[c] * am);
          }
        } else {
          ws[j * 8u * WG + li] = w_at(wrow[j] + k0);
        }
      }
      for (var m = 0u; m < MR; m++) {
        for (var i = 0u; i < per; i++) {
          xs[(m * 8u + i) * WG + li] = to_op(f32(X[p.offX + m * p.ldx + k0 + i]));
        }
      }
    }
    workgroupBarrier();
    if (s < steps) {
      for (var i = 0u; i < per; i++) {
        for (var m = 0u; m < MR; m++) {
          let x = f32(xs[(m * 8u + i) * WG + li]);
          for (var j = 0u; j < NB; j++) {
            acc[m * NB + j] = fma(x, f32(ws[(j * 8u + i) * WG + li]), acc[m * NB + j]);
          }
        }
      }
    }
  }
  let total = wg_sum_n(&acc, MR * NB, lanes); // invocation v gets Σ acc[v]
  if (li < MR * NB) {
    let m = li / NB;
    let n = n0 + li % NB;
    if (m < p.M && n < p.N) {
      var v = total;
      // LoRA: scaling · U · Bᵀ over r, f32 operands (PEFT adds the branch in f32), after the base product.
      for (var r = 0u; r < p.R; r++) { v = fma(p.scaling * U[m * p.R + r], LB[n * p.R + r], v); }
      let idx = p.offY + m * p.ldy + n;
      if (p.beta != 0.0) { v += p.beta * Y[idx]; }
      Y[idx] = v;
    }
  }
}
