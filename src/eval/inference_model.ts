/**
 * What an inference command (`maieutic eval`, `chat`, `generate`) opens before its engine: the --adapter
 * directory, read and checked first so that a bad flag exits 2 before any download or GPU work; then the model
 * source, the adapter's LoRA parameters fitted to it (with its warnings) and the tokenizer.
 */
import type { Config } from "../config/schema.ts";
import { UsageError } from "../util/errors.ts";
import { adapterToParams, loadAdapter, type LoadedAdapter } from "../lora/peft.ts";
import type { LoraParams } from "../lora/params.ts";
import { openModelSource } from "../model/session.ts";
import { tinyChatTokenizer } from "../tokenizer/tiny.ts";
import { type ChatTokenizer, loadTokenizer } from "../tokenizer/tokenizer.ts";

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

export interface InferenceSource {
  source: Awaited<ReturnType<typeof openModelSource>>;
  /** The adapter's parameters for the engine; null without an adapter. */
  lora: LoraParams | null;
  /** What adapterToParams found to warn about (e.g. another base model). */
  warnings: string[];
  tok: ChatTokenizer;
}

/** Opens the model source and fits the adapter (read by readAdapterDir; null: the base model) to it. */
export async function openInferenceSource(
  cfg: Config,
  adapter: LoadedAdapter | null,
): Promise<InferenceSource> {
  const source = await openModelSource(cfg);
  let lora: LoraParams | null = null;
  const warnings: string[] = [];
  if (adapter) {
    const a = adapterToParams(adapter, source.config, { baseModel: source.source });
    lora = a.params;
    warnings.push(...a.warnings);
  }
  const tok: ChatTokenizer = source.randomWeights ? tinyChatTokenizer() : await loadTokenizer(source.dir);
  return { source, lora, warnings, tok };
}
