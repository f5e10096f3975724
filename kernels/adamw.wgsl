// AdamW step as torch.optim.AdamW (single-tensor path), on one flat arena of parameters, with the gradient
// multiplied by the clip coefficient that grad_norm.wgsl left in stats[1]:
//   g = grad · coef;  p ← p · (1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr / (1−β1ᵗ)) · m / (sqrt(v) / sqrt(1−β2ᵗ) + eps)
// decay = 1 − lr·wd, 1 − β1, 1 − β2, stepSize = lr/(1−β1ᵗ) and sqrtBc2 = sqrt(1−β2ᵗ) are computed on the host in float64
// and rounded to f32, as torch casts its Python-float scalars to the tensor dtype.

struct Params { n: u32, decay: f32, beta1: f32, beta2: f32, oneMinusBeta1: f32, oneMinusBeta2: f32, eps: f32, stepSize: f32, sqrtBc2: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let g = grad[i] * stats[1];
  var w = param[i] * p.decay;
  let mi = p.beta1 * m[i] + p.oneMinusBeta1 * g;
  let vi = p.beta2 * v[i] + p.oneMinusBeta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  w -= p.stepSize * mi / (sqrt(vi) / p.sqrtBc2 + p.eps);
  param[i] = w;
}
