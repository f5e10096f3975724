// Input gradient of a QLoRA projection through the frozen NF4 weight (the transposed access of nf4_matmul):
//   dX = dY · W  +  mask ∘ (dU · A)  (+ dX when beta = 1), f32 accumulation.
//   dY [M, K] (row stride ldy), W [K, N] = the nn.Linear weight [out, in] in NF4 (so here K = out_features and
//   N = in_features), dU [M, R] = scaling · dY · B (kernels/lora_down.wgsl), A [R, N] lora_A, dX [M, N].
// Dequantization as in nf4_matmul.wgsl (bitsandbytes order, value rounded to OP_T): bnb's MatMul4Bit.backward
// computes grad_A = grad_output @ dequantize_4bit(W).to(grad_output.dtype), the same dequantized operand as the
// forward. dY is rounded to OP_T (clamped to OP_MAX). The LoRA part is computed first, in f32, as R-slabs of the
// tile loop, multiplied by the dropout mask of the forward (regenerated: kernels/lora_dropout.wgsl, element
// index m * N + n, the index of x) and then the base product accumulates on top of it. Base slabs are staged
// in workgroup memory of type OP_T, which is what makes the f16 rounding happen (see nf4_matmul.wgsl).
// FAST (host: N % 8 == 0): each thread dequantizes one u32 word, 8 consecutive columns of one row of W; a word
// then never straddles rows or 64-blocks.
// The dropout library (pcg_hash, dropout_mult) is appended by the host from kernels/lora_dropout.wgsl.

struct Params {
  M: u32, N: u32, K: u32, ldy: u32,
  ldx: u32, offY: u32, offX: u32, beta: f32,
  offset: f32, zero: u32, R: u32, dropout: u32,
  k0: u32, k1: u32, threshold: u32, scale: f32,
}

override FAST: u32 = 0u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const TK: u32 = 16u;
const BM: u32 = 64u;
const BN: u32 = 64u;
const NT: u32 = 256u;
const TKL: u32 = 8u; // r-slab of the LoRA term

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> DY: array<Y_T>;
@group(0) @binding(2) var<storage, read> Wq: array<u32>;
@group(0) @binding(3) var<storage, read> Qa: array<u32>;
@group(0) @binding(4) var<storage, read> absmax2: array<f32>;
@group(0) @binding(5) var<storage, read> tables: array<f32>;
@group(0) @binding(6) var<storage, read> DU: array<f32>;
@group(0) @binding(7) var<storage, read> LA: array<f32>;
@group(0) @binding(8) var<storage, read_write> DX: array<f32>;

var<workgroup> Ys: array<OP_T, 1024>; // BM * TK, [k][m]
var<workgroup> Ws: array<OP_T, 1024>; // TK * BN, [k][n]
var<workgroup> Us: array<f32, 512>;   // BM * TKL, [k][m]: dU
var<workgroup> As: array<f32, 512>;   // TKL * BN, [k][n]: lora_A
var<workgroup> code: array<f32, 16>;

fn absmax_of(block: u32) -> f32 {
  let q = (Qa[block >> 2u] >> ((block & 3u) * 8u)) & 0xffu;
  let prod = tables[16u + q] * absmax2[block >> 8u];
  // Opaque zero: no fma contraction of prod + offset (bitsandbytes rounds the product first).
  return bitcast<f32>(bitcast<u32>(prod) ^ p.zero) + p.offset;
}

fn to_op(v: f32) -> OP_T {
  return OP_T(clamp(v, -OP_MAX, OP_MAX));
}

fn deq(c: u32, am: f32) -> OP_T {
  return to_op(code[c] * am);
}

fn mac(acc: ptr<function, array<f32, 16>>, lid: vec3u) {
  for (var k = 0u; k < TK; k++) {
    var a: array<f32, 4>;
    var b: array<f32, 4>;
    for (var i = 0u; i < TM; i++) { a[i] = f32(Ys[k * BM + lid.y * TM + i]); }
    for (var j = 0u; j < TN; j++) { b[j] = f32(Ws[k * BN + lid.x * TN + j]); }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) { (*acc)[i * TN + j] = fma(a[i], b[j], (*acc)[i * TN + j]); }
    }
  }
}

fn mac_lora(acc: ptr<function, array<f32, 16>>, lid: vec3u) {
  for (var k = 0u; k < TKL; k++) {
    var a: array<f32, 4>;
    var b: array<f32, 4>;
    for (var i = 0u; i < TM; i++) { a[i] = Us[k * BM + lid.y * TM + i]; }
    for (var j = 0u; j < TN; j++) { b[j] = As[k * BN + lid.x * TN + j]; }
    for (var i = 0u; i < TM; i++) {
      for (var j = 0u; j < TN; j++) { (*acc)[i * TN + j] = fma(a[i], b[j], (*acc)[i * TN + j]); }
    }
  }
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  if (li < 16u) { code[li] = tables[li]; }
  var acc: array<f32, 16>;
  // LoRA: dU · A over r, f32 operands, then the dropout mask.
  for (var r0 = 0u; r0 < p.R; r0 += TKL) {
    for (var e = li; e < BM * TKL; e += NT) {
      let m = row0 + e / TKL;
      let r = r0 + e % TKL;
      var v = 0.0;
      if (m < p.M && r < p.R) { v = DU[m * p.R + r]; }
      Us[(e % TKL) * BM + e / TKL] = v;
    }
    for (var e = li; e < BN * TKL; e += NT) {
      let n = col0 + e % BN;
      let r = r0 + e / BN;
      var v = 0.0;
      if (n < p.N && r < p.R) { v = LA[r * p.N + n]; }
      As[e] = v;
    }
    workgroupBarrier();
    mac_lora(&acc, lid);
    workgroupBarrier();
  }
  if (p.dropout != 0u) {
    for (var i = 0u; i < TM; i++) {
      let m = row0 + lid.y * TM + i;
      for (var j = 0u; j < TN; j++) {
        let n = col0 + lid.x * TN + j;
        if (m < p.M && n < p.N) {
          acc[i * TN + j] *= dropout_mult(p.k0, p.k1, p.threshold, p.scale, m * p.N + n);
        }
      }
    }
  }
  workgroupBarrier(); // code[] is complete even when R = 0
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    for (var e = li; e < BM * TK; e += NT) {
      let m = row0 + e / TK;
      let k = k0 + e % TK;
      var v = OP_T(0.0);
      if (m < p.M && k < p.K) { v = to_op(f32(DY[p.offY + m * p.ldy + k])); }
      Ys[(e % TK) * BM + e / TK] = v;
    }
    if (FAST != 0u) {
      // 16 rows x 64 columns = 128 words: thread t takes row t / 8, columns (t % 8) * 8 .. + 8.
      if (li < BN * TK / 8u) {
        let kk = li / 8u;
        let cw = (li % 8u) * 8u;
        let gk = k0 + kk;
        let gn = col0 + cw;
        if (gk < p.K && gn < p.N) {
          let e = gk * p.N + gn;
          let word = Wq[e >> 3u];
          let am = absmax_of(e >> 6u);
          for (var i = 0u; i < 8u; i++) {
            let c = (word >> ((i >> 1u) * 8u + select(0u, 4u, (i & 1u) == 0u))) & 0xfu;
            Ws[kk * BN + cw + i] = deq(c, am);
          }
        } else {
          for (var i = 0u; i < 8u; i++) { Ws[kk * BN + cw + i] = OP_T(0.0); }
        }
      }
    } else {
      for (var e = li; e < BN * TK; e += NT) {
        let n = col0 + e % BN;
        let k = k0 + e / BN;
        var v = OP_T(0.0);
        if (n < p.N && k < p.K) {
          let ei = k * p.N + n;
          let byte = (Wq[ei >> 3u] >> (((ei >> 1u) & 3u) * 8u)) & 0xffu;
          v = deq(select(byte & 0xfu, byte >> 4u, (ei & 1u) == 0u), absmax_of(ei >> 6u));
        }
        Ws[e] = v;
      }
    }
    workgroupBarrier();
    mac(&acc, lid);
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let m = row0 + lid.y * TM + i;
    if (m >= p.M) { continue; }
    for (var j = 0u; j < TN; j++) {
      let n = col0 + lid.x * TN + j;
      if (n >= p.N) { continue; }
      let idx = p.offX + m * p.ldx + n;
      var v = acc[i * TN + j];
      if (p.beta != 0.0) { v += p.beta * DX[idx]; }
      DX[idx] = v;
    }
  }
}
