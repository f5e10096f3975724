// LoRA weight gradients, a reduction over tokens, f32 throughout:
//   G(j, c) = beta · G(j, c) + alpha · Σ_m L[m, j] · mask(m, c) · X[m, c]
//   dA [R, in]  = duᵀ · dropout(x):    L = du [M, R], X = x [M, C = in], mask on, G(j,c) at j*C + c (TRANS_OUT 0)
//   dB [out, R] = scaling · dyᵀ · u:   L = u [M, R],  X = dy [M, C = out], mask off, G(j,c) at c*R + j (TRANS_OUT 1)
// (PEFT lora/layer.py Linear: lora_A and lora_B are bias-free nn.Linear, so these are their weight gradients.)
// beta = 1 accumulates across micro-batches (gradient accumulation). mask: kernels/lora_dropout.wgsl, element
// index m * C + c, appended by the host. One workgroup computes 16 rank rows × 64 columns; each invocation 1 × 4.

struct Params {
  M: u32, R: u32, C: u32, ldx: u32,
  offX: u32, alpha: f32, beta: f32, dropout: u32,
  k0: u32, k1: u32, threshold: u32, scale: f32,
}

override TRANS_OUT: u32 = 0u;
const TK: u32 = 32u;
const BR: u32 = 16u;
const BC: u32 = 64u;
const NT: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> L: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> G: array<f32>;

var<workgroup> Ls: array<f32, 512>;  // TK * BR, [m][j]
var<workgroup> Xs: array<f32, 2048>; // TK * BC, [m][c]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let c0 = wg.x * BC;
  let j0 = wg.y * BR;
  var acc: array<f32, 4>;
  for (var m0 = 0u; m0 < p.M; m0 += TK) {
    for (var e = li; e < BR * TK; e += NT) {
      let m = m0 + e / BR;
      let j = j0 + e % BR;
      var v = 0.0;
      if (m < p.M && j < p.R) { v = L[m * p.R + j]; }
      Ls[e] = v;
    }
    for (var e = li; e < BC * TK; e += NT) {
      let m = m0 + e / BC;
      let c = c0 + e % BC;
      var v = 0.0;
      if (m < p.M && c < p.C) {
        v = X[p.offX + m * p.ldx + c];
        if (p.dropout != 0u) { v *= dropout_mult(p.k0, p.k1, p.threshold, p.scale, m * p.C + c); }
      }
      Xs[e] = v;
    }
    workgroupBarrier();
    for (var mm = 0u; mm < TK; mm++) {
      let l = Ls[mm * BR + lid.y];
      for (var i = 0u; i < 4u; i++) { acc[i] = fma(l, Xs[mm * BC + lid.x * 4u + i], acc[i]); }
    }
    workgroupBarrier();
  }
  let j = j0 + lid.y;
  if (j >= p.R) { return; }
  for (var i = 0u; i < 4u; i++) {
    let c = c0 + lid.x * 4u + i;
    if (c >= p.C) { continue; }
    var idx: u32;
    if (TRANS_OUT == 0u) { idx = j * p.C + c; } else { idx = c * p.R + j; }
    var v = p.alpha * acc[i];
    if (p.beta != 0.0) { v += p.beta * G[idx]; }
    G[idx] = v;
  }
}
