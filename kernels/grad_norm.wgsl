// Global L2 norm of all LoRA gradients and the clip coefficient, without a readback:
// torch.nn.utils.clip_grad_norm_ (total_norm = ||g||₂ over every parameter; coef = max_norm / (total_norm + 1e-6),
// clamped to 1). Stage `partial` writes one sum of squares per workgroup; stage `finish` (one workgroup) adds
// them and writes stats[0] = total_norm, stats[1] = coef.

struct Params { n: u32, nPartials: u32, maxNorm: f32 }

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;

// #include reduce

@compute @workgroup_size(WG)
fn partial(@builtin(workgroup_id) wg: vec3u, lanes: Lanes) {
  var s = 0.0;
  for (var i = wg.x * WG + lanes.li; i < p.n; i += p.nPartials * WG) { s += g[i] * g[i]; }
  let total = wg_sum(s, lanes);
  if (lanes.li == 0u) { partials[wg.x] = total; }
}

@compute @workgroup_size(WG)
fn finish(lanes: Lanes) {
  var s = 0.0;
  for (var i = lanes.li; i < p.nPartials; i += WG) { s += partials[i]; }
  let total = wg_sum(s, lanes);
  if (lanes.li == 0u) {
    let norm = sqrt(total);
    stats[0] = norm;
    stats[1] = min(1.0, p.maxNorm / (norm + 1e-6));
  }
}
