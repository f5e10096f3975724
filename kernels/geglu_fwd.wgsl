// Gemma-2 MLP activation (transformers modeling_gemma2.py Gemma2MLP, hidden_activation gelu_pytorch_tanh):
//   h[r,c] = gelu_tanh(gate[r,c]) · up[r,c],   gelu_tanh(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
// over [rows, cols] views: gate[offG + r*ldg + c], up[offU + r*ldu + c], h[offH + r*ldh + c], so gate and up
// may be two buffers or the two halves of one [rows, 2·cols] buffer (bound twice, read-only).
// 0.5·(1 + tanh(u)) is evaluated as the logistic 1/(1 + exp(−2u)): the same function, but it cannot produce
// NaN (tanh through exp overflows to Inf/Inf on some drivers) and keeps full relative precision for negative
// inputs where 1 + tanh(u) cancels. Past 2u < −88 the factor is below 1e-38 and is taken as 0.
// H_T is f32, or the half type when h only feeds the half-precision down_proj operand (SATURATE = 1 clamps
// to ±65504 so it can never be Inf).

struct Params { rows: u32, cols: u32, ldg: u32, ldu: u32, ldh: u32, offG: u32, offU: u32, offH: u32 }

override WG: u32 = 256u;
override SATURATE: u32 = 0u;

const K: f32 = 0.7978845608028654; // √(2/π)
const C: f32 = 0.044715;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> h: array<H_T>;

// gelu_tanh(x) = x · sigmoid(2u), u = K·(x + C·x³).
fn gelu(x: f32) -> f32 {
  let t = -2.0 * K * (x + C * x * x * x);
  return select(x / (1.0 + exp(min(t, 88.0))), 0.0, t > 88.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let gid = (wg.x + wg.y * nwg.x) * WG + li;
  if (gid >= p.rows * p.cols) { return; }
  let r = gid / p.cols;
  let c = gid % p.cols;
  var v = gelu(gate[p.offG + r * p.ldg + c]) * up[p.offU + r * p.ldu + c];
  if (SATURATE == 1u) { v = clamp(v, -65504.0, 65504.0); }
  h[p.offH + r * p.ldh + c] = H_T(v);
}
