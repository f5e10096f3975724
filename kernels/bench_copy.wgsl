// Machine ceiling for `maieutic bench`: streaming copy dst = src over n vec4<f32> (16 bytes each), so the
// measured GB/s (2 · 16 · n bytes per dispatch: one read, one write) is the device's sustainable memory
// bandwidth for a kernel that does nothing else. Each invocation copies ITEMS vec4s spaced one workgroup-row
// apart (coalesced), which amortizes the per-invocation overhead of software rasterizers such as lavapipe.
// Folded 1-D grid (Recorder.dispatch): wid = wg.x + wg.y * nwg.x, guarded against overshoot.

struct Params { n: u32 }

override WG: u32 = 256u;
override ITEMS: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4f>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let wid = wg.x + wg.y * nwg.x;
  let base = wid * WG * ITEMS + li;
  for (var k = 0u; k < ITEMS; k++) {
    let i = base + k * WG;
    if (i < p.n) { dst[i] = src[i]; }
  }
}
