// Shared by the tiled attention kernels (attention_fwd, attention_bwd_dq, attention_bwd_dkdv; appended by the
// host where a kernel says `// #include attention_scores`, src/gpu/kernel.ts): their parameters, Gemma-2's
// score transform and which keys a query sees. transformers modeling_gemma2.py (eager attention): scores
// (q·k)·scale, then softcap tanh(s/cap)·cap, then the additive mask (finfo.min, finite) — causal j ≤ i,
// sliding window i − window < j, key padding — then softmax in f32.
// Needs from the kernel: the uniform `p: Params` and `keyMask: array<u32>` bindings.

struct Params {
  B: u32, T: u32, Hq: u32, Hkv: u32,
  scale: f32, cap: f32, useCap: u32, window: u32,
  useMask: u32, invT: f32,
  hd: u32, br: u32, bc: u32, // = HD, BR, BC: runtime copies for the inner loop bounds (see attention_fwd.wgsl)
}

// A masked score, like HF's finfo.min: large, finite, negative. A row that saw no visible key keeps its
// running max at MASKED, so its log-sum-exp stays below MASKED_LSE: the backward kernels read that as a
// uniform softmax over all T keys (HF's behaviour for such rows, never NaN).
const MASKED: f32 = -1e30;
const MASKED_LSE: f32 = -1e29;

// The softcapped score s = tanh(raw/cap)·cap and t = tanh(raw/cap) (the backward's chain rule needs 1 − t²);
// without softcap s = raw and t = 0. The clamp keeps tanh's exp-based lowering finite (tanh(15) is 1 in f32).
struct Capped { s: f32, t: f32 }

fn softcap(raw: f32) -> Capped {
  if (p.useCap == 0u) { return Capped(raw, 0.0); }
  let t = tanh(clamp(raw / p.cap, -15.0, 15.0));
  return Capped(t * p.cap, t);
}

// Key j visible to query i (both < T): causal, sliding window (window == T when off), key padding.
fn visible(b: u32, i: u32, j: u32) -> bool {
  if (j > i || i - j >= p.window) { return false; }
  return p.useMask == 0u || keyMask[b * p.T + j] != 0u;
}

// The forward's softmax probability of key j for query i, recomputed from the score s and the row's
// log-sum-exp (backward kernels): 0 for a hidden key or a position past T, 1/T for a row with no visible key.
fn recomputedProb(b: u32, i: u32, j: u32, s: f32, lse: f32) -> f32 {
  if (i >= p.T || j >= p.T) { return 0.0; }
  if (lse < MASKED_LSE) { return p.invT; }
  if (visible(b, i, j)) { return exp(s - lse); }
  return 0.0;
}
