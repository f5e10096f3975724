/**
 * Which Gemma-2 tensors are NF4-quantized, following transformers + bitsandbytes: `replace_with_bnb_linear`
 * swaps every nn.Linear except `lm_head` (tied here anyway) for Linear4bit, so all seven decoder projections
 * are quantized, while the embedding and every RMSNorm weight stay in full precision.
 */
import { UsageError } from "../util/errors.ts";
import type { QuantizationConfig } from "../config/schema.ts";
import {
  type Gemma2Config,
  modulePath,
  NORMS,
  parseProjectionTensor,
  PROJECTIONS,
  projectionShape,
} from "../config/gemma2.ts";

/** One of the seven decoder projections (src/config/gemma2.ts), by its checkpoint tensor name. */
export function isDecoderLinear(name: string): boolean {
  return parseProjectionTensor(name) !== null;
}

export function shouldQuantize(name: string, quant: QuantizationConfig): boolean {
  return quant.load_in_4bit && isDecoderLinear(name);
}

/** Rejects quantization settings the NF4 kernels cannot honour, with the fix. */
export function checkQuantConfig(quant: QuantizationConfig): void {
  if (quant.load_in_4bit && !quant.bnb_4bit_use_double_quant) {
    throw new UsageError(
      "quantization.bnb_4bit_use_double_quant=false is not supported (the NF4 kernels read double-quantized " +
        "absmax); set it to true or set quantization.load_in_4bit=false",
    );
  }
  if (quant.load_in_4bit && quant.bnb_4bit_quant_type !== "nf4") {
    throw new UsageError(
      `quantization.bnb_4bit_quant_type "${quant.bnb_4bit_quant_type}" is not supported; use "nf4"`,
    );
  }
}

/**
 * The part of the quantization config that changes the stored weights (compute dtype does not), as a
 * stable cache key, e.g. "nf4-dq-b64-b256" or "dense".
 */
export function quantKey(quant: QuantizationConfig): string {
  return quant.load_in_4bit ? `${quant.bnb_4bit_quant_type}-dq-b64-b256` : "dense";
}

/** Every tensor a Gemma-2 checkpoint must hold, with its shape (transformers' Gemma2ForCausalLM names). */
export function expectedTensors(c: Gemma2Config): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const h = c.hidden_size;
  m.set("model.embed_tokens.weight", [c.vocab_size, h]);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    for (const p of PROJECTIONS) m.set(`${modulePath(l, p)}.weight`, projectionShape(c, p));
    for (const n of NORMS) m.set(`model.layers.${l}.${n}.weight`, [h]);
  }
  m.set("model.norm.weight", [h]);
  if (!c.tie_word_embeddings) m.set("lm_head.weight", [c.vocab_size, h]);
  return m;
}
