/**
 * Plain float64 CPU Gemma-2 with LoRA (and NF4, by handing it dequantized weights), used only by tests.
 * Composed from the per-op references in src/model/ref/ and checked against transformers' own float64
 * outputs (tests/fixtures/golden/forward_f64.safetensors, lora_grads_f64.safetensors).
 *
 * Follows transformers 4.45.2 `modeling_gemma2.py` (eager attention, use_cache=False):
 * h = embed(ids)·√hidden; per layer `h += post_attn_norm(o_proj(attn(rope(q), rope(k), v)))` on
 * `input_norm(h)`, then `h += post_ffw_norm(down(gelu_tanh(gate(x))·up(x)))` on `pre_ffw_norm(h)`; sliding
 * window on even layers; final norm; tied lm_head; final softcap; shifted mean cross-entropy. LoRA per PEFT
 * `lora/layer.py` Linear.forward: `W x + scaling·B(A(dropout(x)))` on any of the seven projections.
 * Activations are token-major `[B*T, features]`; q/k/v are `[B, T, heads, head_dim]`.
 */
import { join } from "node:path";
import { type Gemma2Config, Gemma2ConfigSchema, isSlidingLayer } from "../config/gemma2.ts";
import { readSafetensorsFile } from "../safetensors/read_file.ts";
import { toFloat64 } from "../safetensors/decode.ts";
import type { Tensor } from "../safetensors/decode.ts";
import { dequantizeNf4, quantizeNf4 } from "../quant/nf4.ts";
import { rmsnormBwd, rmsnormFwd } from "./ref/rmsnorm.ts";
import { ropeApply, ropeTables } from "./ref/rope.ts";
import { attentionBwd, attentionFwd, type AttnShape } from "./ref/attention.ts";
import { gegluBwd, gegluFwd } from "./ref/geglu.ts";
import { embeddingFwd } from "./ref/embedding.ts";
import { crossEntropyFwd, lmHeadCeBwd, lmHeadLogits } from "./ref/cross_entropy.ts";
import { IGNORE_INDEX } from "../data/tokenize.ts";
import { loraLinearBwd, loraLinearFwd } from "./ref/linear.ts";
import { addInto, matmulDyW, matmulXWt } from "./ref/gemma2.ts";

import { modulePath, peftKey, type Projection, projectionDims, PROJECTIONS } from "../config/gemma2.ts";

export interface RefLoraWeights {
  /** [r, in] */
  A: Float64Array;
  /** [out, r] */
  B: Float64Array;
}

export interface RefLayer {
  inputNorm: Float64Array;
  postAttnNorm: Float64Array;
  preFfwNorm: Float64Array;
  postFfwNorm: Float64Array;
  /** Linear weights `[out, in]` (HF nn.Linear layout). */
  proj: Record<Projection, Float64Array>;
  /** LoRA adapters on some projections (PEFT target_modules). */
  lora: Partial<Record<Projection, RefLoraWeights>>;
}

export interface RefModel {
  config: Gemma2Config;
  /** [vocab, hidden], unscaled; also the tied lm_head. */
  embed: Float64Array;
  layers: RefLayer[];
  /** model.norm.weight */
  norm: Float64Array;
  /** LoRA rank and scaling (alpha/r, or alpha/√r with rslora); r = 0 when there is no adapter. */
  loraR: number;
  loraScaling: number;
}

export interface RefOptions {
  /** Use the LoRA adapters (default true); false gives the base model. */
  lora?: boolean;
  /** Un-scaled embedding rows `[B*T, hidden]` used instead of looking up inputIds (HF `inputs_embeds`). */
  inputsEmbeds?: ArrayLike<number>;
  /** Dropout multipliers `[B*T, in]` per LoRA module path (`model.layers.0.self_attn.q_proj`). */
  dropMasks?: Map<string, ArrayLike<number>>;
  /**
   * Emulate the float32 islands inside transformers' Gemma-2 even when the model is float64: RMSNorm
   * (`self._norm(x.float())`), the attention softmax (`softmax(dtype=torch.float32)`) and the RoPE cos/sin
   * (float32 angles and cos/sin, cast up). Needed to compare with the float64 goldens, which carry that
   * float32 rounding (about 1e-6 relative). Default false: float64 throughout (what GPU kernels are judged by).
   */
  hfF32?: boolean;
}

export interface RefForward {
  /** [B, T, V], after the final softcap (padded positions included). */
  logits: Float64Array;
  /** Mean shifted cross-entropy over all counted targets (NaN when none). */
  loss: number;
  /** Number of counted shifted targets. */
  count: number;
  /** HF output_hidden_states: [0] = scaled embeddings, [1..L-1] = layer outputs, [L] = final-norm output. */
  hidden: Float64Array[];
  /** Raw output of each decoder layer (before the final norm for the last). */
  layerOutputs: Float64Array[];
  /** [B, T-1]: log_softmax(logits[:, t])[labels[:, t+1]], 0 where ignored. */
  labelLogprobs: Float64Array;
}

export interface RefBackward {
  loss: number;
  count: number;
  /** d loss / d lora_A, lora_B under PEFT's adapter key names. */
  loraGrads: Map<string, Float64Array>;
  /** d loss / d inputs_embeds (the un-scaled embedding rows), [B*T, hidden]. */
  gradInputsEmbeds: Float64Array;
}

function f64(t: Tensor | undefined, name: string, where: string): Float64Array {
  if (!t) throw new Error(`${where}: missing tensor ${name}`);
  return toFloat64(t);
}

async function readModelTensors(dir: string): Promise<Map<string, Tensor>> {
  const single = join(dir, "model.safetensors");
  try {
    await Deno.stat(single);
    return (await readSafetensorsFile(single)).tensors;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const index = JSON.parse(await Deno.readTextFile(join(dir, "model.safetensors.index.json"))) as {
    weight_map: Record<string, string>;
  };
  const out = new Map<string, Tensor>();
  for (const file of new Set(Object.values(index.weight_map))) {
    for (const [k, t] of (await readSafetensorsFile(join(dir, file))).tensors) out.set(k, t);
  }
  return out;
}

/**
 * Loads an HF Gemma-2 checkpoint folder (config.json + model.safetensors or a sharded index) as float64,
 * and optionally a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors).
 */
export async function loadRefModel(dir: string, adapterDir?: string): Promise<RefModel> {
  const config = Gemma2ConfigSchema.parse(JSON.parse(await Deno.readTextFile(join(dir, "config.json"))));
  const t = await readModelTensors(dir);
  const g = (name: string) => f64(t.get(name), name, dir);
  const layers: RefLayer[] = [];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    const proj = {} as Record<Projection, Float64Array>;
    for (const pr of PROJECTIONS) proj[pr] = g(`${modulePath(i, pr)}.weight`);
    layers.push({
      inputNorm: g(p + "input_layernorm.weight"),
      postAttnNorm: g(p + "post_attention_layernorm.weight"),
      preFfwNorm: g(p + "pre_feedforward_layernorm.weight"),
      postFfwNorm: g(p + "post_feedforward_layernorm.weight"),
      proj,
      lora: {},
    });
  }
  const model: RefModel = {
    config,
    embed: g("model.embed_tokens.weight"),
    layers,
    norm: g("model.norm.weight"),
    loraR: 0,
    loraScaling: 0,
  };
  if (adapterDir) await attachAdapter(model, adapterDir);
  return model;
}

/** Reads a PEFT adapter folder into `model` (every lora_A/lora_B pair present in the file). */
export async function attachAdapter(model: RefModel, adapterDir: string): Promise<void> {
  const cfg = JSON.parse(await Deno.readTextFile(join(adapterDir, "adapter_config.json"))) as {
    r: number;
    lora_alpha: number;
    use_rslora?: boolean;
  };
  const file = join(adapterDir, "adapter_model.safetensors");
  const { tensors } = await readSafetensorsFile(file);
  model.loraR = cfg.r;
  model.loraScaling = cfg.use_rslora ? cfg.lora_alpha / Math.sqrt(cfg.r) : cfg.lora_alpha / cfg.r;
  let found = 0;
  model.layers.forEach((layer, i) => {
    for (const pr of PROJECTIONS) {
      const a = tensors.get(peftKey(i, pr, "A"));
      const b = tensors.get(peftKey(i, pr, "B"));
      if (!a && !b) continue;
      layer.lora[pr] = { A: f64(a, peftKey(i, pr, "A"), file), B: f64(b, peftKey(i, pr, "B"), file) };
      found += 2;
    }
  });
  if (found !== tensors.size) {
    throw new Error(`${file}: ${tensors.size - found} tensors with unexpected names`);
  }
}

/**
 * A copy of `model` whose seven projections per layer went through NF4 + double quant and back
 * (bitsandbytes 0.50.1 via src/quant/nf4.ts; the weights are first rounded to float32, as a stored
 * checkpoint is). Embedding, norms and LoRA stay as they are (QLoRA quantizes only the Linear layers).
 */
export function nf4RefModel(model: RefModel): RefModel {
  return {
    ...model,
    layers: model.layers.map((l) => {
      const proj = {} as Record<Projection, Float64Array>;
      for (const pr of PROJECTIONS) {
        const w = Float32Array.from(l.proj[pr]);
        proj[pr] = Float64Array.from(dequantizeNf4(quantizeNf4(w, [w.length])));
      }
      return { ...l, proj };
    }),
  };
}

interface Dims {
  B: number;
  T: number;
  N: number;
  H: number;
  I: number;
  V: number;
  Hq: number;
  Hkv: number;
  D: number;
}

function dims(c: Gemma2Config, B: number, T: number): Dims {
  return {
    B,
    T,
    N: B * T,
    H: c.hidden_size,
    I: c.intermediate_size,
    V: c.vocab_size,
    Hq: c.num_attention_heads,
    Hkv: c.num_key_value_heads,
    D: c.head_dim,
  };
}

/** Everything one layer's backward needs (the forward's inputs and intermediates). */
interface LayerCache {
  x: Float64Array;
  n1: Float64Array;
  rstd1: Float64Array;
  qr: Float64Array;
  kr: Float64Array;
  v: Float64Array;
  attn: Float64Array;
  ao: Float64Array;
  rstd2: Float64Array;
  x1: Float64Array;
  n2: Float64Array;
  rstd3: Float64Array;
  gate: Float64Array;
  up: Float64Array;
  m: Float64Array;
  dn: Float64Array;
  rstd4: Float64Array;
}

interface Ctx {
  model: RefModel;
  d: Dims;
  useLora: boolean;
  opts: RefOptions;
  cos: Float64Array;
  sin: Float64Array;
  keyMask: ArrayLike<number>;
  /** opts.hfF32 */
  f32: boolean;
}

function linFwd(ctx: Ctx, layer: number, pr: Projection, x: Float64Array): Float64Array {
  const L = ctx.model.layers[layer];
  const { inF, outF } = projectionDims(ctx.model.config, pr);
  const lo = ctx.useLora ? L.lora[pr] : undefined;
  if (!lo) return matmulXWt(x, L.proj[pr], ctx.d.N, inF, outF);
  const mask = ctx.opts.dropMasks?.get(modulePath(layer, pr));
  return loraLinearFwd(
    x,
    L.proj[pr],
    lo.A,
    lo.B,
    ctx.d.N,
    inF,
    outF,
    ctx.model.loraR,
    ctx.model.loraScaling,
    mask,
  )
    .y;
}

/** Backward of one projection; LoRA grads go into `grads` under PEFT keys. Returns dx. */
function linBwd(
  ctx: Ctx,
  layer: number,
  pr: Projection,
  dy: Float64Array,
  x: Float64Array,
  grads: Map<string, Float64Array>,
): Float64Array {
  const L = ctx.model.layers[layer];
  const { inF, outF } = projectionDims(ctx.model.config, pr);
  const lo = ctx.useLora ? L.lora[pr] : undefined;
  if (!lo) return matmulDyW(dy, L.proj[pr], ctx.d.N, inF, outF);
  const mask = ctx.opts.dropMasks?.get(modulePath(layer, pr));
  const g = loraLinearBwd(
    dy,
    x,
    L.proj[pr],
    lo.A,
    lo.B,
    ctx.d.N,
    inF,
    outF,
    ctx.model.loraR,
    ctx.model.loraScaling,
    mask,
  );
  grads.set(peftKey(layer, pr, "A"), g.dA);
  grads.set(peftKey(layer, pr, "B"), g.dB);
  return g.dx;
}

function attnShape(ctx: Ctx, layer: number): AttnShape {
  const c = ctx.model.config;
  const { B, T, Hq, Hkv, D } = ctx.d;
  return {
    B,
    T,
    Hq,
    Hkv,
    D,
    scale: c.query_pre_attn_scalar ** -0.5,
    softcap: c.attn_logit_softcapping,
    window: isSlidingLayer(layer) ? c.sliding_window : null,
    keyMask: ctx.keyMask,
    f32Softmax: ctx.f32,
  };
}

function layerFwd(ctx: Ctx, li: number, x: Float64Array): { out: Float64Array; cache: LayerCache } {
  const L = ctx.model.layers[li];
  const { N, H, I, T, B, Hq, Hkv, D } = ctx.d;
  const eps = ctx.model.config.rms_norm_eps;
  const { y: n1, rstd: rstd1 } = rmsnormFwd(x, L.inputNorm, N, H, eps, ctx.f32);
  const q = linFwd(ctx, li, "q_proj", n1);
  const k = linFwd(ctx, li, "k_proj", n1);
  const v = linFwd(ctx, li, "v_proj", n1);
  const qr = ropeApply(q, B, T, Hq, D, ctx.cos, ctx.sin, 1);
  const kr = ropeApply(k, B, T, Hkv, D, ctx.cos, ctx.sin, 1);
  const attn = attentionFwd(qr, kr, v, attnShape(ctx, li)).out;
  const ao = linFwd(ctx, li, "o_proj", attn);
  const { y: a2, rstd: rstd2 } = rmsnormFwd(ao, L.postAttnNorm, N, H, eps, ctx.f32);
  const x1 = addInto(Float64Array.from(x), a2);
  const { y: n2, rstd: rstd3 } = rmsnormFwd(x1, L.preFfwNorm, N, H, eps, ctx.f32);
  const gate = linFwd(ctx, li, "gate_proj", n2);
  const up = linFwd(ctx, li, "up_proj", n2);
  const m = gegluFwd(gate, up, N * I);
  const dn = linFwd(ctx, li, "down_proj", m);
  const { y: f, rstd: rstd4 } = rmsnormFwd(dn, L.postFfwNorm, N, H, eps, ctx.f32);
  const out = addInto(Float64Array.from(x1), f);
  return { out, cache: { x, n1, rstd1, qr, kr, v, attn, ao, rstd2, x1, n2, rstd3, gate, up, m, dn, rstd4 } };
}

/** dL/dx of one layer given dL/d(out); LoRA grads into `grads`. */
function layerBwd(ctx: Ctx, li: number, c: LayerCache, dout: Float64Array, grads: Map<string, Float64Array>) {
  const L = ctx.model.layers[li];
  const { N, H, I, T, B, Hq, Hkv, D } = ctx.d;
  // out = x1 + post_ffw_norm(down(geglu(gate(n2), up(n2)))), n2 = pre_ffw_norm(x1)
  const ddn = rmsnormBwd(dout, c.dn, L.postFfwNorm, c.rstd4, N, H).dx;
  const dm = linBwd(ctx, li, "down_proj", ddn, c.m, grads);
  const { dgate, dup } = gegluBwd(dm, c.gate, c.up, N * I);
  const dn2 = linBwd(ctx, li, "gate_proj", dgate, c.n2, grads);
  addInto(dn2, linBwd(ctx, li, "up_proj", dup, c.n2, grads));
  const dx1 = addInto(Float64Array.from(dout), rmsnormBwd(dn2, c.x1, L.preFfwNorm, c.rstd3, N, H).dx);
  // x1 = x + post_attn_norm(o(attn(rope(q(n1)), rope(k(n1)), v(n1)))), n1 = input_norm(x)
  const dao = rmsnormBwd(dx1, c.ao, L.postAttnNorm, c.rstd2, N, H).dx;
  const dattn = linBwd(ctx, li, "o_proj", dao, c.attn, grads);
  const g = attentionBwd(dattn, c.qr, c.kr, c.v, attnShape(ctx, li));
  const dq = ropeApply(g.dq, B, T, Hq, D, ctx.cos, ctx.sin, -1);
  const dk = ropeApply(g.dk, B, T, Hkv, D, ctx.cos, ctx.sin, -1);
  const dn1 = linBwd(ctx, li, "q_proj", dq, c.n1, grads);
  addInto(dn1, linBwd(ctx, li, "k_proj", dk, c.n1, grads));
  addInto(dn1, linBwd(ctx, li, "v_proj", g.dv, c.n1, grads));
  return addInto(dx1, rmsnormBwd(dn1, c.x, L.inputNorm, c.rstd1, N, H).dx);
}

/** The shifted targets: row (b, t) is scored against labels[b, t+1]; the last position of each row ignored. */
export function shiftedTargets(labels: ArrayLike<number>, B: number, T: number): Int32Array {
  const out = new Int32Array(B * T).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) out[b * T + t] = Number(labels[b * T + t + 1]);
  return out;
}

function makeCtx(
  model: RefModel,
  attentionMask: ArrayLike<number> | null,
  B: number,
  T: number,
  opts: RefOptions,
): Ctx {
  const c = model.config;
  const d = dims(c, B, T);
  const { cos, sin } = ropeTables(T, d.D, c.rope_theta, undefined, opts.hfF32 ?? false);
  const keyMask = attentionMask
    ? Float64Array.from({ length: B * T }, (_, i) => Number(attentionMask[i]))
    : new Float64Array(B * T).fill(1);
  return { model, d, useLora: opts.lora ?? true, opts, cos, sin, keyMask, f32: opts.hfF32 ?? false };
}

function embed(ctx: Ctx, inputIds: ArrayLike<number> | null): Float64Array {
  const { N, H } = ctx.d;
  // HF: `normalizer = torch.tensor(hidden_size**0.5, dtype=h.dtype)`; exact in float64 for these sizes.
  const scale = Math.sqrt(H);
  if (ctx.opts.inputsEmbeds) {
    const e = ctx.opts.inputsEmbeds;
    if (e.length !== N * H) throw new Error(`inputsEmbeds has ${e.length} values, want ${N * H}`);
    return Float64Array.from({ length: N * H }, (_, i) => e[i] * scale);
  }
  if (!inputIds) throw new Error("referenceForward: inputIds or opts.inputsEmbeds is required");
  return embeddingFwd(Array.from({ length: N }, (_, i) => Number(inputIds[i])), ctx.model.embed, H, scale);
}

function runLayers(ctx: Ctx, h0: Float64Array, caches?: LayerCache[]): Float64Array[] {
  const outs: Float64Array[] = [];
  let h = h0;
  for (let li = 0; li < ctx.model.layers.length; li++) {
    const r = layerFwd(ctx, li, h);
    caches?.push(r.cache);
    outs.push(r.out);
    h = r.out;
  }
  return outs;
}

/**
 * Float64 forward of the whole model. `inputIds`, `attentionMask` (1 real, 0 padding; null = all real) and
 * `labels` (-100 ignored; aligned with inputIds, shifted inside as HF does; null = no loss) are `[B, T]`.
 */
export function referenceForward(
  model: RefModel,
  inputIds: ArrayLike<number> | null,
  attentionMask: ArrayLike<number> | null,
  labels: ArrayLike<number> | null,
  B: number,
  T: number,
  opts: RefOptions = {},
): RefForward {
  const ctx = makeCtx(model, attentionMask, B, T, opts);
  const { N, H, V } = ctx.d;
  const c = model.config;
  const h0 = embed(ctx, inputIds);
  const layerOutputs = runLayers(ctx, h0);
  const hf = rmsnormFwd(layerOutputs[layerOutputs.length - 1], model.norm, N, H, c.rms_norm_eps, ctx.f32).y;
  const hidden = [h0, ...layerOutputs.slice(0, -1), hf];
  const logits = lmHeadLogits(hf, model.embed, N, H, V, c.final_logit_softcapping);
  const labelLogprobs = new Float64Array(B * (T - 1));
  let loss = NaN;
  let count = 0;
  if (labels) {
    const targets = shiftedTargets(labels, B, T);
    const ce = crossEntropyFwd(logits, targets, N, V);
    loss = ce.loss;
    count = ce.count;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t + 1 < T; t++) {
        const n = b * T + t;
        if (targets[n] !== IGNORE_INDEX) labelLogprobs[b * (T - 1) + t] = -ce.tokenLoss[n];
      }
    }
  }
  return { logits, loss, count, hidden, layerOutputs, labelLogprobs };
}

/**
 * Hand-written float64 backward of the mean shifted cross-entropy (base weights frozen): gradients of every
 * LoRA tensor (PEFT key names) and of the un-scaled inputs_embeds.
 */
export function referenceBackward(
  model: RefModel,
  inputIds: ArrayLike<number> | null,
  attentionMask: ArrayLike<number> | null,
  labels: ArrayLike<number>,
  B: number,
  T: number,
  opts: RefOptions = {},
): RefBackward {
  const ctx = makeCtx(model, attentionMask, B, T, opts);
  const { N, H, V } = ctx.d;
  const c = model.config;
  const h0 = embed(ctx, inputIds);
  const caches: LayerCache[] = [];
  const outs = runLayers(ctx, h0, caches);
  const last = outs[outs.length - 1];
  const { y: hf, rstd } = rmsnormFwd(last, model.norm, N, H, c.rms_norm_eps, ctx.f32);
  const targets = shiftedTargets(labels, B, T);
  const ce = crossEntropyFwd(
    lmHeadLogits(hf, model.embed, N, H, V, c.final_logit_softcapping),
    targets,
    N,
    V,
  );
  const dhf = lmHeadCeBwd(hf, model.embed, targets, N, H, V, c.final_logit_softcapping, 1 / ce.count).dh;
  let dh = rmsnormBwd(dhf, last, model.norm, rstd, N, H).dx;
  const loraGrads = new Map<string, Float64Array>();
  for (let li = model.layers.length - 1; li >= 0; li--) dh = layerBwd(ctx, li, caches[li], dh, loraGrads);
  const scale = Math.sqrt(H);
  for (let i = 0; i < dh.length; i++) dh[i] *= scale;
  return { loss: ce.loss, count: ce.count, loraGrads, gradInputsEmbeds: dh };
}

/**
 * A random model for tests (deterministic given `rand`, a [0,1) generator): weights uniform in ±scale/√in,
 * norm weights in ±0.5, embedding in ±1, LoRA A in ±1/√in and B in ±0.1 (non-zero, so B's gradient path and
 * A's are both exercised) on the given target projections.
 */
export function randomRefModel(
  config: Gemma2Config,
  rand: () => number,
  lora: { r: number; alpha: number; targets: readonly Projection[] } = { r: 0, alpha: 0, targets: [] },
): RefModel {
  const u = (n: number, s: number) => Float64Array.from({ length: n }, () => (rand() * 2 - 1) * s);
  const layers: RefLayer[] = [];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const proj = {} as Record<Projection, Float64Array>;
    const lo: Partial<Record<Projection, RefLoraWeights>> = {};
    for (const pr of PROJECTIONS) {
      const { inF, outF } = projectionDims(config, pr);
      proj[pr] = u(outF * inF, 1 / Math.sqrt(inF));
      if (lora.targets.includes(pr)) {
        lo[pr] = { A: u(lora.r * inF, 1 / Math.sqrt(inF)), B: u(outF * lora.r, 0.1) };
      }
    }
    const h = config.hidden_size;
    layers.push({
      inputNorm: u(h, 0.5),
      postAttnNorm: u(h, 0.5),
      preFfwNorm: u(h, 0.5),
      postFfwNorm: u(h, 0.5),
      proj,
      lora: lo,
    });
  }
  return {
    config,
    embed: u(config.vocab_size * config.hidden_size, 1),
    layers,
    norm: u(config.hidden_size, 0.5),
    loraR: lora.r,
    loraScaling: lora.r ? lora.alpha / lora.r : 0,
  };
}
