// Dropout on the LoRA branch input (PEFT lora/layer.py: `lora_dropout[adapter](x)`, an nn.Dropout(p) applied to
// the branch only, never to the base path). The mask is never stored: every kernel that reads dropout(x) (the
// forward down-projection, the dA gradient and the dx epilogue) regenerates it from a counter-based hash of
// (seed, step, stream) and the element index i = token * in_features + feature, so backward sees exactly the
// forward's mask, gradient checkpointing included.
//   bits(i) = pcg(pcg(i + k0) ^ k1)      (k0, k1) = dropoutKey(seed, step, stream) on the host (src/lora/dropout.ts)
//   keep(i) = bits(i) >= threshold       threshold = round(p * 2^32), so P(drop) = p to 2^-32
//   mult(i) = keep(i) ? scale : 0        scale = f32(1 / (1 - p)) (inverted dropout, as torch: kept * 1/(1-p))
// pcg is the PCG-RXS-M-XS 32-bit output permutation used as a hash (Jarzynski & Olano, "Hash Functions for GPU
// Rendering", JCGT 2020). The host has a bit-identical twin (dropoutMaskCpu) for tests.
//
// The text up to the end-of-library marker below is appended by the host to every kernel that needs the mask
// (kernels/lora_down.wgsl, lora_grad.wgsl, lora_up.wgsl, nf4_matmul_dx.wgsl); the rest is the mask-export kernel.

fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// The dropout multiplier (0 or scale) of element i.
fn dropout_mult(k0: u32, k1: u32, threshold: u32, scale: f32, i: u32) -> f32 {
  return select(0.0, scale, pcg_hash(pcg_hash(i + k0) ^ k1) >= threshold);
}

// ---- end of dropout library ----

// Mask export (tests and debugging): out[i] = dropout_mult(i) for i < count. 1-D grid folded over x/y.
struct Params {
  count: u32, k0: u32, k1: u32, threshold: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * 256u + li;
  if (i < p.count) { out[i] = dropout_mult(p.k0, p.k1, p.threshold, p.scale, i); }
}
