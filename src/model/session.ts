/**
 * Opens everything a run needs on the GPU: the model (streamed from the Hub, a local dir, the tiny model or
 * the random real-shape preset), its tokenizer directory, and the engine with LoRA. Shared by train, eval,
 * bench and serve's jobs.
 */
import type { Config } from "../config/schema.ts";
import { BufferPool } from "../gpu/buffers.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { type LoadOptions, openModel } from "../hub/load.ts";
import type { LoraParams } from "../lora/params.ts";
import type { Gemma2Config } from "../config/gemma2.ts";
import { Gemma2Engine } from "./engine.ts";
import { buildWeights, randomWeights } from "./weights.ts";

export interface ModelInfo {
  config: Gemma2Config;
  /** Where config.json and the tokenizer files are (empty for the random preset). */
  dir: string;
  source: string;
  revision?: string;
  randomWeights: boolean;
  quantized: boolean;
}

const warnedNoF16 = new WeakSet<Gpu>();

/**
 * f16 operands when the config asks for float16 and the adapter has shader-f16, else f32. Asking for float16
 * without shader-f16 (GL and some older or mobile adapters, or MAIEUTIC_F16=0) computes in float32 and says
 * so once per device: the numbers are then closer to transformers' float32 run, never wrong.
 */
export function computeType(cfg: Config, gpu: Gpu): "f16" | "f32" {
  const wanted = cfg.quantization.bnb_4bit_compute_dtype === "float16";
  if (wanted && !gpu.f16 && !warnedNoF16.has(gpu)) {
    warnedNoF16.add(gpu);
    console.error(
      `warning: quantization.bnb_4bit_compute_dtype is float16 but ${
        gpu.info.description || "the adapter"
      } has no shader-f16${
        Deno.env.get("MAIEUTIC_F16") === "0" ? " in use (MAIEUTIC_F16=0)" : ""
      }: computing in float32 (set it to float32 to silence this)`,
    );
  }
  return wanted && gpu.f16 ? "f16" : "f32";
}

/** Opens the model source (no tensors read yet) so its config and tokenizer can be used first. */
export function openModelSource(cfg: Config, opts: LoadOptions = {}) {
  return openModel(cfg.model.name, cfg.quantization, opts);
}

export interface Session {
  gpu: Gpu;
  pool: BufferPool;
  engine: Gemma2Engine;
  model: ModelInfo;
}

export async function openSession(
  cfg: Config,
  opts: {
    maxBatch: number;
    maxSeq: number;
    training: boolean;
    lora: LoraParams | null;
    load?: LoadOptions;
    /** An already opened source (openModelSource) whose tensors have not been read. */
    source?: Awaited<ReturnType<typeof openModel>>;
  },
): Promise<Session> {
  const gpu = await getGpu();
  const src = opts.source ?? await openModelSource(cfg, opts.load);
  const pool = new BufferPool(gpu);
  const dtype = computeType(cfg, gpu);
  const weights = src.randomWeights
    ? randomWeights(gpu, pool, src.config, dtype, cfg.quantization.load_in_4bit)
    : await buildWeights(gpu, pool, src.config, dtype, src.tensors()).finally(() => src.close());
  const engine = new Gemma2Engine(gpu, pool, weights, opts.lora, {
    maxBatch: opts.maxBatch,
    maxSeq: opts.maxSeq,
    compute: dtype,
    checkpointing: cfg.training.gradient_checkpointing,
    loraDropout: cfg.lora.lora_dropout,
    training: opts.training,
    neftuneAlpha: cfg.training.neftune_noise_alpha,
  });
  return {
    gpu,
    pool,
    engine,
    model: {
      config: src.config,
      dir: src.dir,
      source: src.source,
      revision: src.revision,
      randomWeights: src.randomWeights,
      quantized: weights.quantized,
    },
  };
}
