// The PCG-RXS-M-XS 32-bit output permutation used as a hash (Jarzynski & Olano, "Hash Functions for GPU
// Rendering", JCGT 2020): the counter-based random numbers of the kernels that say `// #include pcg`
// (fill_random, neftune, and the LoRA dropout mask through lib/dropout.wgsl). The host has a bit-identical twin,
// pcgHash in src/lora/dropout.ts.

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
