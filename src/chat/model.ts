/**
 * Opens a model (+ an optional PEFT adapter) for generation only: `maieutic chat` and `maieutic generate`.
 * The checks come first (the adapter directory, its fit to the model) so a bad flag exits 2 before any
 * download or GPU work; the engine is an inference engine (no optimizer, no dropout) whose weights the
 * KV-cache decoder (src/model/decode.ts) runs on.
 */
import type { Config } from "../config/schema.ts";
import { openSession, type Session } from "../model/session.ts";
import type { ChatTokenizer } from "../tokenizer/tokenizer.ts";
import { openInferenceSource, readAdapterDir } from "../eval/inference_model.ts";

export interface GenerationModel {
  session: Session;
  tok: ChatTokenizer;
  /** What was opened, for the banner and the output records. */
  description: string;
  maxPositions: number;
  warnings: string[];
}

export async function openGenerationModel(cfg: Config, adapterPath?: string): Promise<GenerationModel> {
  const adapter = adapterPath === undefined ? null : await readAdapterDir(adapterPath);
  const { source, lora, warnings, tok } = await openInferenceSource(cfg, adapter);
  // The engine's own activations are unused here (the decoder has its own): the smallest shape.
  const session = await openSession(cfg, { maxBatch: 1, maxSeq: 1, training: false, lora, source });
  const description = `${source.source} (${session.model.quantized ? "NF4" : "dense"}, ` +
    `${session.engine.opts.compute} operands)${adapterPath ? ` + adapter ${adapterPath}` : ""}`;
  return {
    session,
    tok,
    description,
    maxPositions: source.config.max_position_embeddings,
    warnings,
  };
}
