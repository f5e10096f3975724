/**
 * Gemma-2 forward and hand-written backward on WebGPU, with NF4 (or dense) frozen base weights and LoRA
 * (transformers 4.45 `modeling_gemma2.py`, eager attention; PEFT `lora/layer.py`). One forward and one
 * backward per layer type, each a small kernel (src/model/ops/*), recorded into one command buffer per
 * micro-batch; nothing is read back inside a step.
 *
 *   x0 = embed(ids) · √hidden
 *   per layer:  a = in_norm(x);  q,k,v = proj(a) (+LoRA);  rope(q, k);  o = attn(q, k, v)
 *               xMid = x + post_attn_norm(o_proj(o));  b = pre_ffw_norm(xMid)
 *               xOut = xMid + post_ffw_norm(down(gelu_tanh(gate(b)) · up(b)))
 *   loss = CE(softcap(final_norm(x_L) · Eᵀ)) over vocab chunks (never the full logits)
 *
 * The layer's forward is recorded by src/model/layer.ts (the decoder of src/model/decode.ts records the same
 * one), the embedding and head by src/model/ends.ts; the backward is here.
 *
 * Activation checkpointing (docs/ARCHITECTURE.md#performance): only each layer's input x_l is kept; the backward recomputes a
 * layer's intermediates into one shared workspace before differentiating it. Without checkpointing every
 * layer keeps its own workspace.
 */
import { IGNORE_INDEX } from "../data/tokenize.ts";
import type { BufferPool } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Binding, Recorder } from "../gpu/recorder.ts";
import type { LoraParams } from "../lora/params.ts";
import { type LoraLayout, type LoraModuleInfo, loraStreamId, type LoraTarget } from "../lora/params.ts";
import { lmHeadShape, recordEmbedding, recordHead, tokenIds } from "./ends.ts";
import { attentionHeads, recordLayerForward } from "./layer.ts";
import {
  attentionBackward,
  attentionForward,
  attentionScratchBytes,
  type AttentionShape,
} from "./ops/attention.ts";
import {
  acquireCrossEntropyScratch,
  ceChunkFor,
  type CrossEntropyScratch,
  lmHeadCeBackward,
} from "./ops/cross_entropy.ts";
import { gegluBackwardInPlace } from "./ops/geglu.ts";
import { neftune, neftuneMagnitude } from "./ops/neftune.ts";
import { type ComputeType, linearBackward, type LinearShape, type LoraBranch } from "./ops/linear.ts";
import { rmsnormBackward } from "./ops/rmsnorm.ts";
import { ropeBackward } from "./ops/rope.ts";
import type { ModelWeights } from "./weights.ts";
import type { Projection } from "../config/gemma2.ts";

export interface EngineOptions {
  /** Largest batch rows × sequence length the buffers are sized for. */
  maxBatch: number;
  maxSeq: number;
  /** Matmul operand type (f32 accumulation always). */
  compute: ComputeType;
  checkpointing: boolean;
  /** LoRA dropout probability (training only). */
  loraDropout: number;
  /** Also allocate the training buffers (activation gradients and the LoRA gradient arena). The optimizer's
   *  state (AdamW moments, snapshot) is the trainer's: src/train/optimizer.ts allocOptimizer. */
  training: boolean;
  /** NEFTune noise alpha (training.neftune_noise_alpha; 0 = off). Training forwards only. */
  neftuneAlpha?: number;
}

/** One layer's forward intermediates (what its backward needs). */
interface Workspace {
  a: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  o: GPUBuffer;
  lse: GPUBuffer;
  p: GPUBuffer;
  xMid: GPUBuffer;
  b: GPUBuffer;
  g: GPUBuffer;
  u: GPUBuffer;
  m: GPUBuffer;
  d: GPUBuffer;
  rstd: [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
  /** LoRA u = dropout(x)·Aᵀ per targeted projection. */
  lora: Partial<Record<LoraTarget, GPUBuffer>>;
}

/** Gradient buffers of the backward (shared by all layers). */
interface GradSpace {
  gX: GPUBuffer;
  gD: GPUBuffer;
  gM: GPUBuffer;
  gB: GPUBuffer;
  gP: GPUBuffer;
  gO: GPUBuffer;
  gQ: GPUBuffer;
  gK: GPUBuffer;
  gV: GPUBuffer;
  gA: GPUBuffer;
  du: GPUBuffer;
  attn: GPUBuffer;
}

export interface BatchShape {
  B: number;
  T: number;
}

export interface ForwardCapture {
  /** [N, V] f32: the final (softcapped) logits — small vocabularies only. */
  logits?: Binding;
  /** [N] f32: log-softmax at each row's target. */
  labelLogprob?: Binding;
}

export class Gemma2Engine {
  readonly N: number;
  /** Layer inputs x_0..x_{L-1} and the last layer's output x_L (hidden_states before the final norm). */
  readonly xs: GPUBuffer[];
  /** Final-norm output [N, H] (HF hidden_states[L]) and its rstd. */
  readonly hf: GPUBuffer;
  private readonly rstdF: GPUBuffer;
  /** Token ids [N] u32, shifted targets [N] i32, key mask [N] u32. */
  readonly ids: GPUBuffer;
  readonly targets: GPUBuffer;
  readonly keyMask: GPUBuffer;
  /** CE outputs: lse [N], token loss [N], loss [Σ token loss, counted]. */
  readonly lse: GPUBuffer;
  readonly tokenLoss: GPUBuffer;
  readonly loss: GPUBuffer;
  private readonly workspaces: Workspace[];
  private readonly grads: GradSpace | null;
  private readonly ce: CrossEntropyScratch;
  readonly ceChunk: number;
  /** The LoRA parameters (flat arena) and, when training, their gradients (same layout). */
  readonly lora: { layout: LoraLayout; scaling: number; param: GPUBuffer; grad: GPUBuffer | null } | null;
  private readonly modules = new Map<string, LoraModuleInfo>();

  constructor(
    readonly gpu: Gpu | null,
    readonly pool: BufferPool,
    readonly weights: ModelWeights,
    lora: LoraParams | null,
    readonly opts: EngineOptions,
  ) {
    const c = weights.config;
    const N = this.N = opts.maxBatch * opts.maxSeq;
    const H = c.hidden_size, I = c.intermediate_size, QD = c.num_attention_heads * c.head_dim;
    const KVD = c.num_key_value_heads * c.head_dim;
    const act = (label: string, elems: number) => pool.persistent(label, "activations", elems * 4);
    const L = c.num_hidden_layers;
    this.xs = Array.from({ length: L + 1 }, (_, l) => act(`x${l}`, N * H));
    this.hf = act("hf", N * H);
    this.rstdF = act("rstdF", N);
    this.ids = pool.persistent("ids", "inputs", N * 4);
    this.targets = pool.persistent("targets", "inputs", N * 4);
    this.keyMask = pool.persistent("keyMask", "inputs", N * 4);
    this.lse = act("ce.lse", N);
    this.tokenLoss = act("ce.tokenLoss", N);
    this.loss = pool.persistent("ce.loss", "inputs", 16);
    const r = lora?.layout.r ?? 0;
    const targets = lora?.layout.targets ?? [];
    const workspace = (w: number): Workspace => ({
      a: act(`ws${w}.a`, N * H),
      q: act(`ws${w}.q`, N * QD),
      k: act(`ws${w}.k`, N * KVD),
      v: act(`ws${w}.v`, N * KVD),
      o: act(`ws${w}.o`, N * QD),
      lse: act(`ws${w}.lse`, N * c.num_attention_heads),
      p: act(`ws${w}.p`, N * H),
      xMid: act(`ws${w}.xMid`, N * H),
      b: act(`ws${w}.b`, N * H),
      g: act(`ws${w}.g`, N * I),
      u: act(`ws${w}.u`, N * I),
      m: act(`ws${w}.m`, N * I),
      d: act(`ws${w}.d`, N * H),
      rstd: [act(`ws${w}.r0`, N), act(`ws${w}.r1`, N), act(`ws${w}.r2`, N), act(`ws${w}.r3`, N)],
      lora: Object.fromEntries(targets.map((t) => [t, act(`ws${w}.u_${t}`, N * r)])),
    });
    const nWs = opts.training && !opts.checkpointing ? L : 1;
    this.workspaces = Array.from({ length: nWs }, (_, w) => workspace(w));
    const grad = (label: string, elems: number) => pool.persistent(label, "gradients", elems * 4);
    this.grads = opts.training
      ? {
        gX: grad("gX", N * H),
        gD: grad("gD", N * H),
        gM: grad("gM", N * I),
        gB: grad("gB", N * H),
        gP: grad("gP", N * H),
        gO: grad("gO", N * QD),
        gQ: grad("gQ", N * QD),
        gK: grad("gK", N * KVD),
        gV: grad("gV", N * KVD),
        gA: grad("gA", N * H),
        du: grad("du", Math.max(1, N * r)),
        attn: pool.persistent(
          "attn.scratch",
          "gradients",
          attentionScratchBytes({ B: opts.maxBatch, T: opts.maxSeq, Hq: c.num_attention_heads }),
        ),
      }
      : null;
    const maxBinding = gpu?.limits.maxStorageBufferBindingSize ?? 128 * 2 ** 20;
    this.ceChunk = ceChunkFor(N, maxBinding);
    this.ce = acquireCrossEntropyScratch(pool, N, this.ceChunk);

    if (lora) {
      const bytes = lora.layout.total * 4;
      const param = pool.persistent("lora.param", "lora", bytes);
      if (gpu) gpu.device.queue.writeBuffer(param, 0, lora.data);
      const grad = opts.training ? pool.persistent("lora.grad", "lora", bytes) : null;
      this.lora = { layout: lora.layout, scaling: lora.scaling, param, grad };
      for (const m of lora.layout.modules) this.modules.set(`${m.layer}.${m.module}`, m);
    } else {
      this.lora = null;
    }
  }

  // ---- inputs ----

  /**
   * Writes a batch's ids, shifted targets (row t's target is labels[t+1]; −100 at the last position) and key
   * mask. Queue writes land before the next submitted command buffer.
   */
  setBatch(
    inputIds: Int32Array,
    labels: Int32Array | null,
    attentionMask: Uint8Array | null,
    s: BatchShape,
  ): void {
    const n = s.B * s.T;
    if (n > this.N) {
      throw new RangeError(
        `batch ${s.B}x${s.T} exceeds the engine's ${this.opts.maxBatch}x${this.opts.maxSeq}`,
      );
    }
    const ids = tokenIds(inputIds, this.weights.config.vocab_size, n);
    const targets = new Int32Array(n).fill(IGNORE_INDEX);
    if (labels) {
      for (let b = 0; b < s.B; b++) {
        for (let t = 0; t + 1 < s.T; t++) targets[b * s.T + t] = labels[b * s.T + t + 1];
      }
    }
    const mask = new Uint32Array(n);
    for (let i = 0; i < n; i++) mask[i] = attentionMask ? (attentionMask[i] ? 1 : 0) : 1;
    if (!this.gpu) return;
    const q = this.gpu.device.queue;
    q.writeBuffer(this.ids, 0, ids);
    q.writeBuffer(this.targets, 0, targets);
    q.writeBuffer(this.keyMask, 0, mask);
  }

  // ---- pieces ----

  private attnShape(layer: number, s: BatchShape): AttentionShape {
    return { B: s.B, T: s.T, ...attentionHeads(this.weights.config, layer) };
  }

  /** Projection t's LoRA branch in `layer` (dropout with the step's mask; none for dropoutStep null), or null. */
  loraBranch(layer: number, t: LoraTarget, dropoutStep: number | null): LoraBranch | null {
    if (!this.lora) return null;
    const m = this.modules.get(`${layer}.${t}`);
    if (!m) return null;
    const view = (o: number, size: number): Binding => ({
      buffer: this.lora!.param,
      offset: o * 4,
      size: size * 4,
    });
    return {
      A: view(m.A.offset, m.A.size),
      B: view(m.B.offset, m.B.size),
      r: this.lora.layout.r,
      scaling: this.lora.scaling,
      dropout: dropoutStep !== null && this.opts.loraDropout > 0
        ? { p: this.opts.loraDropout, seed: 0, step: dropoutStep, stream: loraStreamId(layer, t) }
        : null,
    };
  }

  private gradViews(layer: number, t: LoraTarget): { dA: Binding; dB: Binding; accumulate: boolean } | null {
    const m = this.modules.get(`${layer}.${t}`);
    if (!m || !this.lora?.grad) return null;
    const g = this.lora.grad;
    return {
      dA: { buffer: g, offset: m.A.offset * 4, size: m.A.size * 4 },
      dB: { buffer: g, offset: m.B.offset * 4, size: m.B.size * 4 },
      accumulate: true,
    };
  }

  private linShape(p: Projection, n: number): LinearShape {
    const w = this.weights.layers[0].proj[p];
    return { tokens: n, inF: w.shape[1], outF: w.shape[0], compute: this.opts.compute };
  }

  /** Records layer `l`'s forward from xs[l] into the workspace and xs[l + 1] (src/model/layer.ts). */
  private layerForward(rec: Recorder, l: number, ws: Workspace, s: BatchShape, step: number | null): void {
    recordLayerForward(rec, {
      weights: this.weights,
      layer: l,
      tokens: s.B * s.T,
      compute: this.opts.compute,
      lora: (t) => this.loraBranch(l, t, step),
    }, {
      ...ws,
      xIn: this.xs[l],
      xMid: ws.xMid,
      xOut: this.xs[l + 1],
      loraU: (t) => ws.lora[t] ?? null,
    }, {
      q: { buf: ws.q },
      k: { buf: ws.k },
      v: { buf: ws.v },
      o: { buf: ws.o },
      rope: [{ B: s.B, T: s.T, pos0: 0, row: 0 }],
      attend: (rec) =>
        attentionForward(rec, ws.q, ws.k, ws.v, ws.o, ws.lse, this.keyMask, this.attnShape(l, s)),
    });
  }

  private projBackward(
    rec: Recorder,
    l: number,
    p: Projection,
    dy: Binding,
    x: Binding,
    dx: Binding,
    accumulateDx: boolean,
    ws: Workspace,
    n: number,
    dropoutStep: number | null,
  ): void {
    const t = p as LoraTarget;
    const lora = this.loraBranch(l, t, dropoutStep);
    linearBackward(rec, {
      dy,
      x,
      weight: this.weights.layers[l].proj[p],
      lora,
      u: lora ? ws.lora[t] : null,
      du: lora ? this.grads!.du : null,
      grads: lora ? this.gradViews(l, t) : null,
      dx,
      accumulateDx,
    }, this.linShape(p, n));
  }

  /** Records layer l's backward: grads.gX holds d loss / d xOut on entry and d loss / d xIn on exit. */
  private layerBackward(
    rec: Recorder,
    l: number,
    ws: Workspace,
    s: BatchShape,
    dropoutStep: number | null,
  ): void {
    const c = this.weights.config;
    const W = this.weights.layers[l];
    const g = this.grads!;
    const n = s.B * s.T;
    const H = c.hidden_size;
    const I = c.intermediate_size;
    // xOut = xMid + post_ffw_norm(d)
    rmsnormBackward(rec, g.gX, ws.d, W.norms.post_feedforward_layernorm, ws.rstd[3], g.gD, {
      rows: n,
      dim: H,
    });
    this.projBackward(rec, l, "down_proj", g.gD, ws.m, g.gM, false, ws, n, dropoutStep);
    // The gate/up activations are used only here: their gradients overwrite them in place (saves 2·N·I·4 bytes).
    gegluBackwardInPlace(rec, g.gM, ws.g, ws.u, { rows: n, cols: I });
    this.projBackward(rec, l, "gate_proj", ws.g, ws.b, g.gB, false, ws, n, dropoutStep);
    this.projBackward(rec, l, "up_proj", ws.u, ws.b, g.gB, true, ws, n, dropoutStep);
    // b = pre_ffw_norm(xMid): gX becomes d loss / d xMid
    rmsnormBackward(rec, g.gB, ws.xMid, W.norms.pre_feedforward_layernorm, ws.rstd[2], g.gX, {
      rows: n,
      dim: H,
      accumulate: true,
    });
    // xMid = xIn + post_attn_norm(p)
    rmsnormBackward(rec, g.gX, ws.p, W.norms.post_attention_layernorm, ws.rstd[1], g.gP, { rows: n, dim: H });
    this.projBackward(rec, l, "o_proj", g.gP, ws.o, g.gO, false, ws, n, dropoutStep);
    attentionBackward(
      rec,
      g.gO,
      ws.q,
      ws.k,
      ws.v,
      ws.o,
      ws.lse,
      this.keyMask,
      g.gQ,
      g.gK,
      g.gV,
      this.attnShape(l, s),
      g.attn,
    );
    ropeBackward(rec, g.gQ, this.weights.invFreq, {
      B: s.B,
      T: s.T,
      H: c.num_attention_heads,
      D: c.head_dim,
    });
    ropeBackward(rec, g.gK, this.weights.invFreq, {
      B: s.B,
      T: s.T,
      H: c.num_key_value_heads,
      D: c.head_dim,
    });
    this.projBackward(rec, l, "q_proj", g.gQ, ws.a, g.gA, false, ws, n, dropoutStep);
    this.projBackward(rec, l, "k_proj", g.gK, ws.a, g.gA, true, ws, n, dropoutStep);
    this.projBackward(rec, l, "v_proj", g.gV, ws.a, g.gA, true, ws, n, dropoutStep);
    // a = input_norm(xIn): gX becomes d loss / d xIn
    rmsnormBackward(rec, g.gA, this.xs[l], W.norms.input_layernorm, ws.rstd[0], g.gX, {
      rows: n,
      dim: H,
      accumulate: true,
    });
  }

  private workspace(l: number): Workspace {
    return this.workspaces[this.workspaces.length === 1 ? 0 : l];
  }

  // ---- whole passes ----

  /**
   * Forward of the batch set by setBatch: embeddings, every layer, final norm, and the loss (added into
   * `loss` = [Σ token loss, counted] when accumulateLoss). `dropoutStep` null = eval (no dropout).
   */
  recordForward(
    rec: Recorder,
    s: BatchShape,
    o: { dropoutStep?: number | null; accumulateLoss?: boolean; capture?: ForwardCapture } = {},
  ): void {
    const c = this.weights.config;
    const n = s.B * s.T;
    const H = c.hidden_size;
    recordEmbedding(rec, this.weights, this.ids, this.xs[0], n);
    const step = o.dropoutStep ?? null;
    const alpha = this.opts.neftuneAlpha ?? 0;
    if (alpha > 0 && step !== null) {
      neftune(rec, this.xs[0], { n: n * H, step, mag: neftuneMagnitude(alpha, s.T, H) });
    }
    for (let l = 0; l < c.num_hidden_layers; l++) this.layerForward(rec, l, this.workspace(l), s, step);
    recordHead(
      rec,
      this.weights,
      {
        x: this.xs[c.num_hidden_layers],
        hf: this.hf,
        rstd: this.rstdF,
        targets: this.targets,
        lse: this.lse,
        tokenLoss: this.tokenLoss,
        loss: this.loss,
        logits: o.capture?.logits,
        labelLogprob: o.capture?.labelLogprob,
      },
      this.ce,
      n,
      { accumulateLoss: o.accumulateLoss },
    );
  }

  /**
   * Backward after recordForward of the same batch (same dropoutStep): LoRA gradients are added into the
   * gradient arena scaled by gradScale; afterwards grads.gX holds d loss / d x0 (the scaled embeddings).
   */
  recordBackward(rec: Recorder, s: BatchShape, gradScale: number, dropoutStep: number | null): void {
    if (!this.grads) throw new Error("engine was created without training buffers");
    const c = this.weights.config;
    const n = s.B * s.T;
    const H = c.hidden_size;
    const g = this.grads;
    lmHeadCeBackward(
      rec,
      { h: this.hf, table: this.weights.embed, targets: this.targets, lse: this.lse, dh: g.gA },
      this.ce,
      lmHeadShape(this.weights, n),
      {
        gradScale,
      },
    );
    rmsnormBackward(rec, g.gA, this.xs[c.num_hidden_layers], this.weights.finalNorm, this.rstdF, g.gX, {
      rows: n,
      dim: H,
    });
    for (let l = c.num_hidden_layers - 1; l >= 0; l--) {
      const ws = this.workspace(l);
      if (this.workspaces.length === 1 && l !== c.num_hidden_layers - 1) {
        // Checkpointing: recompute this layer's intermediates from its saved input. (The last layer's are
        // still in the workspace from the forward.) xOut is rewritten with the same values.
        this.layerForward(rec, l, ws, s, dropoutStep);
      }
      this.layerBackward(rec, l, ws, s, dropoutStep);
    }
  }

  /** d loss / d x0 after recordBackward ([N, H] f32). */
  get gradX0(): GPUBuffer {
    if (!this.grads) throw new Error("no training buffers");
    return this.grads.gX;
  }

  // ---- training-step helpers ----

  recordZeroGrad(rec: Recorder): void {
    if (this.lora?.grad) rec.clear(this.lora.grad);
    rec.clear(this.loss);
  }
}
