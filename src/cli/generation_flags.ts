/**
 * What `maieutic chat` and `maieutic generate` share: the config, sampling, --adapter and --context flags, read
 * and checked before any download or GPU work, and the model they open with them, its context fitted to the
 * model and to --max-new-tokens.
 */
import { CONFIG_OPTIONS, type Options, type Parsed } from "./args.ts";
import { UsageError } from "../util/errors.ts";
import { positiveIntFlag, SAMPLING_OPTIONS, samplingFromArgs } from "./sampling_args.ts";
import type { SamplingOptions } from "../eval/sampling.ts";
import type { Config } from "../config/schema.ts";
import { type GenerationModel, openGenerationModel } from "../chat/model.ts";

export const GENERATION_OPTIONS = {
  ...CONFIG_OPTIONS,
  ...SAMPLING_OPTIONS,
  adapter: { type: "string" },
  context: { type: "string" },
} as const satisfies Options;

export interface GenerationFlags {
  sampling: SamplingOptions;
  maxNewTokens: number;
  /** --context, or the command's default. */
  context: number;
  adapter?: string;
}

export function generationFlags(
  values: Parsed["values"],
  defaults: { maxNewTokens: number; context: number },
): GenerationFlags {
  return {
    sampling: samplingFromArgs(values),
    maxNewTokens: positiveIntFlag("max-new-tokens", values["max-new-tokens"]) ?? defaults.maxNewTokens,
    context: positiveIntFlag("context", values.context) ?? defaults.context,
    adapter: typeof values.adapter === "string" ? values.adapter : undefined,
  };
}

/**
 * Opens the model (+ --adapter) and its context: --context tokens, at most the model's max_position_embeddings,
 * and more than --max-new-tokens (else exit 2). The adapter's warnings go to stderr.
 */
export async function openForGeneration(
  cfg: Config,
  flags: GenerationFlags,
): Promise<{ model: GenerationModel; maxLen: number }> {
  const model = await openGenerationModel(cfg, flags.adapter);
  const maxLen = Math.min(flags.context, model.maxPositions);
  if (flags.maxNewTokens >= maxLen) {
    throw new UsageError(
      `--max-new-tokens ${flags.maxNewTokens} must be below the context of ${maxLen} tokens (raise --context)`,
    );
  }
  for (const w of model.warnings) console.error(`warning: ${w}`);
  return { model, maxLen };
}
