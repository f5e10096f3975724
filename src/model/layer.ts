/**
 * One Gemma-2 decoder layer's forward, recorded once for everything that runs the model: the training and
 * eval forward of src/model/engine.ts (and its checkpointing recompute) and the KV-cache decoder of
 * src/model/decode.ts (transformers 4.45 `modeling_gemma2.py` Gemma2DecoderLayer; PEFT `lora/layer.py`):
 *
 *   a = input_norm(x);  q, k, v = proj(a) (+LoRA);  rope(q, k);  o = attention(q, k, v)
 *   xMid = x + post_attn_norm(o_proj(o));  b = pre_ffw_norm(xMid)
 *   xOut = xMid + post_ffw_norm(down(gelu_tanh(gate(b)) · up(b)))
 *
 * What differs between the callers is a parameter, not a copy of this structure:
 *  - where q, k and v go and where o_proj reads o (`LayerAttention`: rows inside wider buffers, e.g. k and v
 *    written straight into the KV cache at a position, or kept as activations for the backward);
 *  - the positions RoPE rotates (one run when every row shares its positions, one per row otherwise);
 *  - the attention kernel (`attend`: tiled attention over the batch, or attention_decode over the cache,
 *    after whatever copies into the cache it needs);
 *  - what is kept for the backward (`LayerActivations`: training passes distinct xIn / xMid / xOut, four rstd
 *    buffers and one LoRA u per projection; the decoder updates x in place with one rstd and one u scratch);
 *  - the LoRA branches (`LayerRun.lora`: with the training step's dropout mask, or without dropout).
 */
import type { Gemma2Config } from "../config/gemma2.ts";
import { isSlidingLayer } from "../config/gemma2.ts";
import type { Binding, Recorder } from "../gpu/recorder.ts";
import type { LoraTarget } from "../lora/params.ts";
import type { AttentionShape } from "./ops/attention.ts";
import { geglu } from "./ops/geglu.ts";
import { type ComputeType, linearForward, type LoraBranch } from "./ops/linear.ts";
import { rmsnorm } from "./ops/rmsnorm.ts";
import { rope } from "./ops/rope.ts";
import type { ModelWeights } from "./weights.ts";
import type { Projection } from "../config/gemma2.ts";

/** The heads of a layer's attention: the shape both attention kernels take besides B, T or the cache. */
export type AttentionHeads = Omit<AttentionShape, "B" | "T" | "tiles">;

/** Layer `layer`'s heads: Gemma-2 scales by query_pre_attn_scalar^−0.5 (not head_dim), the sliding layers
 *  attend within sliding_window. */
export function attentionHeads(c: Gemma2Config, layer: number): AttentionHeads {
  return {
    Hq: c.num_attention_heads,
    Hkv: c.num_key_value_heads,
    D: c.head_dim,
    scale: c.query_pre_attn_scalar ** -0.5,
    softcap: c.attn_logit_softcapping ?? null,
    window: isSlidingLayer(layer) ? c.sliding_window : null,
  };
}

/** Rows of a [tokens, width] tensor inside a buffer: row stride `ld` and first element `off` (elements). */
export interface Rows {
  buf: Binding;
  /** Default: the tensor's width (dense rows). */
  ld?: number;
  /** Default 0. */
  off?: number;
}

/** One RoPE dispatch: B sequences of T tokens at positions pos0.., starting at token `row` of q and k. */
export interface RopeRun {
  B: number;
  T: number;
  pos0: number;
  row: number;
}

/** Where the attention half of the layer reads and writes, and which kernel attends. */
export interface LayerAttention {
  q: Rows;
  k: Rows;
  v: Rows;
  o: Rows;
  rope: readonly RopeRun[];
  /** Records o from the rotated q, k and v (and any copy of k and v into a cache). */
  attend(rec: Recorder): void;
}

/** The layer's activations. xIn, xMid and xOut may be one buffer (the layer then updates x in place). */
export interface LayerActivations {
  xIn: GPUBuffer;
  xMid: GPUBuffer;
  xOut: GPUBuffer;
  /** Normed inputs of the attention (a) and the MLP (b), o_proj's output p, gate g, up u, gated m, down d. */
  a: Binding;
  p: Binding;
  b: Binding;
  g: Binding;
  u: Binding;
  m: Binding;
  d: Binding;
  /** rstd of the input, post-attention, pre-feedforward and post-feedforward norms. */
  rstd: readonly [Binding, Binding, Binding, Binding];
  /** Receives u = dropout(x)·Aᵀ of projection t's LoRA branch. */
  loraU(t: LoraTarget): Binding | null;
}

/** Which layer runs, over how many rows, with which operand type and LoRA branches. */
export interface LayerRun {
  weights: ModelWeights;
  layer: number;
  tokens: number;
  compute: ComputeType;
  /** Projection t's LoRA branch in this layer (with or without dropout), or null. */
  lora(t: LoraTarget): LoraBranch | null;
}

/** Records one projection y = x·Wᵀ (+ the LoRA branch) of the run's layer, on row views of x and y. */
function project(rec: Recorder, run: LayerRun, acts: LayerActivations, p: Projection, x: Rows, y: Rows) {
  const weight = run.weights.layers[run.layer].proj[p];
  const t = p as LoraTarget;
  const lora = run.lora(t);
  linearForward(rec, { x: x.buf, weight, lora, y: y.buf, u: lora ? acts.loraU(t) : null }, {
    tokens: run.tokens,
    inF: weight.shape[1],
    outF: weight.shape[0],
    compute: run.compute,
    ldx: x.ld,
    offX: x.off,
    ldy: y.ld,
    offY: y.off,
  });
}

/** Records the layer's forward from acts.xIn into acts.xOut (see the file comment). */
export function recordLayerForward(
  rec: Recorder,
  run: LayerRun,
  acts: LayerActivations,
  attn: LayerAttention,
): void {
  const c = run.weights.config;
  const W = run.weights.layers[run.layer];
  const H = c.hidden_size, D = c.head_dim, n = run.tokens;
  const norm = { rows: n, dim: H, eps: c.rms_norm_eps };
  const dense = (buf: Binding): Rows => ({ buf });
  rmsnorm(rec, acts.xIn, W.norms.input_layernorm, acts.a, acts.rstd[0], norm);
  project(rec, run, acts, "q_proj", dense(acts.a), attn.q);
  project(rec, run, acts, "k_proj", dense(acts.a), attn.k);
  project(rec, run, acts, "v_proj", dense(acts.a), attn.v);
  const inv = run.weights.invFreq;
  const rotate = (x: Rows, heads: number, r: RopeRun) => {
    const stride = x.ld ?? heads * D;
    rope(rec, x.buf, inv, {
      B: r.B,
      T: r.T,
      pos0: r.pos0,
      H: heads,
      D,
      stride,
      offset: (x.off ?? 0) + r.row * stride,
    });
  };
  for (const r of attn.rope) {
    rotate(attn.q, c.num_attention_heads, r);
    rotate(attn.k, c.num_key_value_heads, r);
  }
  attn.attend(rec);
  project(rec, run, acts, "o_proj", attn.o, dense(acts.p));
  // xMid = xIn + post_attn_norm(p), xOut = xMid + post_ffw_norm(d): the norms add into their output
  // (`residual`), so the residual stream is first copied where it is kept apart for the backward.
  if (acts.xMid !== acts.xIn) rec.copy(acts.xIn, 0, acts.xMid, 0, n * H * 4);
  rmsnorm(rec, acts.p, W.norms.post_attention_layernorm, acts.xMid, acts.rstd[1], {
    ...norm,
    residual: true,
  });
  rmsnorm(rec, acts.xMid, W.norms.pre_feedforward_layernorm, acts.b, acts.rstd[2], norm);
  project(rec, run, acts, "gate_proj", dense(acts.b), dense(acts.g));
  project(rec, run, acts, "up_proj", dense(acts.b), dense(acts.u));
  geglu(rec, acts.g, acts.u, acts.m, { rows: n, cols: c.intermediate_size });
  project(rec, run, acts, "down_proj", dense(acts.m), dense(acts.d));
  if (acts.xOut !== acts.xMid) rec.copy(acts.xMid, 0, acts.xOut, 0, n * H * 4);
  rmsnorm(rec, acts.d, W.norms.post_feedforward_layernorm, acts.xOut, acts.rstd[3], {
    ...norm,
    residual: true,
  });
}
