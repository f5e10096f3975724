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

/**
 * The seven linear projections of a decoder layer, declared once: HF module name (model order), the block that
 * holds it (transformers modeling_gemma2.py Gemma2Attention = `self_attn`, Gemma2MLP = `mlp`), nn.Linear's
 * in/out features from the config, and whether the seed configuration's LoRA targets it (PEFT can wrap all
 * seven; the seed targets q/k/v/o). Everything that names, shapes or targets a projection reads this table:
 * config validation (src/config/schema.ts), the weights (src/model/weights.ts), LoRA (src/lora/params.ts),
 * the quantization plan (src/quant/plan.ts), the float64 reference (src/model/reference.ts) and the bench's
 * FLOP count (src/bench/step.ts).
 */
export const PROJECTION_SPECS = {
  q_proj: { block: "self_attn", inF: "hidden", outF: "q", seedLora: true },
  k_proj: { block: "self_attn", inF: "hidden", outF: "kv", seedLora: true },
  v_proj: { block: "self_attn", inF: "hidden", outF: "kv", seedLora: true },
  o_proj: { block: "self_attn", inF: "q", outF: "hidden", seedLora: true },
  gate_proj: { block: "mlp", inF: "hidden", outF: "intermediate", seedLora: false },
  up_proj: { block: "mlp", inF: "hidden", outF: "intermediate", seedLora: false },
  down_proj: { block: "mlp", inF: "intermediate", outF: "hidden", seedLora: false },
} as const satisfies Record<string, ProjectionSpec>;

export interface ProjectionSpec {
  block: "self_attn" | "mlp";
  /** Which width of the config each side has (projectionDims). */
  inF: Width;
  outF: Width;
  /** In the seed configuration's lora.target_modules. */
  seedLora: boolean;
}
type Width = "hidden" | "q" | "kv" | "intermediate";

export type Projection = keyof typeof PROJECTION_SPECS;
/** The projection names in model order (also the order of the LoRA dropout streams). */
export const PROJECTIONS = Object.keys(PROJECTION_SPECS) as [Projection, ...Projection[]];
/** The seed configuration's LoRA targets (q/k/v/o). */
export const SEED_LORA_TARGETS: Projection[] = PROJECTIONS.filter((p) => PROJECTION_SPECS[p].seedLora);

export function isProjection(s: string): s is Projection {
  return Object.hasOwn(PROJECTION_SPECS, s);
}

function width(c: Gemma2Config, w: Width): number {
  switch (w) {
    case "hidden":
      return c.hidden_size;
    case "q":
      return c.num_attention_heads * c.head_dim;
    case "kv":
      return c.num_key_value_heads * c.head_dim;
    case "intermediate":
      return c.intermediate_size;
  }
}

/** nn.Linear in/out features of a projection. */
export function projectionDims(c: Gemma2Config, p: Projection): { inF: number; outF: number } {
  const s = PROJECTION_SPECS[p];
  return { inF: width(c, s.inF), outF: width(c, s.outF) };
}

/** [out, in] of a projection: nn.Linear's weight layout. */
export function projectionShape(c: Gemma2Config, p: Projection): [number, number] {
  const { inF, outF } = projectionDims(c, p);
  return [outF, inF];
}

/** transformers' module path in Gemma2ForCausalLM's inner Gemma2Model, e.g. `model.layers.3.self_attn.q_proj`. */
export function modulePath(layer: number, p: Projection): string {
  return `model.layers.${layer}.${PROJECTION_SPECS[p].block}.${p}`;
}

/** The PEFT state-dict key (docs/ARCHITECTURE.md#file-formats): `base_model.model.<module path>.lora_A.weight`. */
export function peftKey(layer: number, p: Projection, which: "A" | "B"): string {
  return `base_model.model.${modulePath(layer, p)}.lora_${which}.weight`;
}

/** The layer and projection of a checkpoint tensor name (`model.layers.3.mlp.up_proj.weight`), else null. */
export function parseProjectionTensor(name: string): { layer: number; proj: Projection } | null {
  const m = /^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.weight$/.exec(name);
  if (!m || !isProjection(m[3]) || PROJECTION_SPECS[m[3]].block !== m[2]) return null;
  return { layer: +m[1], proj: m[3] };
}

/** The four RMSNorm weights of a decoder layer (Gemma2DecoderLayer), in checkpoint order. */
export const NORMS = [
  "input_layernorm",
  "post_attention_layernorm",
  "pre_feedforward_layernorm",
  "post_feedforward_layernorm",
] as const;
export type NormName = typeof NORMS[number];

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
