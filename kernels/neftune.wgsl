// NEFTune (Jain et al. 2023; transformers trainer_utils.neftune_post_forward_hook): during training, uniform
// noise U(−m, m) with m = alpha / sqrt(T·hidden) is added to the embedding layer's output. Gemma-2 scales
// that output by √hidden afterwards, so on our (already scaled) x0 the noise is scaled by √hidden too:
// the host passes mag = m·√hidden. The noise is a counter-based hash of (seed, step, element), so the
// checkpointed recomputation and a resumed run see the same noise.

struct Params { n: u32, seed: u32, step: u32, mag: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let h = pcg(pcg(pcg(p.seed) ^ p.step) + i);
  let u = f32(h >> 8u) / 16777216.0; // [0, 1)
  x[i] += (2.0 * u - 1.0) * p.mag;
}
