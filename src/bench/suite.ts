/**
 * `maieutic bench`: the whole benchmark in one report object (machine, ceilings, kernels, ladder, training
 * step with its family breakdown, decode, memory plan, targets). Targets live here, in the benchmark, and are
 * reported as computed figures with pass/fail; they never change the exit code.
 */
import type { Config } from "../config/schema.ts";
import { BufferPool } from "../gpu/buffers.ts";
import { type Gpu, RELIED_LIMITS, WANTED_FEATURES } from "../gpu/device.ts";
import { libraryVariants } from "../gpu/kernel.ts";
import { kernelVariant } from "../gpu/ops/matmul.ts";
import { kernelChoice } from "../gpu/variants.ts";
import { GEMMA2_2B_RANDOM } from "../hub/model_name.ts";
import { GEMMA2_2B } from "../config/gemma2.ts";
import type { Gemma2Config } from "../config/gemma2.ts";
import { openModelSource } from "../model/session.ts";
import type { HostTensor } from "../quant/store.ts";
import { type Ceilings, measureCeilings } from "./ceilings.ts";
import { benchDecode, type DecodeResult } from "./decode.ts";
import { benchKernels, benchLadder, type KernelCase, type KernelResult, type Ladder } from "./kernels.ts";
import { type MemoryPlan, memoryPlan } from "./plan.ts";
import { compareSubgroups, type SubgroupsComparison } from "./subgroups.ts";
import { benchBreakdown, benchStep, loadBenchModel, median, type StepResult } from "./step.ts";
import { GpuTimer } from "./timing.ts";
import type { Comparison } from "./compare.ts";

export interface BenchSettings {
  batch: number;
  seq: number;
  steps: number;
  layers: number;
  vocab: number;
  decodeTokens: number;
  promptTokens: number;
  /** Vocab rows of the cross-entropy kernel case. */
  ceVocab: number;
  /** Kernel figures by GPU timestamps where they are trusted ("auto"), or always by the wall clock. */
  clock: "auto" | "wall";
}

/** Small models run whole; real-width ones are cut so the default run fits a few minutes on lavapipe. */
export function defaultSettings(c: Gemma2Config): BenchSettings {
  const small = c.hidden_size < REAL_WIDTH;
  return small
    ? {
      batch: 2,
      seq: 32,
      steps: 1,
      layers: c.num_hidden_layers,
      vocab: c.vocab_size,
      decodeTokens: 8,
      promptTokens: 8,
      ceVocab: c.vocab_size,
      clock: "auto",
    }
    : {
      batch: 1,
      seq: 64,
      // The median of 3 steps: one step's time swings with a shared machine's load (BENCHMARKS.md).
      steps: 3,
      layers: 1,
      vocab: 8192,
      decodeTokens: 1,
      promptTokens: 1,
      ceVocab: 4096,
      clock: "auto",
    };
}

export interface BenchSections {
  kernels: boolean;
  ladder: boolean;
  step: boolean;
  breakdown: boolean;
  decode: boolean;
}

export interface Target {
  name: string;
  value: number | null;
  limit: number;
  pass: boolean | null;
  detail: string;
}

export interface BenchReport {
  maieutic_bench: 1;
  date: string;
  model: string;
  settings: BenchSettings;
  machine: Record<string, unknown>;
  ceilings: Ceilings;
  kernels: KernelResult[] | null;
  /** The kernels that use subgroup operations, timed with them and with their fallbacks. */
  subgroups: SubgroupsComparison | null;
  ladder: Ladder | null;
  step: StepResult | null;
  decode: DecodeResult | null;
  memory_plan: MemoryPlan;
  targets: Target[];
  total_s: number;
  /** With --compare: this run against an earlier report. */
  comparison?: Comparison;
}

export interface ModelSource {
  config: Gemma2Config;
  source: string;
  randomWeights: boolean;
  tensors(): AsyncIterable<[string, HostTensor]>;
  close(): void;
}

/** gemma-2-2b-random without touching the cache or the Hub; anything else through the model loader. */
export async function openBenchModel(cfg: Config): Promise<ModelSource> {
  if (cfg.model.name === GEMMA2_2B_RANDOM) {
    return {
      config: GEMMA2_2B,
      source: GEMMA2_2B_RANDOM,
      randomWeights: true,
      async *tensors() {},
      close() {},
    };
  }
  const s = await openModelSource(cfg, { log: (l) => console.error(l) });
  return s;
}

/** The memory plan of the seed configuration (or the given batch/seq) for a config's real shapes. */
export function seedPlan(
  cfg: Config,
  config: Gemma2Config,
  model: string,
  batch?: number,
  seq?: number,
): MemoryPlan {
  return memoryPlan({
    config,
    model,
    batch: batch ?? cfg.training.per_device_train_batch_size,
    seq: seq ?? cfg.model.max_sequence_length,
    dtype: cfg.quantization.bnb_4bit_compute_dtype === "float16" ? "f16" : "f32",
    quantized: cfg.quantization.load_in_4bit,
    checkpointing: cfg.training.gradient_checkpointing,
    training: true,
    lora: {
      r: cfg.lora.r,
      lora_alpha: cfg.lora.lora_alpha,
      target_modules: cfg.lora.target_modules,
      lora_dropout: cfg.lora.lora_dropout,
    },
  });
}

async function driverPackage(): Promise<string | null> {
  if (Deno.build.os !== "linux") return null;
  try {
    const r = await new Deno.Command("dpkg-query", {
      args: ["-W", "-f=${Version}", "mesa-vulkan-drivers"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const v = new TextDecoder().decode(r.stdout).trim();
    return r.success && v ? `mesa-vulkan-drivers ${v}` : null;
  } catch {
    return null;
  }
}

export async function machineInfo(gpu: Gpu): Promise<Record<string, unknown>> {
  return {
    adapter: { ...gpu.info, software: gpu.isSoftware },
    backend: gpu.backend,
    calibration_gflops: gpu.calibration?.gflops ?? null,
    driver_package: gpu.isSoftware ? await driverPackage() : null,
    features: Object.fromEntries(
      WANTED_FEATURES.map((f) => [f, gpu.device.features.has(f as GPUFeatureName)]),
    ),
    limits: Object.fromEntries(
      RELIED_LIMITS.map((k) => [k, (gpu.limits as unknown as Record<string, number>)[k]]),
    ),
    cpu_cores: navigator.hardwareConcurrency,
    os: `${Deno.build.os} ${Deno.build.arch}`,
    deno: Deno.version.deno,
    load_average: Deno.build.os === "linux" ? Deno.loadavg() : null,
    // The matmul kernel family the engine uses here (src/gpu/ops/matmul.ts kernelVariant): by adapter, or
    // MAIEUTIC_KERNELS=tiled|regblock.
    kernels: kernelVariant(gpu),
    kernels_from: kernelChoice(gpu).familyFrom,
    // The variant of each `// #include` library (src/gpu/kernel.ts): subgroup operations when the device has
    // them, else the fallbacks; MAIEUTIC_SUBGROUPS=0 forces the fallbacks.
    libraries: libraryVariants(gpu),
    subgroup_sizes: gpu.subgroupSizes,
    // Replaced by GpuTimer.describe() once the ceilings are measured (the first timings tell whether the
    // timestamps can be trusted).
    timing: "",
  };
}

const MATMUL_FAMILIES = new Set(["matmul", "nf4", "qlora"]);
/** Hidden sizes from here on count as real width (gemma-2-2b: 2304). */
const REAL_WIDTH = 1024;

export function computeTargets(
  r: Pick<BenchReport, "kernels" | "ladder" | "step" | "memory_plan" | "ceilings">,
): Target[] {
  const t: Target[] = [];
  const p = r.memory_plan;
  t.push({
    name: "memory plan peak <= 4 GiB",
    value: p.peak_bytes,
    limit: p.target.limit_bytes,
    pass: p.target.pass,
    detail: `${p.model}, batch ${p.batch} x ${p.seq}, ${p.quantized ? "NF4" : "dense"}, ${p.dtype}, ` +
      `checkpointing ${p.checkpointing}`,
  });
  const cands: { name: string; gflops: number }[] = [];
  for (const k of r.kernels ?? []) if (MATMUL_FAMILIES.has(k.family)) cands.push(k);
  for (const g of [...r.ladder?.rungs ?? [], ...r.ladder?.regblock ?? []]) {
    if (!g.prototype) cands.push({ name: `ladder: ${g.name}`, gflops: g.gflops });
  }
  const best = cands.reduce<{ name: string; gflops: number } | null>(
    (a, b) => (!a || b.gflops > a.gflops ? b : a),
    null,
  );
  const s = r.step;
  const unpaired = s && best ? s.gflops / best.gflops : null;
  // Paired: step i's GFLOP/s brought to the load of the kernel table by the reference matmul timed right
  // after it (reference at table time / reference after step i), then set against the best; the median over
  // the steps. Equal to step_i / reference_i when the reference is the best.
  const ref = s?.paired_reference;
  const paired = s && best && ref && ref.gflops_after_each_step.length === s.step_ms.length
    ? median(s.step_ms.map((ms, i) => {
      const stepGflops = s.flop_executed / (ms * 1e6);
      return (stepGflops * ref.table_gflops / ref.gflops_after_each_step[i]) / best.gflops;
    }))
    : null;
  const ratio = paired ?? unpaired;
  const realWidth = s !== null && s.model.hidden >= REAL_WIDTH;
  const proto = r.ladder?.rungs.find((g) => g.prototype);
  const context = s
    ? `; the step is at ${(100 * s.gflops / r.ceilings.fma_gflops).toFixed(1)}% of the FMA ceiling` +
      (proto
        ? ` and ${(100 * s.gflops / proto.gflops).toFixed(1)}% of the ladder's prototype (${
          proto.gflops.toFixed(3)
        } GFLOP/s)`
        : "")
    : "";
  t.push({
    name: "training step on a real-width preset sustains >= 50% of the best matmul GFLOP/s",
    value: ratio,
    limit: 0.5,
    // Defined for real widths: a toy model's step is dispatch overhead, not matmul.
    pass: ratio === null || !realWidth ? null : ratio >= 0.5,
    detail: s && best
      ? `${
        realWidth ? "" : `not a real-width model (hidden ${s.model.hidden} < ${REAL_WIDTH}): reported only; `
      }step ${s.gflops.toFixed(3)} GFLOP/s (executed FLOP ${(s.flop_executed / 1e9).toFixed(2)} G in ` +
        `${s.ms.toFixed(0)} ms, ${s.model.source} ${s.model.layers}/${s.model.of_layers} layers, vocab ` +
        `${s.model.vocab}/${s.model.of_vocab}, ${s.batch}x${s.seq}) vs best matmul ${
          best.gflops.toFixed(3)
        } ` +
        `GFLOP/s (${best.name}; engine kernels only, the ladder's prototype left out)` +
        (paired !== null && ref
          ? `; paired with ${ref.kernel} timed after each step (${
            ref.gflops_after_each_step.map((g) => g.toFixed(3)).join(", ")
          } GFLOP/s; ${ref.table_gflops.toFixed(3)} in the kernel table): ${paired.toFixed(3)}, unpaired ${
            unpaired!.toFixed(3)
          }`
          : "") +
        context
      : "needs the step and the kernel or ladder sections",
  });
  t.push({
    name: "at most one readback per optimizer step",
    value: s ? s.readbacks_per_step : null,
    limit: 1,
    pass: s ? s.readbacks_per_step <= 1 : null,
    detail: s
      ? `${s.readbacks_per_step} mapAsync, ${s.submits_per_step} command buffers, ${s.dispatches_per_step} ` +
        `dispatches in one optimizer step`
      : "needs the step section",
  });
  return t;
}

export async function runBench(
  gpu: Gpu,
  cfg: Config,
  settings: BenchSettings,
  sections: BenchSections,
  src: ModelSource,
  log: (line: string) => void,
): Promise<BenchReport> {
  const t0 = performance.now();
  const timer = new GpuTimer(gpu, { clock: settings.clock });
  const full = src.config;
  const dtype: "f16" | "f32" = cfg.quantization.bnb_4bit_compute_dtype === "float16" && gpu.f16
    ? "f16"
    : "f32";
  const machine = await machineInfo(gpu);
  log(
    `adapter ${gpu.info.description || gpu.info.vendor}; submit + await overhead ${
      (await timer.overhead()).toFixed(1)
    } ms`,
  );

  const ceilings = await measureCeilings(gpu, timer, { fmaInvocations: 65536 });
  log(`ceilings: copy ${ceilings.copy_gbps.toFixed(2)} GB/s, FMA ${ceilings.fma_gflops.toFixed(2)} GFLOP/s`);

  const N = settings.batch * settings.seq;
  let kernels: KernelResult[] | null = null;
  let cases: KernelCase[] = [];
  let subgroups: SubgroupsComparison | null = null;
  if (sections.kernels) {
    const run = await benchKernels(
      gpu,
      timer,
      ceilings,
      {
        config: full,
        batch: settings.batch,
        seq: settings.seq,
        r: cfg.lora.r,
        loraDropout: cfg.lora.lora_dropout,
        compute: dtype,
        ceVocab: settings.ceVocab,
      },
      (k) =>
        log(
          `kernel ${k.name}: ${k.ms.toFixed(2)} ms, ${k.gflops.toFixed(3)} GFLOP/s, ${
            k.gbps.toFixed(3)
          } GB/s`,
        ),
    );
    kernels = run.results;
    cases = run.cases;
    subgroups = await compareSubgroups(gpu, timer, run.cases, {
      onCase: (c) =>
        log(
          `subgroups ${c.name}: ${c.subgroup_ms.toFixed(3)} ms, fallback ${c.fallback_ms.toFixed(3)} ms ` +
            `(x${c.speedup.toFixed(2)})`,
        ),
    });
  }

  let ladder: Ladder | null = null;
  if (sections.ladder) {
    const QD = full.num_attention_heads * full.head_dim;
    ladder = await benchLadder(gpu, timer, { M: Math.max(N, 1), N: QD, K: full.hidden_size, compute: dtype });
    for (const r of [...ladder.rungs, ...ladder.regblock ?? []]) {
      log(`ladder ${r.name}: ${r.ms.toFixed(1)} ms, ${r.gflops.toFixed(3)} GFLOP/s`);
    }
  }

  let step: StepResult | null = null;
  let decode: DecodeResult | null = null;
  if (sections.step || sections.decode) {
    const pool = new BufferPool(gpu);
    const m = await loadBenchModel(gpu, pool, src, {
      layers: settings.layers,
      vocab: settings.vocab,
      dtype,
      quantized: cfg.quantization.load_in_4bit,
    });
    log(
      `model ${m.source}: ${m.config.num_hidden_layers}/${full.num_hidden_layers} layers, vocab ` +
        `${m.config.vocab_size}/${full.vocab_size}, loaded in ${m.loadMs.toFixed(0)} ms`,
    );
    const t = cfg.training;
    // The step-efficiency target sets the step against the fastest matmul; on a shared machine the load can
    // change between the kernel table and the step (±20% here), so that matmul is timed again right after
    // every step and each step is compared with the figure of its own moment (computeTargets).
    const refResult = (kernels ?? []).filter((k) => MATMUL_FAMILIES.has(k.family))
      .reduce<KernelResult | null>((a, b) => (!a || b.gflops > a.gflops ? b : a), null);
    const refCase = refResult ? cases.find((c) => c.name === refResult.name) : undefined;
    const refAfter: number[] = [];
    const s = await benchStep(gpu, pool, m, {
      afterEachStep: refCase && sections.step
        ? async () => {
          const r = await timer.time(refCase.record, { minMs: 150, acceptPilotMs: 400, label: refCase.name });
          refAfter.push(refCase.flop / (r.ms * 1e6));
        }
        : undefined,
      batch: settings.batch,
      seq: settings.seq,
      steps: settings.steps,
      lora: {
        r: cfg.lora.r,
        lora_alpha: cfg.lora.lora_alpha,
        target_modules: cfg.lora.target_modules,
        lora_dropout: cfg.lora.lora_dropout,
      },
      checkpointing: t.gradient_checkpointing,
      seed: t.seed,
      hyper: {
        lr: t.learning_rate,
        weightDecay: t.weight_decay,
        beta1: t.adam_beta1,
        beta2: t.adam_beta2,
        eps: t.adam_epsilon,
        maxGradNorm: t.max_grad_norm,
      },
    });
    if (sections.step) {
      step = s.result;
      if (refResult && refAfter.length === step.step_ms.length) {
        step.paired_reference = {
          kernel: refResult.name,
          table_gflops: refResult.gflops,
          gflops_after_each_step: refAfter,
        };
      }
      log(
        `step: ${step.ms.toFixed(0)} ms, ${step.tokens_per_s.toFixed(2)} tokens/s, ${
          step.gflops.toFixed(3)
        } GFLOP/s`,
      );
    }
    if (sections.decode && settings.decodeTokens > 0) {
      decode = await benchDecode(s.engine, {
        promptTokens: settings.promptTokens,
        tokens: settings.decodeTokens,
      });
      log(
        decode.available
          ? `decode: ${decode.tokens_per_s!.toFixed(3)} tokens/s (prefill ${
            decode.prefill_ms!.toFixed(0)
          } ms)`
          : `decode: skipped (${decode.note})`,
      );
    }
    if (step && sections.breakdown) {
      await benchBreakdown(gpu, timer, s.families, step);
      for (const f of step.breakdown!) log(`family ${f.family}: ${f.ms.toFixed(1)} ms`);
    }
  }

  machine.timing = timer.describe();
  const memory_plan = seedPlan(cfg, full, src.source);
  const partial = { kernels, ladder, step, memory_plan, ceilings };
  return {
    maieutic_bench: 1,
    date: new Date().toISOString(),
    model: src.source,
    settings,
    machine,
    ceilings,
    kernels,
    subgroups,
    ladder,
    step,
    decode,
    memory_plan,
    targets: computeTargets(partial),
    total_s: (performance.now() - t0) / 1000,
  };
}
