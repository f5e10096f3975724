/**
 * The trainer's state in and out of checkpoints (src/train/checkpoint.ts is the directory layout and the
 * optimizer file's format): `save` reads the LoRA parameters and AdamW's moments back from the GPU into a new
 * checkpoint, with the trainer state and the RNG record, then prunes old ones; `restoreOptimizer` writes a
 * checkpoint's moments back into the GPU buffers, and `loraFromCheckpoint` gives its adapter as the LoRA
 * parameters the engine starts from.
 */
import { join } from "node:path";
import type { Config } from "../config/schema.ts";
import type { Gemma2Config } from "../config/gemma2.ts";
import type { Gpu } from "../gpu/device.ts";
import { readF32 } from "../gpu/readback.ts";
import type { LoraParams } from "../lora/params.ts";
import {
  type AdapterConfig,
  adapterToParams,
  loadAdapter,
  makeAdapterConfig,
  saveAdapter,
} from "../lora/peft.ts";
import { pruneCheckpoints, readOptimizerState, saveCheckpoint, writeOptimizerState } from "./checkpoint.ts";
import type { OptimizerState } from "./optimizer.ts";
import type { RngState, TrainerState } from "./state.ts";

/** The LoRA parameters of the checkpoint in `dir`, checked against the model and this run's LoRA settings. */
export async function loraFromCheckpoint(
  dir: string,
  model: { config: Gemma2Config; source: string },
  cfg: Config,
): Promise<LoraParams> {
  const a = adapterToParams(await loadAdapter(dir), model.config, {
    baseModel: model.source,
    lora: { r: cfg.lora.r, lora_alpha: cfg.lora.lora_alpha, target_modules: cfg.lora.target_modules },
  });
  return a.params;
}

export class Checkpointer {
  private readonly adapterConfig: AdapterConfig;

  constructor(
    private readonly gpu: Gpu,
    private readonly modelDir: string,
    private readonly cfg: Config,
    baseModel: string,
    private readonly lora: LoraParams,
    private readonly opt: OptimizerState,
  ) {
    this.adapterConfig = makeAdapterConfig({
      baseModelNameOrPath: baseModel,
      r: cfg.lora.r,
      lora_alpha: cfg.lora.lora_alpha,
      lora_dropout: cfg.lora.lora_dropout,
      target_modules: cfg.lora.target_modules,
    });
  }

  /** Writes the current adapter (PEFT files) into dir. */
  saveAdapter = async (dir: string): Promise<void> => {
    const data = await readF32(this.gpu, this.opt.param, 0, this.lora.layout.total);
    await saveAdapter(dir, { ...this.lora, data }, this.adapterConfig);
  };

  /** Saves checkpoint-{step} and prunes beyond save_total_limit (never the best); returns its directory. */
  save = async (step: number, st: TrainerState): Promise<string> => {
    const t = this.cfg.training;
    const rng: RngState = { seed: t.seed, scheme: "counter-v1", next_step: step + 1 };
    const dir = await saveCheckpoint(
      this.modelDir,
      step,
      {
        writeAdapter: this.saveAdapter,
        writeOptimizer: async (d) => {
          const m = await readF32(this.gpu, this.opt.m, 0, this.opt.n);
          const v = await readF32(this.gpu, this.opt.v, 0, this.opt.n);
          await writeOptimizerState(d, { m, v }, step);
        },
      },
      st,
      rng,
    );
    const best = st.best_model_checkpoint ? join(this.modelDir, st.best_model_checkpoint) : null;
    await pruneCheckpoints(this.modelDir, t.save_total_limit, best);
    return dir;
  };

  /** Loads the AdamW moments of the checkpoint in dir into the GPU buffers. */
  async restoreOptimizer(dir: string): Promise<void> {
    const { m, v } = await readOptimizerState(dir, this.opt.n);
    this.gpu.device.queue.writeBuffer(this.opt.m, 0, m as Float32Array<ArrayBuffer>);
    this.gpu.device.queue.writeBuffer(this.opt.v, 0, v as Float32Array<ArrayBuffer>);
  }
}
