/**
 * The model's two ends around its layers, shared by the engine (src/model/engine.ts) and the KV-cache decoder
 * (src/model/decode.ts): checked token ids, the scaled embedding (transformers `modeling_gemma2.py`
 * Gemma2Model: `hidden_states * normalizer` with normalizer = √hidden_size), and the head: the final norm,
 * then the fused LM head + cross-entropy (src/model/ops/cross_entropy.ts; tied embeddings, final softcap).
 */
import type { Binding, Recorder } from "../gpu/recorder.ts";
import {
  type CrossEntropyScratch,
  lmHeadCeForward,
  type LmHeadCeForwardIO,
  type LmHeadCeForwardOptions,
  type LmHeadCeShape,
} from "./ops/cross_entropy.ts";
import { embedding } from "./ops/embedding.ts";
import { rmsnorm } from "./ops/rmsnorm.ts";
import type { ModelWeights } from "./weights.ts";

/** The first n ids as u32, each checked to be an integer in [0, V) (a RangeError names the first that is not). */
export function tokenIds(ids: ArrayLike<number>, V: number, n = ids.length): Uint32Array<ArrayBuffer> {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (!(Number.isInteger(id) && id >= 0 && id < V)) {
      throw new RangeError(`token id ${id} at position ${i} is outside the vocabulary (${V})`);
    }
    out[i] = id;
  }
  return out;
}

/** x [tokens, H] = embed(ids) · √H. */
export function recordEmbedding(
  rec: Recorder,
  w: ModelWeights,
  ids: Binding,
  x: Binding,
  tokens: number,
): void {
  const H = w.config.hidden_size;
  embedding(rec, ids, w.embed, x, { tokens, dim: H, scale: Math.sqrt(H), format: w.dtype });
}

/** The fused head's shape over n rows. */
export function lmHeadShape(w: ModelWeights, n: number): LmHeadCeShape {
  const c = w.config;
  return {
    N: n,
    dim: c.hidden_size,
    V: c.vocab_size,
    tableType: w.dtype,
    softcap: c.final_logit_softcapping ?? null,
  };
}

/** Where the head reads the last hidden states x and keeps the final norm's output hf and its rstd. */
export interface HeadIo extends Omit<LmHeadCeForwardIO, "h" | "table"> {
  x: Binding;
  hf: Binding;
  rstd: Binding;
}

/** hf = final_norm(x) over n rows, then the head's loss outputs (and the logits / label log-probs asked for). */
export function recordHead(
  rec: Recorder,
  w: ModelWeights,
  io: HeadIo,
  scratch: CrossEntropyScratch,
  n: number,
  opts: LmHeadCeForwardOptions = {},
): void {
  const c = w.config;
  rmsnorm(rec, io.x, w.finalNorm, io.hf, io.rstd, { rows: n, dim: c.hidden_size, eps: c.rms_norm_eps });
  const { x: _x, hf, rstd: _rstd, ...ce } = io;
  lmHeadCeForward(rec, { h: hf, table: w.embed, ...ce }, scratch, lmHeadShape(w, n), opts);
}
