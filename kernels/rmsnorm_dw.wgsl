// Gemma-2 RMSNorm weight gradient dw[j] (+)= sum_r dy[r,j] * x[r,j] * rstd[r], a column reduction over rows
// done in two deterministic passes (no atomics), in the spirit of llm.c's layernorm_backward:
//   `partial`: workgroup (bx, chunk) sums rows [chunk*ROWS, (chunk+1)*ROWS) for WG adjacent columns (one
//              column per invocation, so each row's loads are contiguous) into scratch[chunk*dim + j];
//   `total`:   one invocation per column adds the chunk partials into dw (ACCUMULATE = 1) or stores them.
// The engine does not train norms; this is for tests and completeness.

struct Params { rows: u32, dim: u32, rowsPerChunk: u32, chunks: u32 }

override WG: u32 = 64u;
override ACCUMULATE: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;

// Entry `partial`: bindings 1..4.
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;

@compute @workgroup_size(WG)
fn partial(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wg: vec3u) {
  let j = gid.x;
  let chunk = wg.y;
  if (j >= p.dim || chunk >= p.chunks) { return; }
  let r0 = chunk * p.rowsPerChunk;
  let r1 = min(p.rows, r0 + p.rowsPerChunk);
  var s = 0.0;
  for (var r = r0; r < r1; r++) {
    s = fma(dy[r * p.dim + j], x[r * p.dim + j] * rstd[r], s);
  }
  scratch[chunk * p.dim + j] = s;
}

// Entry `total`: bindings 1..2.
@group(0) @binding(1) var<storage, read> parts: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;

@compute @workgroup_size(WG)
fn total(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= p.dim) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.chunks; c++) { s += parts[c * p.dim + j]; }
  if (ACCUMULATE == 1u) { s += dw[j]; }
  dw[j] = s;
}
