/**
 * Incremental decoding with a KV cache (docs/ARCHITECTURE.md#evaluation: generation for the eval metrics), on the weights and LoRA
 * parameters of a Gemma2Engine (transformers 4.45 `modeling_gemma2.py` with a HybridCache; PEFT LoRA without
 * dropout, as in eval mode).
 *
 * Every pass records the model's one layer forward (src/model/layer.ts, shared with the engine), told where k
 * and v go and which attention runs:
 *   prefill(prompt):  the whole prompt at once (positions 0..P−1, one sequence): the engine's tiled attention
 *                     over the prompt; every layer's k and v are then copied into each row of that layer's
 *                     cache; the logits of the last position go to every row.
 *   step(ids):        one token per row at position n (all rows share n): projections with tokens = rows (the
 *                     small-M kernels of src/model/ops/linear.ts and the LM head's matmul: nf4_matvec.wgsl /
 *                     matvec.wgsl on GPUs, register blocks of `rows` rows on CPU adapters; no 64-row tiles),
 *                     RoPE with pos0 = n, k/v appended to the cache by the projection itself (strided output),
 *                     kernels/attention_decode.wgsl over the cached keys (sliding window on even layers),
 *                     final norm and the softcapped logits [rows, V] (the fused head's `logits` output, vocab
 *                     in chunks so 256000 works).
 *   extend(ids):      several tokens after the cached ones, one step each (a chat's next turn goes on from
 *                     the earlier turns' cache).
 *   prefillRow(b, p): a prompt into row b only (positions 0..P−1 of that row); after it the rows have lengths
 *                     of their own and step() runs them at their own positions: the per-row RoPE, cache write
 *                     and attention_decode are recorded once per row, on bindings offset to that row (q, o
 *                     and the cache rows are laid out on 256-byte boundaries for that); the projections and
 *                     the head still run over all rows at once. Different prompts then share one batch
 *                     (`maieutic generate`, src/chat/batch.ts).
 * Rows are independent sequences that share the prompt (greedy + K sampled continuations of one context):
 * after the prefill every row's cache holds the prompt. Reading: `argmax()` (kernels/argmax.wgsl, 4 bytes per
 * row) for greedy decoding, or `readLogits()` for sampling: one readback per generated token either way.
 *
 * Cache: per layer k and v [rows, cacheLen, Hkv, D] f32 (cacheLen = maxLen rounded up to 64 positions) (sliding layers keep every position too; the kernel
 * only visits the window). Everything is allocated through the engine's BufferPool (kind "decode") and given
 * back by destroy().
 */
import type { Gpu } from "../gpu/device.ts";
import { readBuffer, readF32 } from "../gpu/readback.ts";
import { Recorder } from "../gpu/recorder.ts";
import { IGNORE_INDEX } from "../data/tokenize.ts";
import type { LoraTarget } from "../lora/params.ts";
import { collectGarbage } from "../util/gc.ts";
import { recordEmbedding, recordHead, tokenIds } from "./ends.ts";
import type { Gemma2Engine } from "./engine.ts";
import {
  attentionHeads,
  type LayerActivations,
  type LayerAttention,
  type LayerRun,
  recordLayerForward,
} from "./layer.ts";
import { argmaxRows } from "./ops/argmax.ts";
import { attentionForward } from "./ops/attention.ts";
import { attentionDecode } from "./ops/attention_decode.ts";
import {
  acquireCrossEntropyScratch,
  ceChunkFor,
  type CrossEntropyScratch,
  releaseCrossEntropyScratch,
} from "./ops/cross_entropy.ts";

export interface DecoderOptions {
  /** Sequences decoded side by side (they share the prompt and the position). Default 1. */
  rows?: number;
  /** Longest sequence (prompt + fed generated tokens) the cache holds. */
  maxLen: number;
  /** Longest prompt prefill() takes (sizes the prefill activations). Default maxLen. */
  maxPrompt?: number;
}

/** Decode steps between two forced garbage collections (src/util/gc.ts). */
const GC_EVERY_STEPS = 128;

interface Acts {
  rows: number;
  x: GPUBuffer;
  a: GPUBuffer;
  q: GPUBuffer;
  o: GPUBuffer;
  p: GPUBuffer;
  b: GPUBuffer;
  g: GPUBuffer;
  u: GPUBuffer;
  m: GPUBuffer;
  d: GPUBuffer;
  rstd: GPUBuffer;
  /** LoRA u = x·Aᵀ scratch [rows, r] (consumed by the next dispatch of the same projection). */
  loraU: GPUBuffer;
  /** Prefill only: the prompt's k and v [P, Hkv·D] before they are copied into every row of the cache. */
  k?: GPUBuffer;
  v?: GPUBuffer;
}

export class Decoder {
  readonly rows: number;
  readonly maxLen: number;
  readonly maxPrompt: number;
  /** Positions per row in the cache buffers: maxLen rounded up so that a row starts on a 256-byte boundary. */
  private readonly cacheLen: number;
  /** Tokens in the cache (the next token goes to this position); with rows of their own, the longest. */
  length = 0;
  /** Each row's length after prefillRow(); null while every row has `length` tokens (prefill()). */
  private rowLen: number[] | null = null;
  /** Per-row path: q and o [rows, QP] with QP = Hq·D rounded up to 64 floats (256 bytes), new k and v. */
  private readonly perRow: { q: GPUBuffer; o: GPUBuffer; k: GPUBuffer; v: GPUBuffer; QP: number };
  private readonly gpu: Gpu;
  private readonly owned: GPUBuffer[] = [];
  private readonly kc: GPUBuffer[];
  private readonly vc: GPUBuffer[];
  private readonly pre: Acts;
  private readonly dec: Acts;
  private readonly ids: GPUBuffer;
  private readonly lse: GPUBuffer;
  private readonly hf: GPUBuffer;
  private readonly logits: GPUBuffer;
  private readonly nextIds: GPUBuffer;
  private readonly ce: CrossEntropyScratch;
  private readonly ceOut: { targets: GPUBuffer; lse: GPUBuffer; tokenLoss: GPUBuffer; loss: GPUBuffer };
  private destroyed = false;
  private steps = 0;

  constructor(readonly engine: Gemma2Engine, opts: DecoderOptions) {
    if (!engine.gpu) throw new Error("Decoder needs an engine on a GPU");
    this.gpu = engine.gpu;
    const c = engine.weights.config;
    const rows = this.rows = opts.rows ?? 1;
    const maxLen = this.maxLen = opts.maxLen;
    const maxPrompt = this.maxPrompt = Math.min(opts.maxPrompt ?? maxLen, maxLen);
    const cacheLen = this.cacheLen = Math.ceil(maxLen / 64) * 64;
    for (const [k, v] of Object.entries({ rows, maxLen, maxPrompt })) {
      if (!Number.isInteger(v) || v < 1) {
        throw new RangeError(`Decoder: ${k} = ${v} must be a positive integer`);
      }
    }
    const H = c.hidden_size, I = c.intermediate_size, QD = c.num_attention_heads * c.head_dim;
    const KVD = c.num_key_value_heads * c.head_dim;
    const r = engine.lora?.layout.r ?? 1;
    const pool = engine.pool;
    const buf = (label: string, bytes: number) => {
      const b = pool.persistent(`decode.${label}`, "decode", Math.max(16, bytes));
      this.owned.push(b);
      return b;
    };
    const acts = (tag: string, n: number): Acts => ({
      rows: n,
      x: buf(`${tag}.x`, n * H * 4),
      a: buf(`${tag}.a`, n * H * 4),
      q: buf(`${tag}.q`, n * QD * 4),
      o: buf(`${tag}.o`, n * QD * 4),
      p: buf(`${tag}.p`, n * H * 4),
      b: buf(`${tag}.b`, n * H * 4),
      g: buf(`${tag}.g`, n * I * 4),
      u: buf(`${tag}.u`, n * I * 4),
      m: buf(`${tag}.m`, n * I * 4),
      d: buf(`${tag}.d`, n * H * 4),
      rstd: buf(`${tag}.rstd`, n * 4),
      loraU: buf(`${tag}.loraU`, n * r * 4),
    });
    this.kc = [];
    this.vc = [];
    for (let l = 0; l < c.num_hidden_layers; l++) {
      this.kc.push(buf(`k${l}`, rows * cacheLen * KVD * 4));
      this.vc.push(buf(`v${l}`, rows * cacheLen * KVD * 4));
    }
    this.pre = acts("prefill", maxPrompt);
    this.pre.k = buf("prefill.k", maxPrompt * KVD * 4);
    this.pre.v = buf("prefill.v", maxPrompt * KVD * 4);
    this.dec = acts("step", rows);
    const QP = Math.ceil(QD / 64) * 64;
    this.perRow = {
      q: buf("row.q", rows * QP * 4),
      o: buf("row.o", rows * QP * 4),
      k: buf("row.k", rows * KVD * 4),
      v: buf("row.v", rows * KVD * 4),
      QP,
    };
    this.ids = buf("ids", Math.max(maxPrompt, rows) * 4);
    this.lse = buf("lse", c.num_attention_heads * maxPrompt * 4);
    this.hf = buf("hf", rows * H * 4);
    this.logits = buf("logits", rows * c.vocab_size * 4);
    this.nextIds = buf("nextIds", rows * 4);
    const maxBinding = this.gpu.limits.maxStorageBufferBindingSize;
    if (rows * c.vocab_size * 4 > maxBinding) {
      throw new RangeError(`Decoder: ${rows} rows of ${c.vocab_size} logits exceed one storage binding`);
    }
    this.ce = acquireCrossEntropyScratch(pool, rows, ceChunkFor(rows, maxBinding));
    this.ceOut = {
      targets: buf("targets", rows * 4),
      lse: buf("ce.lse", rows * 4),
      tokenLoss: buf("ce.tokenLoss", rows * 4),
      loss: buf("ce.loss", 16),
    };
    // No targets: the head's loss outputs are unused, only its logits.
    this.gpu.device.queue.writeBuffer(this.ceOut.targets, 0, new Int32Array(rows).fill(IGNORE_INDEX));
  }

  /** Frees every buffer (the decoder is unusable afterwards). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of this.owned) this.engine.pool.destroy(b);
    releaseCrossEntropyScratch(this.engine.pool, this.ce);
  }

  private check(): void {
    if (this.destroyed) throw new Error("Decoder used after destroy()");
  }

  private validIds(ids: readonly number[]): Uint32Array<ArrayBuffer> {
    return tokenIds(ids, this.engine.weights.config.vocab_size);
  }

  /** Layer l over `tokens` rows with the adapter's LoRA branches in eval mode (no dropout, as PEFT in eval()). */
  private run(l: number, tokens: number): LayerRun {
    const engine = this.engine;
    const lora = (t: LoraTarget) => engine.loraBranch(l, t, null);
    return { weights: engine.weights, layer: l, tokens, compute: engine.opts.compute, lora };
  }

  /** Nothing is kept for a backward: x is updated in place, one rstd and one LoRA u scratch serve every step. */
  private activations(acts: Acts): LayerActivations {
    const r = acts.rstd;
    return { ...acts, xIn: acts.x, xMid: acts.x, xOut: acts.x, rstd: [r, r, r, r], loraU: () => acts.loraU };
  }

  /**
   * Records and submits one pass: `ids` embedded into acts.x, every layer with the attention of
   * `attention(l)`, then `toHead` (which leaves the rows' last hidden states in dec.x) and the head.
   */
  private pass(
    label: string,
    ids: readonly number[],
    acts: Acts,
    attention: (l: number) => LayerAttention,
    toHead: (rec: Recorder) => void = () => {},
  ): void {
    this.gpu.device.queue.writeBuffer(this.ids, 0, this.validIds(ids));
    const rec = new Recorder(this.gpu, { label });
    const w = this.engine.weights;
    recordEmbedding(rec, w, this.ids, acts.x, ids.length);
    for (let l = 0; l < w.config.num_hidden_layers; l++) {
      recordLayerForward(rec, this.run(l, ids.length), this.activations(acts), attention(l));
    }
    toHead(rec);
    recordHead(
      rec,
      w,
      { x: this.dec.x, hf: this.hf, rstd: this.dec.rstd, ...this.ceOut, logits: this.logits },
      this.ce,
      this.rows,
    );
    rec.submit();
  }

  /**
   * Starts every row over with `prompt` (positions 0..P−1): fills the caches and leaves the logits of the
   * prompt's last position in every row. Submits; nothing is read back.
   */
  prefill(prompt: readonly number[]): void {
    this.runPrefill(prompt, Array.from({ length: this.rows }, (_, b) => b));
    this.rowLen = null;
    this.length = prompt.length;
  }

  /**
   * Starts row b over with `prompt` (positions 0..P−1 of that row) and leaves its logits; the other rows keep
   * their caches, lengths and logits. From then on step() runs each row at its own position.
   */
  prefillRow(b: number, prompt: readonly number[]): void {
    if (!(Number.isInteger(b) && b >= 0 && b < this.rows)) throw new RangeError(`prefillRow: no row ${b}`);
    this.runPrefill(prompt, [b]);
    this.rowLen ??= new Array<number>(this.rows).fill(this.length);
    this.rowLen[b] = prompt.length;
    this.length = Math.max(...this.rowLen);
  }

  /** Each row's length (tokens in its cache). */
  get lengths(): number[] {
    return this.rowLen ? [...this.rowLen] : new Array<number>(this.rows).fill(this.length);
  }

  private runPrefill(prompt: readonly number[], targets: readonly number[]): void {
    this.check();
    const P = prompt.length;
    if (P < 1) throw new RangeError("prefill: empty prompt");
    if (P > this.maxPrompt) {
      throw new RangeError(`prefill: ${P} prompt tokens exceed maxPrompt ${this.maxPrompt}`);
    }
    const c = this.engine.weights.config;
    const H = c.hidden_size, KVD = c.num_key_value_heads * c.head_dim;
    const acts = this.pre, k = acts.k!, v = acts.v!;
    const kvBytes = P * KVD * 4;
    const rowBytes = this.cacheLen * KVD * 4;
    // The engine's attention over the prompt (one sequence), then every target row's cache starts with the
    // prompt's k and v. (The next layer overwrites k and v only after these copies.)
    const attention = (l: number): LayerAttention => ({
      q: { buf: acts.q },
      k: { buf: k },
      v: { buf: v },
      o: { buf: acts.o },
      rope: [{ B: 1, T: P, pos0: 0, row: 0 }],
      attend: (rec) => {
        attentionForward(rec, acts.q, k, v, acts.o, this.lse, null, { B: 1, T: P, ...attentionHeads(c, l) });
        for (const b of targets) {
          rec.copy(k, 0, this.kc[l], b * rowBytes, kvBytes);
          rec.copy(v, 0, this.vc[l], b * rowBytes, kvBytes);
        }
      },
    });
    // The last position's hidden state goes to the target rows of the head's input; the other rows of dec.x
    // still hold their own last hidden state (only prefills and steps write it), so their logits stay.
    this.pass("decode-prefill", prompt, acts, attention, (rec) => {
      for (const b of targets) rec.copy(acts.x, (P - 1) * H * 4, this.dec.x, b * H * 4, H * 4);
    });
  }

  /** Feeds one token per row at position `length` and leaves the next logits [rows, V]. Submits. */
  step(ids: readonly number[]): void {
    this.check();
    if (this.length < 1) throw new Error("step: call prefill() first");
    if (ids.length !== this.rows) throw new RangeError(`step: ${ids.length} ids for ${this.rows} rows`);
    if (this.rowLen) return this.stepRows(ids, this.rowLen);
    if (this.length >= this.maxLen) {
      throw new RangeError(`step: the cache is full (${this.maxLen} positions)`);
    }
    const c = this.engine.weights.config;
    const KVD = c.num_key_value_heads * c.head_dim;
    const n = this.length, R = this.rows, acts = this.dec;
    // Row b's new k/v land at cache[b, n] (row stride cacheLen·KVD, offset n·KVD), written by the projection.
    const cached = (buf: GPUBuffer) => ({ buf, ld: this.cacheLen * KVD, off: n * KVD });
    this.pass("decode-step", ids, acts, (l) => ({
      q: { buf: acts.q },
      k: cached(this.kc[l]),
      v: cached(this.vc[l]),
      o: { buf: acts.o },
      rope: [{ B: R, T: 1, pos0: n, row: 0 }],
      attend: (rec) =>
        attentionDecode(rec, acts.q, this.kc[l], this.vc[l], acts.o, {
          B: R,
          ...attentionHeads(c, l),
          maxLen: this.cacheLen,
          n: n + 1,
        }),
    }));
    this.length = n + 1;
    // Bind groups are freed only when V8 collects them; see src/util/gc.ts (lavapipe crashes at ~65k).
    if (++this.steps % GC_EVERY_STEPS === 0) collectGarbage();
  }

  /** step() with rows at positions of their own (after prefillRow; see the file comment). */
  private stepRows(ids: readonly number[], len: number[]): void {
    const full = len.findIndex((n) => n < 1 || n >= this.maxLen);
    if (full >= 0) {
      throw new RangeError(
        `step: row ${full} holds ${len[full]} tokens (empty, or the cache of ${this.maxLen} is full)`,
      );
    }
    const c = this.engine.weights.config;
    const KVD = c.num_key_value_heads * c.head_dim, QD = c.num_attention_heads * c.head_dim;
    const { q, o, k, v, QP } = this.perRow;
    const rowBytes = this.cacheLen * KVD * 4;
    // q and o in 256-byte-aligned rows (each row's attention binds its own q and o), new k and v contiguous;
    // RoPE, the cache write and attention_decode once per row at that row's position.
    this.pass("decode-step-rows", ids, this.dec, (l) => ({
      q: { buf: q, ld: QP },
      k: { buf: k },
      v: { buf: v },
      o: { buf: o, ld: QP },
      rope: len.map((n, b) => ({ B: 1, T: 1, pos0: n, row: b })),
      attend: (rec) => {
        len.forEach((n, b) => {
          rec.copy(k, b * KVD * 4, this.kc[l], b * rowBytes + n * KVD * 4, KVD * 4);
          rec.copy(v, b * KVD * 4, this.vc[l], b * rowBytes + n * KVD * 4, KVD * 4);
          const cache = (buffer: GPUBuffer) => ({ buffer, offset: b * rowBytes, size: rowBytes });
          const row = (buffer: GPUBuffer) => ({ buffer, offset: b * QP * 4, size: QD * 4 });
          attentionDecode(rec, row(q), cache(this.kc[l]), cache(this.vc[l]), row(o), {
            B: 1,
            ...attentionHeads(c, l),
            maxLen: this.cacheLen,
            n: n + 1,
          });
        });
      },
    }));
    for (let b = 0; b < this.rows; b++) len[b]++;
    this.length = Math.max(...len);
    if (++this.steps % GC_EVERY_STEPS === 0) collectGarbage();
  }

  /**
   * Appends `ids` to every row at positions length.. (the same tokens in each row) and leaves the logits of
   * the last one: a conversation's next turn goes on from the cached keys and values of the earlier turns
   * (src/chat/session.ts) instead of a prefill of the whole conversation. One decode step per token (the
   * step's small-M kernels, no readback); submits.
   */
  extend(ids: readonly number[]): void {
    this.check();
    if (this.length < 1) throw new Error("extend: call prefill() first");
    if (this.length + ids.length > this.maxLen) {
      throw new RangeError(
        `extend: ${this.length} cached + ${ids.length} new tokens exceed the cache's ${this.maxLen} positions`,
      );
    }
    this.validIds(ids);
    for (const id of ids) this.step(new Array<number>(this.rows).fill(id));
  }

  /** The current logits, one Float32Array [V] per row (one readback). */
  async readLogits(): Promise<Float32Array[]> {
    this.check();
    const V = this.engine.weights.config.vocab_size;
    const all = await readF32(this.gpu, this.logits, 0, this.rows * V);
    return Array.from({ length: this.rows }, (_, b) => all.subarray(b * V, (b + 1) * V));
  }

  /** The argmax of each row's current logits (greedy decoding): one readback of 4 bytes per row. */
  async argmax(): Promise<number[]> {
    this.check();
    const V = this.engine.weights.config.vocab_size;
    const rec = new Recorder(this.gpu, { label: "decode-argmax" });
    argmaxRows(rec, this.logits, this.nextIds, { rows: this.rows, V });
    rec.submit();
    return Array.from(new Uint32Array(await readBuffer(this.gpu, this.nextIds, 0, this.rows * 4)));
  }
}
