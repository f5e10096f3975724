// The skinny LoRA product into rank space, f32 throughout:  U[m, j] = alpha · Σ_k mask(m,k) · X[m, k] · L(j, k)
//   forward (PEFT lora/layer.py):  u  = dropout(x) · Aᵀ        X = x [M, K = in],   L(j,k) = A[j*K + k]  (TRANS_L 0)
//   backward:                      du = scaling · dy · B       X = dy [M, K = out], L(j,k) = B[k*R + j]  (TRANS_L 1)
// mask is the LoRA dropout multiplier regenerated from its key (kernels/lora_dropout.wgsl, element index
// m * K + k, appended by the host) when p.dropout != 0, else 1. X has row stride ldx and element offset offX;
// U [M, R] is dense. One workgroup computes 64 rows × 16 rank columns; each invocation 4 rows × 1 column.

struct Params {
  M: u32, R: u32, K: u32, ldx: u32,
  offX: u32, alpha: f32, dropout: u32, k0: u32,
  k1: u32, threshold: u32, scale: f32,
}

override TRANS_L: u32 = 0u;
const TK: u32 = 32u;
const BM: u32 = 64u;
const BR: u32 = 16u;
const NT: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> L: array<f32>;
@group(0) @binding(3) var<storage, read_write> U: array<f32>;

var<workgroup> Xs: array<f32, 2048>; // TK * BM, [k][m]
var<workgroup> Ls: array<f32, 512>;  // TK * BR, [k][j]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let row0 = wg.y * BM;
  let j0 = wg.x * BR;
  var acc: array<f32, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    for (var e = li; e < BM * TK; e += NT) {
      let m = row0 + e / TK;
      let k = k0 + e % TK;
      var v = 0.0;
      if (m < p.M && k < p.K) {
        v = X[p.offX + m * p.ldx + k];
        if (p.dropout != 0u) { v *= dropout_mult(p.k0, p.k1, p.threshold, p.scale, m * p.K + k); }
      }
      Xs[(e % TK) * BM + e / TK] = v;
    }
    for (var e = li; e < BR * TK; e += NT) {
      var j: u32;
      var k: u32;
      if (TRANS_L == 0u) { j = e / TK; k = e % TK; } else { j = e % BR; k = e / BR; }
      var v = 0.0;
      if (j0 + j < p.R && k0 + k < p.K) {
        if (TRANS_L == 0u) { v = L[(j0 + j) * p.K + k0 + k]; } else { v = L[(k0 + k) * p.R + j0 + j]; }
      }
      Ls[k * BR + j] = v;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let l = Ls[k * BR + lid.x];
      for (var i = 0u; i < 4u; i++) { acc[i] = fma(Xs[k * BM + lid.y * 4u + i], l, acc[i]); }
    }
    workgroupBarrier();
  }
  let j = j0 + lid.x;
  if (j >= p.R) { return; }
  for (var i = 0u; i < 4u; i++) {
    let m = row0 + lid.y * 4u + i;
    if (m < p.M) { U[m * p.R + j] = p.alpha * acc[i]; }
  }
}
