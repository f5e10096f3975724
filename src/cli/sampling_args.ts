/**
 * The sampling flags of `maieutic chat` and `maieutic generate` (transformers' generate names, mlx_lm's and
 * llama.cpp's spellings): --temperature (0 = greedy), --top-p, --top-k, --repetition-penalty,
 * --max-new-tokens. Defaults: src/eval/in_training.ts DEFAULT_GENERATION's sampler (temperature 0.8, top-p
 * 0.95, top-k 50), seeded by --seed (training.seed), so a run is reproducible.
 */
import { DEFAULT_GENERATION } from "../eval/in_training.ts";
import type { SamplingOptions } from "../eval/sampling.ts";
import type { Options, Parsed } from "./args.ts";
import { UsageError } from "../util/errors.ts";

export const SAMPLING_OPTIONS = {
  temperature: { type: "string" },
  "top-p": { type: "string" },
  "top-k": { type: "string" },
  "repetition-penalty": { type: "string" },
  "max-new-tokens": { type: "string" },
} as const satisfies Options;

export function samplingHelp(maxNewTokens: number): string {
  const d = DEFAULT_GENERATION.sampling;
  return `  --temperature T          sampling temperature (default ${d.temperature}); 0 = greedy decoding
  --top-p P                nucleus sampling mass in (0, 1] (default ${d.topP})
  --top-k K                keep the K most likely tokens, 0 = off (default ${d.topK})
  --repetition-penalty R   transformers' repetition penalty, 1 = off (default 1)
  --max-new-tokens N       longest reply in tokens (default ${maxNewTokens})
  --seed S                 sampler seed (training.seed, default 42): the same seed, the same replies`;
}

function number(name: string, v: unknown, ok: (n: number) => boolean, expected: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n) || !ok(n)) {
    throw new UsageError(`--${name} expects ${expected}, got "${v}"`);
  }
  return n;
}

export function positiveIntFlag(name: string, v: unknown): number | undefined {
  return number(name, v, (n) => Number.isInteger(n) && n >= 1, "a positive integer");
}

/** The sampler the flags ask for (greedy with --temperature 0). */
export function samplingFromArgs(values: Parsed["values"]): SamplingOptions {
  const d = DEFAULT_GENERATION.sampling;
  const temperature = number("temperature", values.temperature, (n) => n >= 0, "a number >= 0") ??
    d.temperature!;
  const topP = number("top-p", values["top-p"], (n) => n > 0 && n <= 1, "a number in (0, 1]") ?? d.topP!;
  const topK = number("top-k", values["top-k"], (n) => Number.isInteger(n) && n >= 0, "an integer >= 0") ??
    d.topK!;
  const repetitionPenalty = number(
    "repetition-penalty",
    values["repetition-penalty"],
    (n) => n > 0,
    "a number > 0",
  ) ?? 1;
  if (temperature === 0) return { doSample: false, repetitionPenalty };
  return { doSample: true, temperature, topP, topK, repetitionPenalty };
}

/** "greedy" or "temperature 0.8, top-p 0.95, top-k 50", for banners and records. */
export function describeSampling(s: SamplingOptions): string {
  const rp = (s.repetitionPenalty ?? 1) !== 1 ? `, repetition penalty ${s.repetitionPenalty}` : "";
  if (!s.doSample) return `greedy${rp}`;
  return `temperature ${s.temperature}, top-p ${s.topP}, top-k ${s.topK}${rp}`;
}
