// Fakes shared by the training loop's tests (src/train/loop.ts): batches of one token and configs of one-row steps.
import type { TrainBatch } from "../../src/train/loop.ts";
import { type TrainingConfig, TrainingSchema } from "../../src/config/schema.ts";

/** A batch of one row of one token, `id`, counting `targets` target tokens (what a fake engine reads). */
export function tokenBatch(id: number, targets = 1): TrainBatch {
  return {
    inputIds: new Int32Array([id]),
    labels: new Int32Array([id]),
    attentionMask: new Uint8Array([1]),
    rows: 1,
    seqLen: 1,
    targetTokens: targets,
  };
}

/** The training section with `over` on top of one batch per optimizer step (batch 1, no accumulation). */
export function oneRowTraining(over: Record<string, unknown>): TrainingConfig {
  return TrainingSchema.parse({ gradient_accumulation_steps: 1, per_device_train_batch_size: 1, ...over });
}
