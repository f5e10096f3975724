// Rotary position embedding, rotate-half convention (transformers modeling_gemma2.py apply_rotary_pos_emb:
// `x·cos + rotate_half(x)·sin`, rotate_half(x) = cat(−x2, x1), cos/sin = cat(freqs, freqs)), in place on
// a [tokens, H, D] view: element (n, h, i) is x[off + n*stride + h*D + i], tokens n = b*T + t.
//   out[i]       = x[i]·cos(a) − x[i+D/2]·sin(a)
//   out[i + D/2] = x[i+D/2]·cos(a) + x[i]·sin(a)        a = inv_freq[i] · pos, pos = pos0 + (n mod T)
// SIGN = −1 applies the inverse (transposed) rotation: the backward, dx = Rᵀ dy.
// Like transformers, inv_freq is float32 (passed in, computed on the host exactly as torch does), the angle
// is one f32 product, and cos/sin are evaluated in f32. Positions are 0..T−1 per sequence whatever the
// padding (plus pos0, for decoding with a KV cache).
// WGSL only promises sin/cos accuracy on [−π, π], and angles reach thousands of radians, so the angle is first
// reduced exactly (Cody–Waite, 2π split in three parts; the first two have few significant bits so k·C1 and
// k·C2 are exact for |k| < 2^16, i.e. angles up to ~4e5).
// One invocation per (token, i < D/2) computes cos/sin once and rotates that pair in every head.

struct Params { tokens: u32, T: u32, H: u32, D: u32, stride: u32, off: u32, pos0: u32 }

override WG: u32 = 64u;
override SIGN: f32 = 1.0;

const INV_TWO_PI: f32 = 0.15915494309189535;
const C1: f32 = 6.28125;                   // 201/32
const C2: f32 = 0.0019378662109375;        // 254/2^17
const C3: f32 = -2.559031372584286e-06;    // 2π − C1 − C2, rounded

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> invFreq: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let half = p.D / 2u;
  let gid = (wg.x + wg.y * nwg.x) * WG + li;
  if (gid >= p.tokens * half) { return; }
  let i = gid % half;
  let n = gid / half;
  let pos = f32(p.pos0 + n % p.T);
  let a = invFreq[i] * pos;
  let k = round(a * INV_TWO_PI);
  let r = ((a - k * C1) - k * C2) - k * C3;
  let c = cos(r);
  let s = SIGN * sin(r);
  var o = p.off + n * p.stride + i;
  for (var h = 0u; h < p.H; h++) {
    let x1 = x[o];
    let x2 = x[o + half];
    x[o] = x1 * c - x2 * s;
    x[o + half] = x2 * c + x1 * s;
    o += p.D;
  }
}
