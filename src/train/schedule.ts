/**
 * Trainer step math and LR schedules (docs/ARCHITECTURE.md#one-training-step), following transformers' Trainer with
 * `num_update_steps_per_epoch = ceil(batches / accumulation)` and `get_scheduler` in optimization.py.
 * Pure functions; the golden is tests/fixtures/golden/schedule.json ("later transformers ... using ceil").
 */
import type { TrainingConfig } from "../config/schema.ts";

export interface StepPlan {
  batchesPerEpoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
  warmupSteps: number;
  /** Epochs actually run (max_steps may cut the last one short). */
  epochs: number;
}

export function planSteps(numExamples: number, t: TrainingConfig): StepPlan {
  const batchesPerEpoch = Math.ceil(numExamples / t.per_device_train_batch_size);
  const stepsPerEpoch = Math.max(1, Math.ceil(batchesPerEpoch / t.gradient_accumulation_steps));
  const totalSteps = t.max_steps > 0 ? t.max_steps : Math.ceil(t.num_train_epochs * stepsPerEpoch);
  const warmupSteps = t.warmup_steps > 0 ? t.warmup_steps : Math.ceil(t.warmup_ratio * totalSteps);
  return {
    batchesPerEpoch,
    stepsPerEpoch,
    totalSteps,
    warmupSteps,
    epochs: Math.ceil(totalSteps / stepsPerEpoch),
  };
}

/** transformers' LR multiplier λ(k) for scheduler step k (0-based count of scheduler steps taken). */
export function lrLambda(
  type: TrainingConfig["lr_scheduler_type"],
  k: number,
  warmup: number,
  total: number,
  numCycles = 1,
): number {
  if (type === "constant") return 1;
  if (k < warmup) return k / Math.max(1, warmup);
  if (type === "constant_with_warmup") return 1;
  const progress = (k - warmup) / Math.max(1, total - warmup);
  switch (type) {
    case "linear":
      return Math.max(0, (total - k) / Math.max(1, total - warmup));
    case "cosine":
      // get_cosine_schedule_with_warmup with its default num_cycles = 0.5
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * progress)));
    case "cosine_with_restarts":
      if (progress >= 1) return 0;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((numCycles * progress) % 1))));
  }
}

/** The LR used by optimizer step `step` (1-based): the schedule's value after step-1 scheduler steps. */
export function lrAtStep(step: number, plan: StepPlan, t: TrainingConfig): number {
  return t.learning_rate *
    lrLambda(t.lr_scheduler_type, step - 1, plan.warmupSteps, plan.totalSteps, t.num_cycles);
}
