/**
 * Host side of kernels/rope.wgsl: rotary position embedding (rotate-half, transformers `modeling_gemma2.py`
 * Gemma2RotaryEmbedding + apply_rotary_pos_emb), in place on q or k, forward or inverse (the backward).
 */
import source from "../../../kernels/rope.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

const ROPE = defineKernel({
  file: "rope.wgsl",
  code: source,
  params: { tokens: "u32", T: "u32", H: "u32", D: "u32", stride: "u32", off: "u32", pos0: "u32" },
});

/**
 * inv_freq[i] = 1/θ^(2i/D) rounded as transformers computes it in float32:
 * `1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))`. Upload once per (D, θ) and pass to rope().
 */
export function ropeInvFreq(headDim: number, theta: number): Float32Array<ArrayBuffer> {
  if (headDim % 2) throw new RangeError(`rope: head_dim ${headDim} must be even`);
  const inv = new Float32Array(headDim / 2);
  for (let i = 0; i < inv.length; i++) {
    const e = Math.fround((2 * i) / headDim);
    inv[i] = Math.fround(1 / Math.fround(Math.pow(theta, e)));
  }
  return inv;
}

export interface RopeShape {
  /** Batch and sequence length: tokens = B·T, positions are pos0 + t for t in 0..T−1 in every sequence. */
  B: number;
  T: number;
  /** Heads and head dim (D even). */
  H: number;
  D: number;
  /** Elements between consecutive tokens (default H·D: a dense [B, T, H, D] tensor). */
  stride?: number;
  /** Element offset of the first head of token 0 (default 0), e.g. k inside a fused qkv row. */
  offset?: number;
  /** Position of t = 0 (default 0; the KV-cache position when decoding). */
  pos0?: number;
}

const WG = 64;

/**
 * Rotates x in place: `x[i]·cos − x[i+D/2]·sin`, `x[i+D/2]·cos + x[i]·sin` per head, angle inv_freq[i]·pos.
 * `inverse` applies the transposed rotation (the backward: dq = Rᵀ·dq_rot). `invFreq` is ropeInvFreq(D, θ).
 */
export function rope(rec: Recorder, x: Binding, invFreq: Binding, s: RopeShape, inverse = false): void {
  if (s.D % 2) throw new RangeError(`rope: head_dim ${s.D} must be even`);
  const k = getKernel(rec.gpu, {
    ...ROPE,
    constants: { WG, SIGN: inverse ? -1 : 1 },
  });
  const tokens = s.B * s.T;
  const params = {
    tokens,
    T: s.T,
    H: s.H,
    D: s.D,
    stride: s.stride ?? s.H * s.D,
    off: s.offset ?? 0,
    pos0: s.pos0 ?? 0,
  };
  rec.dispatch(k, [invFreq, x], params, Math.ceil((tokens * s.D) / 2 / WG));
}

/** The backward of rope(): the inverse rotation of the gradient, in place. */
export function ropeBackward(rec: Recorder, dx: Binding, invFreq: Binding, s: RopeShape): void {
  rope(rec, dx, invFreq, s, true);
}
