// Forward of a QLoRA projection:  Y = X · Wᵀ  (+ scaling · U · Bᵀ)  (+ Y when beta = 1), f32 accumulation.
//   X [M, K] (row stride ldx), W [N, K] frozen in bitsandbytes NF4 with double-quantized absmax, U [M, R] the
//   LoRA down-projection dropout(x)·Aᵀ (kernels/lora_down.wgsl), B [N, R] lora_B, Y [M, N] (row stride ldy).
// NF4 is dequantized inside the tile, never to a full weight (docs/ARCHITECTURE.md#performance). Layout and order follow bitsandbytes
// (functional.py dequantize_4bit / csrc kDequantizeBlockwise; golden README §NF4): W flattened row-major, blocks
// of 64 consecutive elements (a block may cross rows), byte k = code[2k] << 4 | code[2k+1], bytes read from
// little-endian u32 words;
//   absmax[b] = f32(DYNAMIC_MAP[qabsmax[b]] * absmax2[b / 256]) + offset     (rounded product, then the add)
//   w         = f32(NF4_CODE[code] * absmax[e / 64])
// and the dequantized value is rounded to the operand type OP_T (f16 or f32), as bnb's unfused path does
// (dequantize into the compute dtype, then F.linear). X is rounded to OP_T too (Linear4bit casts x to
// compute_dtype), clamped to OP_MAX first so an f16 operand never becomes Inf (docs/ARCHITECTURE.md#numerics). The slabs are staged
// in workgroup memory of type OP_T: that is what makes the rounding happen (compilers fold f32(f16(v)) to v).
// The LoRA term is a few more K-slabs of the same tile loop with f32 operands (PEFT adds LoRA in the LoRA dtype,
// f32): the skinny product costs R/K of the main loop and Y is written once.
// FAST (host: K % 8 == 0, true for every Gemma-2 projection) lets each thread dequantize one whole u32 word: its
// 8 elements then lie in one row and one 64-block, so the absmax is computed once per word.

struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, offX: u32, offY: u32, beta: f32,
  offset: f32, zero: u32, R: u32, scaling: f32,
}

override FAST: u32 = 0u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const TK: u32 = 16u;
const BM: u32 = 64u; // 16 * TM
const BN: u32 = 64u; // 16 * TN
const NT: u32 = 256u;
const TKL: u32 = 8u; // r-slab of the LoRA term

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<X_T>;
@group(0) @binding(2) var<storage, read> Wq: array<u32>;      // packed NF4 bytes
@group(0) @binding(3) var<storage, read> Qa: array<u32>;      // qabsmax bytes, one per 64-block
@group(0) @binding(4) var<storage, read> absmax2: array<f32>; // one per 256 absmax
@group(0) @binding(5) var<storage, read> tables: array<f32>;  // [0,16): NF4 code, [16,272): dynamic map
@group(0) @binding(6) var<storage, read> U: array<f32>;
@group(0) @binding(7) var<storage, read> LB: array<f32>;
@group(0) @binding(8) var<storage, read_write> Y: array<f32>;

var<workgroup> Xs: array<OP_T, 1024>; // BM * TK, [k][m]
var<workgroup> Ws: array<OP_T, 1024>; // BN * TK, [k][n]
var<workgroup> Us: array<f32, 512>;   // BM * TKL, [k][m]: scaling * U
var<workgroup> Bs: array<f32, 512>;   // BN * TKL, [k][n]: lora_B
var<workgroup> code: array<f32, 16>;

fn absmax_of(block: u32) -> f32 {
  let q = (Qa[block >> 2u] >> ((block & 3u) * 8u)) & 0xffu;
  let prod = tables[16u + q] * absmax2[block >> 8u];
  // p.zero is 0 at run time but opaque to the compiler, so `prod + offset` cannot be contracted into an fma:
  // bitsandbytes rounds the product to f32 before adding the offset.
  return bitcast<f32>(bitcast<u32>(prod) ^ p.zero) + p.offset;
}

fn to_op(v: f32) -> OP_T {
  return OP_T(clamp(v, -OP_MAX, OP_MAX));
}

fn deq(c: u32, am: f32) -> OP_T {
  return to_op(code[c] * am);
}

fn load_x(m: u32, k: u32) -> OP_T {
  if (m >= p.M || k >= p.K) { return OP_T(0.0); }
  return to_op(f32(X[p.offX + m * p.ldx + k]));
}

fn mac(acc: ptr<function, array<f32, 16>>, lid: vec3u) {
  for (var k = 0u; k < TK; k++) {
    var a: array<f32, 4>;
    var b: array<f32, 4>;
    for (var i = 0u; i < TM; i++) { a[i] = f32(Xs[k * BM + lid.y * TM + i]); }
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
    for (var j = 0u; j < TN; j++) { b[j] = Bs[k * BN + lid.x * TN + j]; }
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
  workgroupBarrier();
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    for (var e = li; e < BM * TK; e += NT) {
      Xs[(e % TK) * BM + e / TK] = load_x(row0 + e / TK, k0 + e % TK);
    }
    if (FAST != 0u) {
      // 64 rows x 16 k = 128 words: thread t takes row t / 2, k = (t % 2) * 8 .. + 8.
      if (li < BN * TK / 8u) {
        let n = li / 2u;
        let kk = (li % 2u) * 8u;
        let gn = col0 + n;
        let gk = k0 + kk;
        if (gn < p.N && gk < p.K) {
          let e = gn * p.K + gk;
          let word = Wq[e >> 3u];
          let am = absmax_of(e >> 6u);
          for (var i = 0u; i < 8u; i++) {
            // Byte i/2 of the word holds elements i (high nibble, i even) and i+1 (low nibble).
            let c = (word >> ((i >> 1u) * 8u + select(0u, 4u, (i & 1u) == 0u))) & 0xfu;
            Ws[(kk + i) * BN + n] = deq(c, am);
          }
        } else {
          for (var i = 0u; i < 8u; i++) { Ws[(kk + i) * BN + n] = OP_T(0.0); }
        }
      }
    } else {
      for (var e = li; e < BN * TK; e += NT) {
        let n = e / TK;
        let k = e % TK;
        var v = OP_T(0.0);
        if (col0 + n < p.N && k0 + k < p.K) {
          let ei = (col0 + n) * p.K + k0 + k;
          let byte = (Wq[ei >> 3u] >> (((ei >> 1u) & 3u) * 8u)) & 0xffu;
          v = deq(select(byte & 0xfu, byte >> 4u, (ei & 1u) == 0u), absmax_of(ei >> 6u));
        }
        Ws[k * BN + n] = v;
      }
    }
    workgroupBarrier();
    mac(&acc, lid);
    workgroupBarrier();
  }
  // LoRA: scaling · U · Bᵀ as further slabs over r, f32 operands.
  for (var r0 = 0u; r0 < p.R; r0 += TKL) {
    for (var e = li; e < BM * TKL; e += NT) {
      let m = row0 + e / TKL;
      let r = r0 + e % TKL;
      var v = 0.0;
      if (m < p.M && r < p.R) { v = p.scaling * U[m * p.R + r]; }
      Us[(e % TKL) * BM + e / TKL] = v;
    }
    for (var e = li; e < BN * TKL; e += NT) {
      let n = col0 + e / TKL;
      let r = r0 + e % TKL;
      var v = 0.0;
      if (n < p.N && r < p.R) { v = LB[n * p.R + r]; }
      Bs[(e % TKL) * BN + e / TKL] = v;
    }
    workgroupBarrier();
    mac_lora(&acc, lid);
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let m = row0 + lid.y * TM + i;
    if (m >= p.M) { continue; }
    for (var j = 0u; j < TN; j++) {
      let n = col0 + lid.x * TN + j;
      if (n >= p.N) { continue; }
      let idx = p.offY + m * p.ldy + n;
      var v = acc[i * TN + j];
      if (p.beta != 0.0) { v += p.beta * Y[idx]; }
      Y[idx] = v;
    }
  }
}
