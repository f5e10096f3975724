// Gemma-2's logit softcapping of attention scores (transformers modeling_gemma2.py: tanh(s / cap) · cap),
// shared by the attention kernels (`// #include softcap`: attention_decode.wgsl, and the tiled ones through
// lib/attention_scores.wgsl). Needs from the kernel: the uniform `p` with fields `useCap` and `cap`.

// The softcapped score s = tanh(raw/cap)·cap and t = tanh(raw/cap) (the backward's chain rule needs 1 − t²);
// without softcap s = raw and t = 0. The clamp keeps tanh's exp-based lowering finite (tanh(15) is 1 in f32).
struct Capped { s: f32, t: f32 }

fn softcap(raw: f32) -> Capped {
  if (p.useCap == 0u) { return Capped(raw, 0.0); }
  let t = tanh(clamp(raw / p.cap, -15.0, 15.0));
  return Capped(t * p.cap, t);
}
