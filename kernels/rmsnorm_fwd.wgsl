// Gemma-2 RMSNorm forward, one workgroup per row (transformers modeling_gemma2.py Gemma2RMSNorm):
//   rstd[r] = 1 / sqrt(mean_j x[r,j]^2 + eps)
//   y[r,j]  = x[r,j] * rstd[r] * (1 + w[j])          (RESIDUAL = 0)
//   y[r,j] += x[r,j] * rstd[r] * (1 + w[j])          (RESIDUAL = 1: Gemma-2's h = h + post_norm(...), fused)
// Everything is computed in f32 like transformers (it upcasts and multiplies by (1 + w) before casting back).
// Y_T (substituted by the host) is f32, or the half type when the output only feeds a half-precision matmul
// operand; then SATURATE = 1 clamps to the largest finite half (65504) so a large activation can never
// become Inf. rstd is kept for the backward. x must not alias y.
// The sum of squares is a strided partial per invocation added over the workgroup by wg_sum (subgroups where
// the device has them, else a tree in workgroup memory: kernels/lib/reduce_*.wgsl); f32 has range to spare for residual-stream values in the thousands (2304 rows
// of 1e4 sum to 2.3e11).

struct Params { rows: u32, dim: u32, eps: f32 }

override WG: u32 = 256u; // a power of two, chosen by the host from dim
override RESIDUAL: u32 = 0u;
override SATURATE: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<Y_T>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;

// #include reduce

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let li = lanes.li;
  let row = wg.x + wg.y * nwg.x; // folded 1-D grid
  let valid = row < p.rows;
  let base = row * p.dim;
  var s = 0.0;
  if (valid) {
    for (var c = li; c < p.dim; c += WG) {
      let v = x[base + c];
      s = fma(v, v, s);
    }
  }
  let total = wg_sum(s, lanes);
  // No barrier below, so leaving here keeps every barrier in uniform control flow.
  if (!valid) { return; }
  let r = inverseSqrt(total / f32(p.dim) + p.eps);
  if (li == 0u) { rstd[row] = r; }
  for (var c = li; c < p.dim; c += WG) {
    var v = x[base + c] * r * (1.0 + w[c]);
    if (RESIDUAL == 1u) { v += f32(y[base + c]); }
    if (SATURATE == 1u) { v = clamp(v, -65504.0, 65504.0); }
    y[base + c] = Y_T(v);
  }
}
