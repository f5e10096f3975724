// A prototype rung of the `maieutic bench` kernel ladder: C[m, n] = Σ_k A[m, k] · B[n, k] (x·Wᵀ, f32) with
// register blocking and NO workgroup memory: each invocation computes a 4×4 block of C from vec4 loads
// straight out of storage memory (K must be a multiple of 4). On CPU implementations of WebGPU (lavapipe)
// workgroupBarrier() is costly and "workgroup memory" is just memory, so this shape of kernel is expected to
// beat the shared-memory tiling of kernels/matmul.wgsl there; on a real GPU the tiled kernel should win. It
// is here to measure that headroom, not used by the engine.

struct Params { M: u32, N: u32, K: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<vec4f>;
@group(0) @binding(2) var<storage, read> B: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * 4u;
  let m0 = gid.y * 4u;
  let k4 = p.K / 4u;
  // Rows past the edge re-read the last row (their results are dropped), so the loop has no branches.
  let ra = vec4u(min(m0, p.M - 1u), min(m0 + 1u, p.M - 1u), min(m0 + 2u, p.M - 1u), min(m0 + 3u, p.M - 1u)) * k4;
  let rb = vec4u(min(n0, p.N - 1u), min(n0 + 1u, p.N - 1u), min(n0 + 2u, p.N - 1u), min(n0 + 3u, p.N - 1u)) * k4;
  var c0 = vec4f(0.0);
  var c1 = vec4f(0.0);
  var c2 = vec4f(0.0);
  var c3 = vec4f(0.0);
  for (var k = 0u; k < k4; k++) {
    let a0 = A[ra.x + k];
    let a1 = A[ra.y + k];
    let a2 = A[ra.z + k];
    let a3 = A[ra.w + k];
    let b0 = B[rb.x + k];
    let b1 = B[rb.y + k];
    let b2 = B[rb.z + k];
    let b3 = B[rb.w + k];
    c0 += vec4f(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
    c1 += vec4f(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
    c2 += vec4f(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
    c3 += vec4f(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
  }
  let rows = array<vec4f, 4>(c0, c1, c2, c3);
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (n < p.N) { C[m * p.N + n] = rows[i][j]; }
    }
  }
}
