// Calibration: a fixed amount of f32 multiply-adds with a workgroup barrier every few of them, timed once
// when the device opens (src/gpu/calibrate.ts) to tell a usable adapter from a pathological one. The
// barriers matter: llvmpipe through OpenGL runs plain arithmetic at lavapipe's speed but workgroup barriers
// and shared memory (every reduction and tiled matmul here) orders of magnitude slower. Each step mixes a
// neighbour's value through workgroup memory, so no compiler can drop the loop or the barriers.
struct Params {
  iters: u32,
  n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

var<workgroup> shared_v: array<vec4<f32>, 64>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  var a = vec4<f32>(f32(gid.x) * 1e-6, 0.25, 0.5, 0.75);
  let m = vec4<f32>(0.999, 0.998, 0.997, 0.996);
  let c = vec4<f32>(1e-3, 2e-3, 3e-3, 4e-3);
  for (var k = 0u; k < p.iters; k++) {
    for (var j = 0u; j < 16u; j++) {
      a = fma(a, m, c);
    }
    shared_v[li] = a;
    workgroupBarrier();
    a = 0.5 * (a + shared_v[(li + 1u) % 64u]);
    workgroupBarrier();
  }
  if (gid.x < p.n) {
    out[gid.x] = a.x + a.y + a.z + a.w;
  }
}
