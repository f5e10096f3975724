/** Schemas of the checkpoint metadata files (trainer_state.json, rng_state.json), as transformers names them. */
import { z } from "zod";

export const LogEntrySchema = z.object({
  step: z.number().int(),
  epoch: z.number(),
  loss: z.number().optional(),
  learning_rate: z.number().optional(),
  grad_norm: z.number().optional(),
  eval_loss: z.number().optional(),
  eval_perplexity: z.number().optional(),
}).catchall(z.number());
export type LogEntry = z.infer<typeof LogEntrySchema>;

export const TrainerStateSchema = z.object({
  global_step: z.number().int().min(0),
  epoch: z.number().min(0),
  max_steps: z.number().int(),
  num_train_epochs: z.number(),
  logging_steps: z.number().int(),
  eval_steps: z.number().int(),
  save_steps: z.number().int(),
  train_batch_size: z.number().int(),
  log_history: z.array(LogEntrySchema),
  best_metric: z.number().nullable(),
  best_model_checkpoint: z.string().nullable(),
  /** Steps without eval improvement (early stopping). */
  early_stopping_patience_counter: z.number().int().default(0),
  /** Train tokens seen so far (real tokens: the attention mask's ones) and the padding positions computed
   *  beside them; seconds spent in optimizer steps, in evaluations and in saving checkpoints, so a resumed run
   *  reports totals (src/train/loop.ts). */
  train_tokens: z.number().int().default(0),
  train_padding_tokens: z.number().int().default(0),
  train_seconds: z.number().default(0),
  eval_seconds: z.number().default(0),
  save_seconds: z.number().default(0),
  /**
   * A stop request (SIGTERM/Ctrl-C) arrived when global_step's eval was due: the checkpoint was written before
   * that eval (a preemption notice gives seconds, an eval with generation takes minutes), and a resumed run
   * evaluates first (src/train/loop.ts).
   */
  eval_pending: z.boolean().default(false),
});
export type TrainerState = z.infer<typeof TrainerStateSchema>;

export const RngStateSchema = z.object({
  seed: z.number().int(),
  /** The data order of epoch e is epochOrder(seed, e); LoRA dropout masks derive from (seed, step, micro-batch). */
  scheme: z.literal("counter-v1"),
  next_step: z.number().int().min(1),
});
export type RngState = z.infer<typeof RngStateSchema>;
