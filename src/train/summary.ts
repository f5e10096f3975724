/**
 * logs/training_summary.json, from the loop's result: the status, final and best metrics (the Socratic figures
 * of the last eval and of the best checkpoint, docs/socratic_metrics.md), throughput, peak GPU buffers, the
 * adapter, hardware and versions.
 */
import { join } from "node:path";
import type { Config } from "../config/schema.ts";
import { modelVersion } from "../data/mod.ts";
import type { PoolStats } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { socraticColumns } from "../eval/in_training.ts";
import type { LoopResult } from "./loop.ts";
import type { StepPlan } from "./schedule.ts";

export interface SummaryInputs {
  cfg: Config;
  result: LoopResult;
  plan: StepPlan;
  /** Seconds from opening the model to the end of training. */
  runtimeSeconds: number;
  model: { name: string; revision?: string; quantized: boolean };
  trainableParameters: number;
  /** The run's model/ directory: the final adapter's and the checkpoints' home. */
  modelDir: string;
  pool: Pick<PoolStats, "peakBytes" | "byKind">;
  configHash: string;
  hardware: { adapter: Gpu["info"]; software: boolean; f16: boolean };
  versions: Record<string, string>;
}

/** Whether the run ended as planned (completed or stopped early), so the final adapter was written. */
export function finishedNormally(result: LoopResult): boolean {
  return result.reason === "completed" || result.reason === "early_stopping";
}

export function trainingSummary(r: SummaryInputs) {
  const { cfg, result, plan } = r;
  const t = cfg.training;
  const st = result.state;
  const lastTrain = [...st.log_history].reverse().find((e) => e.loss !== undefined);
  const lastEval = [...st.log_history].reverse().find((e) => e.eval_loss !== undefined);
  const bestEntry = st.log_history.find((e) =>
    st.best_model_checkpoint === `checkpoint-${e.step}` && e.eval_loss !== undefined
  );
  return {
    model_version: modelVersion(cfg.data),
    status: result.reason,
    message: result.message ?? null,
    model: { name: r.model.name, revision: r.model.revision ?? null, quantized: r.model.quantized },
    total_steps: st.global_step,
    planned_steps: plan.totalSteps,
    epochs: st.epoch,
    runtime_seconds: r.runtimeSeconds,
    // Throughput (src/train/loop.ts): real tokens over optimizer-step seconds; the padding computed beside
    // them and its share of all positions; the wall time split into training, evaluation (loss + generation)
    // and checkpoint saving (over all sessions of a resumed run), the rest being setup and outputs.
    train_seconds: st.train_seconds,
    train_tokens: st.train_tokens,
    train_padding_tokens: st.train_padding_tokens,
    padding_share: st.train_padding_tokens / Math.max(1, st.train_tokens + st.train_padding_tokens),
    train_tokens_per_second: st.train_tokens / Math.max(1e-9, st.train_seconds),
    wall_seconds: { train: st.train_seconds, eval: st.eval_seconds, save: st.save_seconds },
    train_samples_per_second:
      (st.global_step * t.per_device_train_batch_size * t.gradient_accumulation_steps) /
      Math.max(1e-9, st.train_seconds),
    final: {
      step: lastTrain?.step ?? null,
      loss: lastTrain?.loss ?? null,
      learning_rate: lastTrain?.learning_rate ?? null,
      grad_norm: lastTrain?.grad_norm ?? null,
      eval_loss: lastEval?.eval_loss ?? null,
      eval_perplexity: lastEval?.eval_perplexity ?? null,
      // The Socratic figures of the last eval (docs/socratic_metrics.md), null without generation.
      socratic: socraticColumns(lastEval),
    },
    best: {
      metric: t.metric_for_best_model,
      value: st.best_metric,
      step: bestEntry?.step ?? null,
      checkpoint: st.best_model_checkpoint ? join(r.modelDir, st.best_model_checkpoint) : null,
      eval_loss: bestEntry?.eval_loss ?? null,
      socratic: socraticColumns(bestEntry),
    },
    peak_gpu_buffer_bytes: r.pool.peakBytes,
    gpu_buffer_bytes_by_kind: r.pool.byKind,
    adapter: {
      r: cfg.lora.r,
      lora_alpha: cfg.lora.lora_alpha,
      target_modules: cfg.lora.target_modules,
      trainable_parameters: r.trainableParameters,
      path: finishedNormally(result) ? r.modelDir : null,
    },
    config_hash: r.configHash,
    hardware: r.hardware,
    versions: r.versions,
  };
}

export type TrainingSummary = ReturnType<typeof trainingSummary>;
