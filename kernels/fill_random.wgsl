// Deterministic pseudo-random fill (PCG hash of (seed, word index)) for the gemma-2-2b-random preset, so
// real-shape weights exist on the GPU without a download or a host copy.
//   MODE 0: random u32 words (NF4 codes and double-quant absmax codes: every byte uniform)
//   MODE 1: f32 uniform in [lo, hi)
//   MODE 2: two f16 per word, uniform in [lo, hi)

struct Params { words: u32, seed: u32, lo: f32, hi: f32 }

override MODE: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn unit(h: u32) -> f32 {
  return f32(h >> 8u) / 16777216.0;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.words) { return; }
  let h = pcg(pcg(i ^ p.seed) + p.seed);
  if (MODE == 0u) {
    out[i] = h;
  } else if (MODE == 1u) {
    out[i] = bitcast<u32>(p.lo + (p.hi - p.lo) * unit(h));
  } else {
    let a = p.lo + (p.hi - p.lo) * unit(h);
    let b = p.lo + (p.hi - p.lo) * unit(pcg(h));
    out[i] = pack2x16float(vec2f(a, b));
  }
}
