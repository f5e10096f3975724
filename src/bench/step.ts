/**
 * One training step of the real engine for `maieutic bench`: Gemma2Engine + GpuTrainEngine exactly as
 * `maieutic train` drives them (zero-grad, one micro-batch forward + backward with checkpointing and LoRA
 * dropout, clip + AdamW, the single readback of loss and gradient norm), timed by wall clock, with
 * - the number of readbacks (GPUBuffer.mapAsync calls) and command buffers submitted in that step, counted by
 *   wrapping the two WebGPU entry points for the duration of the step;
 * - a breakdown by kernel family: the same step recorded into a FilterRecorder that drops every dispatch of
 *   the other families, so each family is timed alone (its values are garbage, its work is the real work);
 * - the executed FLOP from the ops' flops helpers (checkpointing recompute included), so the step's sustained
 *   GFLOP/s can be set against the best matmul of the same run.
 * The real-width preset (gemma-2-2b-random) may be cut to fewer layers and a vocab slice so a step fits a
 * software adapter; `fullModelEstimate` extrapolates to all 26 layers and the 256000 vocab at the same rate.
 */
import { idle } from "../gpu/readback.ts";
import type { BufferPool } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { checkKernels, type Kernel } from "../gpu/kernel.ts";
import type { ParamSchema, ParamsOf } from "../gpu/params.ts";
import { type Binding, Recorder } from "../gpu/recorder.ts";
import { initLoraParams } from "../lora/params.ts";
import { type Gemma2Config, isSlidingLayer, projectionDims, PROJECTIONS } from "../config/gemma2.ts";
import { Gemma2Engine } from "../model/engine.ts";
import { attentionFlops } from "../model/ops/attention.ts";
import { buildWeights, type ModelWeights, randomWeights } from "../model/weights.ts";
import { linearPassFlops } from "../model/ops/linear.ts";
import { matmulFlops } from "../gpu/ops/matmul.ts";
import type { HostTensor } from "../quant/store.ts";
import { recordSnapshot } from "../train/optimizer.ts";
import { recordAdamW, recordClip } from "../gpu/ops/adamw.ts";
import { GpuTrainEngine } from "../train/step_engine.ts";
import type { TrainBatch } from "../train/loop.ts";
import type { GpuTimer } from "./timing.ts";
import { mulberry32 } from "../util/random.ts";

// ---- kernel families ----

/** The family of a kernel, from its file name (the cache key starts with `<file>#`). */
export function kernelFamily(kernelName: string): string {
  const file = kernelName.split("#")[0];
  // nf4_matmul(_dx)(_regblock).wgsl and nf4_matvec.wgsl; matmul.wgsl, matmul_regblock.wgsl and matvec.wgsl.
  if (file.startsWith("nf4_matmul") || file === "nf4_matvec.wgsl") return "nf4_matmul";
  if (file.startsWith("lora_")) return "lora";
  if (file.startsWith("matmul") || file === "matvec.wgsl") return "dense_matmul";
  if (file.startsWith("cross_entropy")) return "cross_entropy";
  if (file.startsWith("attention")) return "attention";
  if (file.startsWith("rmsnorm")) return "rmsnorm";
  if (file === "rope.wgsl") return "rope";
  if (file.startsWith("geglu")) return "geglu";
  if (file === "embedding.wgsl") return "embedding";
  if (file === "grad_norm.wgsl" || file === "adamw.wgsl") return "optimizer";
  return "other";
}

/** Buffer copies and clears recorded on the encoder. */
export const COPIES = "copies";

/**
 * A Recorder that keeps only the dispatches of one family (or only copies/clears for COPIES) and counts
 * what every family recorded. `keep = null` keeps everything (a census).
 */
export class FilterRecorder extends Recorder {
  readonly census: Record<string, number> = {};

  constructor(
    gpu: Gpu,
    readonly keep: string | null,
    label = "bench-filter",
    o: { profile?: boolean; maxProfiled?: number } = {},
  ) {
    super(gpu, { label, ...o });
  }

  private count(f: string): boolean {
    this.census[f] = (this.census[f] ?? 0) + 1;
    return this.keep === null || this.keep === f;
  }

  override dispatch<S extends ParamSchema>(
    kernel: Kernel<S>,
    bindings: readonly (Binding | null)[],
    params: ParamsOf<S> | null,
    groups: number | readonly [number, number?, number?],
  ): void {
    if (this.count(kernelFamily(kernel.name))) super.dispatch(kernel, bindings, params, groups);
  }

  override copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    if (this.count(COPIES)) super.copy(src, srcOffset, dst, dstOffset, size);
  }

  override clear(buffer: GPUBuffer, offset = 0, size?: number): void {
    if (this.count(COPIES)) super.clear(buffer, offset, size);
  }
}

// ---- FLOP model ----

export interface StepFlopOptions {
  config: Gemma2Config;
  batch: number;
  seq: number;
  r: number;
  targets: readonly string[];
  checkpointing: boolean;
  quantized: boolean;
}

export interface StepFlops {
  /** Forward + backward as the math needs it (no recompute). */
  model: number;
  /** What the GPU runs: model + the checkpointing recompute of layers 0..L-2. */
  executed: number;
  /** Executed FLOP per kernel family (the families of kernelFamily). */
  byFamily: Record<string, number>;
}

/** The matmul-class FLOP of one training step (elementwise kernels are not counted). */
export function stepFlops(o: StepFlopOptions): StepFlops {
  const c = o.config;
  const n = o.batch * o.seq;
  const H = c.hidden_size;
  const base = o.quantized ? "nf4_matmul" : "dense_matmul";
  const fam: Record<string, number> = {};
  const add = (f: string, x: number) => (fam[f] = (fam[f] ?? 0) + x);
  const attn = (l: number) => ({
    B: o.batch,
    T: o.seq,
    Hq: c.num_attention_heads,
    Hkv: c.num_key_value_heads,
    D: c.head_dim,
    scale: 1,
    softcap: null,
    window: isSlidingLayer(l) ? c.sliding_window : null,
  });
  // One layer's pass, summed from the ops' own FLOP helpers (linearPassFlops, attentionFlops).
  const pass = (l: number, dir: "fwd" | "bwd", into: (f: string, x: number) => void) => {
    for (const p of PROJECTIONS) {
      const { inF, outF } = projectionDims(c, p);
      const r = o.targets.includes(p) ? o.r : 0;
      const f = linearPassFlops({ tokens: n, inF, outF }, r, dir, o.quantized);
      into(base, f.base);
      if (f.lora) into("lora", f.lora);
    }
    into("attention", attentionFlops(attn(l), dir));
  };
  const forward = (l: number, into: (f: string, x: number) => void) => pass(l, "fwd", into);
  const backward = (l: number) => pass(l, "bwd", add);
  const L = c.num_hidden_layers;
  for (let l = 0; l < L; l++) {
    forward(l, add);
    backward(l);
  }
  add("dense_matmul", 3 * matmulFlops({ M: n, N: c.vocab_size, K: H })); // head: logits, then logits again + dh
  const model = Object.values(fam).reduce((a, b) => a + b, 0);
  let recompute = 0;
  if (o.checkpointing) {
    for (let l = 0; l < L - 1; l++) {
      forward(l, (f, x) => {
        add(f, x);
        recompute += x;
      });
    }
  }
  return { model, executed: model + recompute, byFamily: fam };
}

// ---- the engine ----

export interface BenchModel {
  /** The (possibly cut) config the engine runs. */
  config: Gemma2Config;
  /** The source model's full config. */
  fullConfig: Gemma2Config;
  weights: ModelWeights;
  source: string;
  randomWeights: boolean;
  quantized: boolean;
  dtype: "f16" | "f32";
  loadMs: number;
}

/** Keeps layers < `layers` and the first `vocab` rows of the tied embedding. */
async function* cut(
  tensors: AsyncIterable<[string, HostTensor]>,
  layers: number,
  vocab: number,
  hidden: number,
): AsyncGenerator<[string, HostTensor]> {
  for await (const [name, t] of tensors) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m && +m[1] >= layers) continue;
    if (name === "model.embed_tokens.weight" && t.kind === "dense" && t.shape[0] > vocab) {
      yield [name, { kind: "dense", shape: [vocab, hidden], data: t.data.slice(0, vocab * hidden) }];
      continue;
    }
    yield [name, t];
  }
}

/** Loads (or generates) the weights, cut to `layers` layers and a `vocab` slice. */
export async function loadBenchModel(
  gpu: Gpu,
  pool: BufferPool,
  src: {
    config: Gemma2Config;
    source: string;
    randomWeights: boolean;
    tensors(): AsyncIterable<[string, HostTensor]>;
  },
  o: { layers: number; vocab: number; dtype: "f16" | "f32"; quantized: boolean },
): Promise<BenchModel> {
  const full = src.config;
  const config: Gemma2Config = {
    ...full,
    num_hidden_layers: Math.min(o.layers, full.num_hidden_layers),
    vocab_size: Math.min(o.vocab, full.vocab_size),
  };
  const t0 = performance.now();
  const weights = src.randomWeights
    ? randomWeights(gpu, pool, config, o.dtype, o.quantized)
    : await buildWeights(
      gpu,
      pool,
      config,
      o.dtype,
      cut(src.tensors(), config.num_hidden_layers, config.vocab_size, config.hidden_size),
    );
  await idle(gpu);
  await checkKernels(gpu);
  return {
    config,
    fullConfig: full,
    weights,
    source: src.source,
    randomWeights: src.randomWeights,
    quantized: weights.quantized,
    dtype: o.dtype,
    loadMs: performance.now() - t0,
  };
}

export interface StepBenchOptions {
  batch: number;
  seq: number;
  steps: number;
  lora: { r: number; lora_alpha: number; target_modules: readonly string[]; lora_dropout: number };
  checkpointing: boolean;
  seed: number;
  hyper: { lr: number; weightDecay: number; beta1: number; beta2: number; eps: number; maxGradNorm: number };
  /** Runs after each timed step, outside its time (the suite re-times its reference matmul there). */
  afterEachStep?: () => Promise<void>;
}

/** What benchBreakdown needs from benchStep. */
export interface FamilyContext {
  recordStep: (rec: Recorder) => void;
  census: Record<string, number>;
  byFamily: Record<string, number>;
}

export interface FamilyTime {
  family: string;
  ms: number;
  dispatches: number;
  /** Share of the sum of all families. */
  share: number;
  flop: number;
  gflops: number | null;
}

/** One kernel's share of a training step, from GPU timestamps around each of its dispatches. */
export interface KernelTime {
  /** The WGSL file (src/gpu/kernel.ts names a pipeline file#entry{constants}<libraries>). */
  kernel: string;
  family: string;
  dispatches: number;
  ms: number;
  /** Share of the step's summed dispatch time. */
  share: number;
}

export interface StepResult {
  model: {
    source: string;
    layers: number;
    of_layers: number;
    vocab: number;
    of_vocab: number;
    hidden: number;
    quantized: boolean;
    dtype: "f16" | "f32";
    random_weights: boolean;
    load_ms: number;
  };
  batch: number;
  seq: number;
  tokens: number;
  steps: number;
  /** Wall milliseconds of each timed optimizer step (recording, submits, GPU work and the readback). */
  step_ms: number[];
  /** Median step. */
  ms: number;
  tokens_per_s: number;
  flop_model: number;
  flop_executed: number;
  /** Executed FLOP / step time. */
  gflops: number;
  readbacks_per_step: number;
  submits_per_step: number;
  dispatches_per_step: number;
  breakdown: FamilyTime[] | null;
  /**
   * The kernel table's fastest matmul case timed again right after each step (set by the suite): the
   * step-efficiency target pairs each step with the figure of the same moment.
   */
  paired_reference?: { kernel: string; table_gflops: number; gflops_after_each_step: number[] };
  /** Per kernel from one step recorded with a timestamp around every dispatch (null without trusted timestamps). */
  by_kernel: KernelTime[] | null;
  /** Why by_kernel is null. */
  by_kernel_note?: string;
  /** The step's dispatches in one command buffer (GPU work only), timed just before the families. */
  gpu_ms: number | null;
  /** gpu_ms − Σ families: what timing the families apart does not add up to (≈ 0 when they are additive). */
  unattributed_ms: number | null;
  full_model_estimate: {
    layers: number;
    vocab: number;
    flop_executed: number;
    /** At the step's sustained GFLOP/s. */
    seconds: number;
    tokens_per_s: number;
  };
}

/**
 * Counts GPUBuffer.mapAsync (readbacks), command buffers passed to GPUQueue.submit and
 * GPUDevice.createBuffer calls (allocations) while `fn` runs.
 */
export async function countGpuCalls<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; maps: number; submits: number; buffers: number }> {
  const bufferProto = GPUBuffer.prototype as unknown as { mapAsync: (...a: unknown[]) => Promise<void> };
  const queueProto = GPUQueue.prototype as unknown as { submit: (...a: unknown[]) => void };
  const deviceProto = GPUDevice.prototype as unknown as { createBuffer: (...a: unknown[]) => GPUBuffer };
  const map0 = bufferProto.mapAsync;
  const submit0 = queueProto.submit;
  const create0 = deviceProto.createBuffer;
  let maps = 0, submits = 0, buffers = 0;
  bufferProto.mapAsync = function (this: unknown, ...a: unknown[]) {
    maps++;
    return map0.apply(this, a);
  };
  queueProto.submit = function (this: unknown, ...a: unknown[]) {
    submits += (a[0] as unknown[]).length;
    return submit0.apply(this, a);
  };
  deviceProto.createBuffer = function (this: unknown, ...a: unknown[]) {
    buffers++;
    return create0.apply(this, a);
  };
  try {
    return { value: await fn(), maps, submits, buffers };
  } finally {
    bufferProto.mapAsync = map0;
    queueProto.submit = submit0;
    deviceProto.createBuffer = create0;
  }
}

function syntheticBatch(B: number, T: number, V: number, seed: number): TrainBatch {
  const ids = new Int32Array(B * T);
  const rand = mulberry32(seed);
  for (let i = 0; i < ids.length; i++) ids[i] = 3 + Math.floor(rand() * (V - 3));
  return {
    inputIds: ids,
    labels: ids.slice(),
    attentionMask: new Uint8Array(B * T).fill(1),
    rows: B,
    seqLen: T,
    targetTokens: B * (T - 1),
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Builds the training engine on `m` and times `steps` optimizer steps (one micro-batch each), then (by
 * benchBreakdown) each kernel family alone. Returns the engine too (the decode benchmark reuses its weights).
 */
export async function benchStep(
  gpu: Gpu,
  pool: BufferPool,
  m: BenchModel,
  o: StepBenchOptions,
): Promise<{ result: StepResult; engine: Gemma2Engine; families: FamilyContext }> {
  const c = m.config;
  const lora = initLoraParams(c, o.lora, o.seed);
  const engine = new Gemma2Engine(gpu, pool, m.weights, lora, {
    maxBatch: o.batch,
    maxSeq: o.seq,
    compute: m.dtype,
    checkpointing: o.checkpointing,
    loraDropout: o.lora.lora_dropout,
    training: true,
  });
  const train = new GpuTrainEngine(engine);
  const batch = syntheticBatch(o.batch, o.seq, c.vocab_size, o.seed);
  const s = { B: o.batch, T: o.seq };
  const gradScale = 1 / batch.targetTokens;

  // Everything one step records, into one recorder (the census and the family runs).
  const recordStep = (rec: Recorder) => {
    engine.recordZeroGrad(rec);
    engine.recordForward(rec, s, { dropoutStep: 1, accumulateLoss: true });
    engine.recordBackward(rec, s, gradScale, 1);
    recordSnapshot(rec, train.optimizer);
    recordClip(rec, train.optimizer, o.hyper.maxGradNorm);
    recordAdamW(rec, train.optimizer, o.hyper, 1);
  };
  // Compile every pipeline before the clock starts (getKernel builds them while recording); not submitted.
  const census = new FilterRecorder(gpu, null, "bench-census");
  engine.setBatch(batch.inputIds, batch.labels, batch.attentionMask, s);
  recordStep(census);
  await checkKernels(gpu);
  const dispatches = Object.entries(census.census).filter(([f]) => f !== COPIES).reduce(
    (a, [, n]) => a + n,
    0,
  );

  const stepMs: number[] = [];
  let maps = 0, submits = 0;
  for (let i = 0; i < Math.max(1, o.steps); i++) {
    const r = await countGpuCalls(async () => {
      const t0 = performance.now();
      train.beginStep();
      train.microBatch(batch, gradScale, 1 + i);
      train.optimizerStep({ ...o.hyper }, i + 1);
      const v = await train.readStep();
      const ms = performance.now() - t0;
      if (!Number.isFinite(v.lossSum) || !Number.isFinite(v.gradNorm)) {
        throw new Error(`bench step ${i + 1}: loss ${v.lossSum}, grad norm ${v.gradNorm} (not finite)`);
      }
      return ms;
    });
    stepMs.push(r.value);
    maps = Math.max(maps, r.maps);
    submits = Math.max(submits, r.submits);
    await o.afterEachStep?.();
  }
  await checkKernels(gpu);
  const ms = median(stepMs);
  const tokens = o.batch * o.seq;
  const targets = lora.layout.targets;
  const fl = stepFlops({
    config: c,
    batch: o.batch,
    seq: o.seq,
    r: o.lora.r,
    targets,
    checkpointing: o.checkpointing,
    quantized: m.quantized,
  });
  const gflops = fl.executed / (ms * 1e6);

  const fullFl = stepFlops({
    config: m.fullConfig,
    batch: o.batch,
    seq: o.seq,
    r: o.lora.r,
    targets,
    checkpointing: o.checkpointing,
    quantized: m.quantized,
  });
  const fullS = fullFl.executed / (gflops * 1e9);
  return {
    engine,
    families: { recordStep, census: census.census, byFamily: fl.byFamily },
    result: {
      model: {
        source: m.source,
        layers: c.num_hidden_layers,
        of_layers: m.fullConfig.num_hidden_layers,
        vocab: c.vocab_size,
        of_vocab: m.fullConfig.vocab_size,
        hidden: c.hidden_size,
        quantized: m.quantized,
        dtype: m.dtype,
        random_weights: m.randomWeights,
        load_ms: m.loadMs,
      },
      batch: o.batch,
      seq: o.seq,
      tokens,
      steps: stepMs.length,
      step_ms: stepMs,
      ms,
      tokens_per_s: tokens / (ms / 1000),
      flop_model: fl.model,
      flop_executed: fl.executed,
      gflops,
      readbacks_per_step: maps,
      submits_per_step: submits,
      dispatches_per_step: dispatches,
      breakdown: null,
      by_kernel: null,
      gpu_ms: null,
      unattributed_ms: null,
      full_model_estimate: {
        layers: m.fullConfig.num_hidden_layers,
        vocab: m.fullConfig.vocab_size,
        flop_executed: fullFl.executed,
        seconds: fullS,
        tokens_per_s: tokens / fullS,
      },
    },
  };
}

/**
 * Times each kernel family of the step alone (FilterRecorder) and fills `result.breakdown`. The runs leave
 * garbage in the engine's buffers (LoRA parameters included): run it after anything that needs the engine.
 */
export async function benchBreakdown(
  gpu: Gpu,
  timer: GpuTimer,
  ctx: FamilyContext,
  result: StepResult,
): Promise<void> {
  // The whole step in one command buffer (no readback, no host work between submits), right before the
  // families, so that their sum can be checked against it under the same machine load.
  const whole = await timer.time(ctx.recordStep, {
    minMs: 100,
    maxReps: 16,
    acceptPilotMs: 400,
    label: "whole step",
    clock: "wall",
    recorder: () => new FilterRecorder(gpu, null, "whole step"),
  });
  const times: { family: string; ms: number }[] = [];
  for (const f of Object.keys(ctx.census).sort()) {
    const t = await timer.time(ctx.recordStep, {
      minMs: 100,
      maxReps: 16,
      acceptPilotMs: 400,
      label: `family ${f}`,
      clock: "wall",
      recorder: () => new FilterRecorder(gpu, f, `family ${f}`),
    });
    times.push({ family: f, ms: t.ms });
  }
  const sum = times.reduce((a, t) => a + t.ms, 0);
  result.breakdown = times.map((t) => {
    const flop = ctx.byFamily[t.family] ?? 0;
    return {
      family: t.family,
      ms: t.ms,
      dispatches: ctx.census[t.family],
      share: t.ms / sum,
      flop,
      gflops: flop ? flop / (t.ms * 1e6) : null,
    };
  }).sort((a, b) => b.ms - a.ms);
  result.gpu_ms = whole.ms;
  result.unattributed_ms = whole.ms - sum;

  // Per kernel: the same recording once more with a timestamp pair around every dispatch (warm by now).
  const profiled = await timer.spans(
    ctx.recordStep,
    (o) => new FilterRecorder(gpu, null, "step by kernel", o),
  );
  if ("reason" in profiled) {
    result.by_kernel_note = profiled.reason;
    return;
  }
  const byKernel = new Map<string, KernelTime>();
  let total = 0;
  for (const s of profiled.spans) {
    const file = s.name.split("#")[0];
    const k = byKernel.get(file) ??
      { kernel: file, family: kernelFamily(s.name), dispatches: 0, ms: 0, share: 0 };
    k.dispatches++;
    k.ms += s.ns / 1e6;
    total += s.ns / 1e6;
    byKernel.set(file, k);
  }
  for (const k of byKernel.values()) k.share = k.ms / total;
  result.by_kernel = [...byKernel.values()].sort((a, b) => b.ms - a.ms);
}
