// Machine ceiling for `maieutic bench`: peak f32 FMA throughput. Each invocation runs 8 independent vec4
// multiply-add chains x = fma(x, a, b) for `iters` iterations (2 · 4 · 8 · iters FLOP per invocation). a and b
// come from the uniform block, so the compiler can neither fold the loop nor shorten it; |a| < 1 keeps the
// values bounded (no overflow, no denormals). The sum is stored so the work is not dead code.

struct Params { n: u32, iters: u32, a: f32, b: f32 }

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  let s = f32(i & 1023u) * 1e-3;
  var x0 = vec4f(s, s + 0.1, s + 0.2, s + 0.3);
  var x1 = x0 + 0.01;
  var x2 = x0 + 0.02;
  var x3 = x0 + 0.03;
  var x4 = x0 + 0.04;
  var x5 = x0 + 0.05;
  var x6 = x0 + 0.06;
  var x7 = x0 + 0.07;
  let a = vec4f(p.a);
  let b = vec4f(p.b);
  for (var k = 0u; k < p.iters; k++) {
    x0 = fma(x0, a, b);
    x1 = fma(x1, a, b);
    x2 = fma(x2, a, b);
    x3 = fma(x3, a, b);
    x4 = fma(x4, a, b);
    x5 = fma(x5, a, b);
    x6 = fma(x6, a, b);
    x7 = fma(x7, a, b);
  }
  let v = (x0 + x1) + (x2 + x3) + (x4 + x5) + (x6 + x7);
  if (i < p.n) { out[i] = v.x + v.y + v.z + v.w; }
}
