/**
 * Gemma-2 architecture config: the fields of a Hub `config.json` that the engine uses (transformers'
 * Gemma2Config names). Unknown fields are kept (passthrough) so any real config.json parses.
 */
import { z } from "zod";

export const Gemma2ConfigSchema = z.object({
  model_type: z.literal("gemma2"),
  vocab_size: z.number().int().positive(),
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_hidden_layers: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive(),
  head_dim: z.number().int().positive(),
  query_pre_attn_scalar: z.number().positive(),
  attn_logit_softcapping: z.number().positive().nullable().default(50),
  final_logit_softcapping: z.number().positive().nullable().default(30),
  sliding_window: z.number().int().positive().default(4096),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  max_position_embeddings: z.number().int().positive().default(8192),
  hidden_activation: z.string().default("gelu_pytorch_tanh"),
  pad_token_id: z.number().int().default(0),
  eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).default(1),
  bos_token_id: z.number().int().default(2),
  tie_word_embeddings: z.boolean().default(true),
  torch_dtype: z.string().optional(),
}).passthrough();

export type Gemma2Config = z.infer<typeof Gemma2ConfigSchema>;

/** The seven linear projections of a decoder layer, by their HF module names (model order). */
export const PROJECTIONS = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
] as const;
export type Projection = typeof PROJECTIONS[number];

/** transformers: sliding-window attention on layers with layer_idx % 2 == 0. */
export function isSlidingLayer(layer: number): boolean {
  return layer % 2 === 0;
}

/** The real google/gemma-2-2b(-jpn-it) shapes, for the memory plan and the gemma-2-2b-random preset. */
export const GEMMA2_2B: Gemma2Config = Gemma2ConfigSchema.parse({
  model_type: "gemma2",
  vocab_size: 256000,
  hidden_size: 2304,
  intermediate_size: 9216,
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  query_pre_attn_scalar: 256,
  attn_logit_softcapping: 50,
  final_logit_softcapping: 30,
  sliding_window: 4096,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 8192,
  eos_token_id: [1, 107],
});
