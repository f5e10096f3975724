// Gemma-2 RMSNorm backward for the input, one workgroup per row. With xhat = x * rstd and g = dy * (1 + w):
//   dx[r,j] = rstd[r] * (g[r,j] - xhat[r,j] * mean_k(g[r,k] * xhat[r,k]))
// (the derivative of y = xhat * (1 + w) through rstd = (mean x^2 + eps)^-1/2; written with xhat, which is
// O(1), so residual-stream inputs in the thousands stay well inside f32 range).
// ACCUMULATE = 1 adds into dx instead of overwriting: the input norm's gradient joins the residual stream's
// gradient there (h feeds both the residual and the norm). dy must not alias dx.
// The weight gradient (a reduction over rows) is kernels/rmsnorm_dw.wgsl.

struct Params { rows: u32, dim: u32 }

override WG: u32 = 256u;
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

// #include reduce

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let li = lanes.li;
  let row = wg.x + wg.y * nwg.x;
  let valid = row < p.rows;
  let base = row * p.dim;
  var r = 0.0;
  var s = 0.0;
  if (valid) {
    r = rstd[row];
    for (var c = li; c < p.dim; c += WG) {
      let g = dy[base + c] * (1.0 + w[c]);
      s = fma(g, x[base + c] * r, s);
    }
  }
  let total = wg_sum(s, lanes);
  if (!valid) { return; }
  let m = total / f32(p.dim);
  for (var c = li; c < p.dim; c += WG) {
    let g = dy[base + c] * (1.0 + w[c]);
    var v = r * (g - x[base + c] * r * m);
    if (ACCUMULATE == 1u) { v += dx[base + c]; }
    dx[base + c] = v;
  }
}
