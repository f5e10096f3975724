// Dropout on the LoRA branch input (PEFT lora/layer.py: `lora_dropout[adapter](x)`, an nn.Dropout(p) applied to
// the branch only, never to the base path). The mask is never stored: every kernel that reads dropout(x) (the
// forward down-projection lora_down.wgsl, the dA gradient lora_grad.wgsl and the dx epilogues lora_up.wgsl,
// nf4_matmul_dx*.wgsl; `// #include dropout`) regenerates it from a counter-based hash of (seed, step, stream)
// and the element index i = token * in_features + feature, so backward sees exactly the forward's mask,
// gradient checkpointing included.
//   bits(i) = pcg(pcg(i + k0) ^ k1)      (k0, k1) = dropoutKey(seed, step, stream) on the host (src/lora/dropout.ts)
//   keep(i) = bits(i) >= threshold       threshold = round(p * 2^32), so P(drop) = p to 2^-32
//   mult(i) = keep(i) ? scale : 0        scale = f32(1 / (1 - p)) (inverted dropout, as torch: kept * 1/(1-p))
// The host has a bit-identical twin (dropoutMaskCpu) for tests.

// #include pcg

// The dropout multiplier (0 or scale) of element i.
fn dropout_mult(k0: u32, k1: u32, threshold: u32, scale: f32, i: u32) -> f32 {
  return select(0.0, scale, pcg(pcg(i + k0) ^ k1) >= threshold);
}
