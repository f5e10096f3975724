// The LoRA up-projection added onto a dense base product (the NF4 kernels fuse this into their tile loop),
// f32 throughout:  Y[m, c] = beta · Y[m, c] + alpha · mask(m, c) · Σ_j U[m, j] · L(j, c)
//   forward  y  += scaling · u · Bᵀ:     U = u [M, R],  L(j,c) = B[c*R + j]  (TRANS_L 0), mask off
//   backward dx += dropout'(du · A):     U = du [M, R], L(j,c) = A[j*C + c]  (TRANS_L 1), mask on
// mask: kernels/lora_dropout.wgsl (appended by the host), element index m * C + c. Y has row stride ldy and
// element offset offY. One invocation per output; R is small (the LoRA rank).

struct Params {
  M: u32, C: u32, R: u32, ldy: u32,
  offY: u32, alpha: f32, beta: f32, dropout: u32,
  k0: u32, k1: u32, threshold: u32, scale: f32,
}

override TRANS_L: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> U: array<f32>;
@group(0) @binding(2) var<storage, read> L: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(64, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  let m = gid.y;
  if (c >= p.C || m >= p.M) { return; }
  var acc = 0.0;
  for (var j = 0u; j < p.R; j++) {
    var l: f32;
    if (TRANS_L == 0u) { l = L[c * p.R + j]; } else { l = L[j * p.C + c]; }
    acc = fma(U[m * p.R + j], l, acc);
  }
  var v = p.alpha * acc;
  if (p.dropout != 0u) { v *= dropout_mult(p.k0, p.k1, p.threshold, p.scale, m * p.C + c); }
  let idx = p.offY + m * p.ldy + c;
  if (p.beta != 0.0) { v += p.beta * Y[idx]; }
  Y[idx] = v;
}
