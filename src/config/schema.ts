/**
 * The configuration schemas. Defaults are the seed (docs/ARCHITECTURE.md#configuration); names follow transformers' TrainingArguments,
 * PEFT's LoraConfig and bitsandbytes' BitsAndBytesConfig so a user can paste their Python config.
 * Every object is `.strict()`: an unknown key is an error (src/config/merge.ts suggests the closest name).
 */
import { z } from "zod";
import { PROJECTIONS, SEED_LORA_TARGETS } from "./gemma2.ts";

export const ModelSchema = z.object({
  /** Hub repo id (optionally `@revision`), a local directory laid out like a Hub repo, `tiny` or `gemma-2-2b-random`. */
  name: z.string().min(1).default("google/gemma-2-2b-jpn-it"),
  max_sequence_length: z.number().int().min(8).max(8192).default(512),
}).strict();

export const QuantizationSchema = z.object({
  load_in_4bit: z.boolean().default(true),
  bnb_4bit_use_double_quant: z.boolean().default(true),
  bnb_4bit_quant_type: z.literal("nf4").default("nf4"),
  bnb_4bit_compute_dtype: z.enum(["float16", "float32"]).default("float16"),
}).strict();

export const LoraSchema = z.object({
  r: z.number().int().min(1).max(1024).default(16),
  lora_alpha: z.number().positive().default(32),
  /** Projections to wrap (src/config/gemma2.ts PROJECTION_SPECS); default the seed's q/k/v/o. */
  target_modules: z.array(z.enum(PROJECTIONS)).min(1).default(() => [...SEED_LORA_TARGETS]),
  lora_dropout: z.number().min(0).max(1).default(0.1),
  bias: z.literal("none").default("none"),
  task_type: z.literal("CAUSAL_LM").default("CAUSAL_LM"),
}).strict();

export const SchedulerTypeSchema = z.enum([
  "linear",
  "cosine",
  "cosine_with_restarts",
  "constant",
  "constant_with_warmup",
]);

export const TrainingSchema = z.object({
  num_train_epochs: z.number().positive().default(30),
  /** When > 0 overrides num_train_epochs, as in transformers. */
  max_steps: z.number().int().default(-1),
  learning_rate: z.number().positive().default(8e-5),
  weight_decay: z.number().min(0).default(0.06),
  warmup_ratio: z.number().min(0).max(1).default(0.25),
  /** When > 0 overrides warmup_ratio, as in transformers. */
  warmup_steps: z.number().int().min(0).default(0),
  lr_scheduler_type: SchedulerTypeSchema.default("cosine_with_restarts"),
  /** transformers' get_scheduler passes no kwargs, so cosine_with_restarts has 1 cycle unless set. */
  num_cycles: z.number().int().min(1).default(1),
  per_device_train_batch_size: z.number().int().min(1).default(4),
  per_device_eval_batch_size: z.number().int().min(1).default(4),
  gradient_accumulation_steps: z.number().int().min(1).default(8),
  max_grad_norm: z.number().positive().default(1.0),
  adam_beta1: z.number().min(0).max(1).default(0.9),
  adam_beta2: z.number().min(0).max(1).default(0.999),
  adam_epsilon: z.number().positive().default(1e-8),
  seed: z.number().int().min(0).default(42),
  logging_steps: z.number().int().min(1).default(1),
  /** 0 = at each epoch's end. */
  eval_steps: z.number().int().min(0).default(0),
  eval_on_start: z.boolean().default(false),
  /** 0 = at each epoch's end. */
  save_steps: z.number().int().min(0).default(0),
  save_total_limit: z.number().int().min(1).default(3),
  /**
   * Also checkpoint when this many minutes passed since the last checkpoint (0 = off), so a preempted VM loses at
   * most that much work however long an epoch or a save_steps interval is. 15: a checkpoint of gemma-2-2b's
   * adapter and AdamW state takes seconds, and spot VMs are typically preempted hours apart.
   */
  save_every_minutes: z.number().min(0).default(15),
  eval_split: z.number().min(0).max(0.9).default(0.1),
  /** Eval contexts generated for and scored at each eval (docs/socratic_metrics.md); 0 = eval loss only. */
  eval_generate_samples: z.number().int().min(0).default(32),
  /** Seeded samples per eval context for response_consistency and distinct_2 (K); 0 = greedy only. */
  eval_consistency_samples: z.number().int().min(0).default(3),
  /** Cap of the generated length: max_new_tokens = min(this, 1.25 × the longest reference's tokens + 8). */
  eval_max_new_tokens: z.number().int().min(1).default(256),
  /** Best checkpoint by this CSV column: eval_loss, eval_perplexity (lower is better) or e.g. eval_socratic_score. */
  metric_for_best_model: z.string().default("eval_loss"),
  gradient_checkpointing: z.boolean().default(true),
  group_by_length: z.boolean().default(false),
  /** 0 = off. */
  early_stopping_patience: z.number().int().min(0).default(0),
  /** 0 = off (transformers' None). */
  neftune_noise_alpha: z.number().min(0).default(0),
  loss_watchdog_threshold: z.number().positive().default(1e4),
  loss_watchdog_patience: z.number().int().min(1).default(3),
}).strict();

export const ConfigSchema = z.object({
  model: ModelSchema.default(ModelSchema.parse({})),
  quantization: QuantizationSchema.default(QuantizationSchema.parse({})),
  lora: LoraSchema.default(LoraSchema.parse({})),
  training: TrainingSchema.default(TrainingSchema.parse({})),
  /** The dialogue file (docs/ARCHITECTURE.md#data); MODEL_VERSION is its stem. */
  data: z.string().default("data/dialogue/processed/1gouki.json"),
  /** Optional held-out file; overrides eval_split. */
  eval_data: z.string().optional(),
  /** Root of the output tree: {output_dir}/{MODEL_VERSION}/... */
  output_dir: z.string().default("models"),
}).strict();

export type ModelConfig = z.infer<typeof ModelSchema>;
export type QuantizationConfig = z.infer<typeof QuantizationSchema>;
export type LoraConfig = z.infer<typeof LoraSchema>;
export type TrainingConfig = z.infer<typeof TrainingSchema>;
export type Config = z.infer<typeof ConfigSchema>;

export function defaultConfig(): Config {
  return ConfigSchema.parse({});
}
