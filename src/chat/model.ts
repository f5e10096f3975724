/**
 * Opens a model (+ an optional PEFT adapter) for generation only: `maieutic chat` and `maieutic generate`.
 * The checks come first (the adapter directory, its fit to the model) so a bad flag exits 2 before any
 * download or GPU work; the engine is an inference engine (no optimizer, no dropout) whose weights the
 * KV-cache decoder (src/model/decode.ts) runs on.
 */
import type { Config } from "../config/schema.ts";
import { UsageError } from "../util/errors.ts";
import { adapterToParams, loadAdapter, type LoadedAdapter } from "../lora/peft.ts";
import type { LoraParams } from "../lora/params.ts";
import { openModelSource, openSession, type Session } from "../model/session.ts";
import { tinyChatTokenizer } from "../tokenizer/tiny.ts";
import { type ChatTokenizer, loadTokenizer } from "../tokenizer/tokenizer.ts";

export interface GenerationModel {
  session: Session;
  tok: ChatTokenizer;
  /** What was opened, for the banner and the output records. */
  description: string;
  maxPositions: number;
  warnings: string[];
}

/** Reads and checks the adapter directory (UsageError naming it and the fix). */
export async function readAdapterDir(path: string): Promise<LoadedAdapter> {
  try {
    const st = await Deno.stat(path);
    if (!st.isDirectory) {
      throw new UsageError(`--adapter ${path}: not a directory (expected a PEFT adapter dir)`);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`--adapter ${path}: no such directory`);
    throw e;
  }
  return await loadAdapter(path);
}

export async function openGenerationModel(cfg: Config, adapterPath?: string): Promise<GenerationModel> {
  const adapter = adapterPath === undefined ? null : await readAdapterDir(adapterPath);
  const source = await openModelSource(cfg);
  let lora: LoraParams | null = null;
  const warnings: string[] = [];
  if (adapter) {
    const a = adapterToParams(adapter, source.config, { baseModel: source.source });
    lora = a.params;
    warnings.push(...a.warnings);
  }
  const tok: ChatTokenizer = source.randomWeights ? tinyChatTokenizer() : await loadTokenizer(source.dir);
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
