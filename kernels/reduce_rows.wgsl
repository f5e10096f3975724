// Row-wise reduction: out[r] = Σ_c f(x[r*cols + c]) with f(x) = x (SQUARE = 0) or x² (SQUARE = 1).
// One workgroup per row; a strided partial sum per invocation, then wg_sum (kernels/lib/reduce_*.wgsl).
// Sums of squares feed RMSNorm and the gradient L2 norm (torch.nn.utils.clip_grad_norm_'s total norm).

struct Params { rows: u32, cols: u32 }

override SQUARE: u32 = 0u;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// #include reduce

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let li = lanes.li;
  let row = wg.x + wg.y * nwg.x;
  // No early return before the barriers: out-of-range workgroups just contribute nothing.
  let valid = row < p.rows;
  var s = 0.0;
  if (valid) {
    let base = row * p.cols;
    for (var c = li; c < p.cols; c += WG) {
      let v = x[base + c];
      s += select(v, v * v, SQUARE == 1u);
    }
  }
  let total = wg_sum(s, lanes);
  if (li == 0u && valid) { out[row] = total; }
}
