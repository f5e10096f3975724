// The bottom rung of the `maieutic bench` kernel ladder: C[m, n] = Σ_k A[m, k] · B[n, k] (x·Wᵀ, the nn.Linear
// layout, f32), one invocation per output reading both operands straight from storage memory: no tiling,
// no workgroup memory, no register blocking. Compared with kernels/matmul.wgsl (tiled) on the same shape so
// a regression of the tiled kernel towards this one shows.

struct Params { M: u32, N: u32, K: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) { acc = fma(A[m * p.K + k], B[n * p.K + k], acc); }
  C[m * p.N + n] = acc;
}
