// Backward of h = gelu_tanh(gate) · up (kernels/geglu_fwd.wgsl; same [rows, cols] views with ld/offsets;
// dgate and dup share the row stride ldd, with their own offsets; dh is dense [rows, cols]):
//   dup   = dh · gelu_tanh(gate)
//   dgate = dh · up · gelu_tanh'(gate)
// With s = sigmoid(2u) = 0.5·(1 + tanh u), u = K·(x + C·x³):
//   gelu_tanh'(x) = s + 2·x·s·(1 − s)·K·(1 + 3C·x²),   and 1 − s = e·s with e = exp(−2u) (no cancellation).
// The second term is skipped where s·(1 − s) is 0 (|x| large), so x³ overflowing cannot make 0·Inf = NaN.
// Entry `main` writes dgate/dup to separate outputs (DG_T: f32, or the half type for a half-precision matmul
// operand, saturated to ±65504); entry `inplace` overwrites gate with dgate and up with dup (f32), which
// saves two [rows, cols] buffers in the backward.

struct Params {
  rows: u32, cols: u32, ldg: u32, ldu: u32,
  ldd: u32, offG: u32, offU: u32, offDG: u32,
  offDU: u32,
}

override WG: u32 = 256u;
override SATURATE: u32 = 0u;

const K: f32 = 0.7978845608028654;
const C: f32 = 0.044715;

@group(0) @binding(0) var<uniform> p: Params;

// gelu_tanh(x) and its derivative.
fn geluAndGrad(x: f32) -> vec2f {
  let t = -2.0 * K * (x + C * x * x * x);
  if (t > 88.0) { return vec2f(0.0, 0.0); }
  let e = exp(t);
  let s = 1.0 / (1.0 + e);
  let q = e * s * s; // s·(1 − s)
  var d = s;
  if (q > 0.0) { d += 2.0 * x * q * K * (1.0 + 3.0 * C * x * x); }
  return vec2f(x * s, d);
}

fn sat(v: f32) -> f32 {
  if (SATURATE == 1u) { return clamp(v, -65504.0, 65504.0); }
  return v;
}

// Entry `main`: bindings dh, gate, up, dgate, dup. dh is [rows, cols] dense.
@group(0) @binding(1) var<storage, read> dh: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgate: array<DG_T>;
@group(0) @binding(5) var<storage, read_write> dup: array<DG_T>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let gid = (wg.x + wg.y * nwg.x) * WG + li;
  if (gid >= p.rows * p.cols) { return; }
  let r = gid / p.cols;
  let c = gid % p.cols;
  let g = geluAndGrad(gate[p.offG + r * p.ldg + c]);
  let u = up[p.offU + r * p.ldu + c];
  let d = dh[gid];
  dgate[p.offDG + r * p.ldd + c] = DG_T(sat(d * u * g.y));
  dup[p.offDU + r * p.ldd + c] = DG_T(sat(d * g.x));
}

// Entry `inplace`: bindings dh, gate (← dgate), up (← dup).
@group(0) @binding(2) var<storage, read_write> gateIO: array<f32>;
@group(0) @binding(3) var<storage, read_write> upIO: array<f32>;

@compute @workgroup_size(WG)
fn inplace(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) li: u32) {
  let gid = (wg.x + wg.y * nwg.x) * WG + li;
  if (gid >= p.rows * p.cols) { return; }
  let r = gid / p.cols;
  let c = gid % p.cols;
  let ig = p.offG + r * p.ldg + c;
  let iu = p.offU + r * p.ldu + c;
  let g = geluAndGrad(gateIO[ig]);
  let u = upIO[iu];
  let d = dh[gid];
  gateIO[ig] = d * u * g.y;
  upIO[iu] = d * g.x;
}
