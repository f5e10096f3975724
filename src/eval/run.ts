/**
 * `maieutic eval` (docs/ARCHITECTURE.md#commands-and-exit-codes, #evaluation; issue #5 item 4): the loss of a model (+ optional PEFT adapter) on EVERY
 * dialogue of a file, with the same labels as training (src/data: chat template, model-turn targets, windows
 * of max_sequence_length, batches of per_device_eval_batch_size), and with --generate the five Socratic metrics
 * on generated responses (src/eval/in_training.ts). The report is one JSON object (stdout with --json: the eval
 * server parses exactly that, so progress goes to stderr) and is also written, atomically, to
 * `{output_dir}/{MODEL_VERSION}/evals/{timestamp}.json` (+ `{timestamp}.samples.jsonl` with --generate).
 * MODEL_VERSION is the adapter's run directory when the adapter lies inside `{output_dir or models}/{ver}/...`,
 * else the data file's stem.
 */
import { basename, isAbsolute, join, relative, resolve, sep } from "node:path";
import { UsageError } from "../util/errors.ts";
import type { Config } from "../config/schema.ts";
import { loadDialogues, makeBatches, modelVersion, sha256DataFile, tokenizeDialogues } from "../data/mod.ts";
import { openSession } from "../model/session.ts";
import { openInferenceSource, readAdapterDir } from "./inference_model.ts";
import { evalLoss } from "./loss.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { versions } from "../util/versions.ts";
import {
  DEFAULT_GENERATION,
  evalContextsFrom,
  evalMetricColumns,
  generateSamples,
  type GenerationOptions,
  writeSamplesJsonl,
} from "./in_training.ts";

export interface EvalCommandOptions {
  config: Config;
  /** A PEFT adapter directory (adapter_config.json + adapter_model.safetensors); none = the base model. */
  adapter?: string;
  generate?: boolean;
  /** Contexts to generate for (default training.eval_generate_samples). */
  maxSamples?: number;
  /** Overrides of the generation defaults (max new tokens, samples per context, ...). */
  generation?: Partial<GenerationOptions>;
  /** Progress and warnings (default: stderr). */
  log?: (line: string) => void;
  /** The report's timestamp (tests). */
  now?: Date;
}

export interface EvalReport {
  eval_loss: number;
  eval_perplexity: number;
  /** Target tokens the loss averages over. */
  eval_tokens: number;
  /** Examples (dialogue windows of max_sequence_length) evaluated. */
  eval_samples: number;
  eval_dialogues: number;
  [key: string]: unknown;
}

/**
 * MODEL_VERSION of an eval: the first directory under the output root (or under any `models` directory) that
 * holds the adapter, e.g. models/1gouki/model/checkpoint-120 → 1gouki; else the data file's stem.
 */
export function evalModelVersion(adapter: string | undefined, outputDir: string, data: string): string {
  if (adapter) {
    const abs = resolve(adapter);
    const rel = relative(resolve(outputDir), abs);
    if (rel && !rel.startsWith("..") && !isAbsolute(rel)) {
      const first = rel.split(sep)[0];
      if (first && rel.split(sep).length >= 2) return first;
    }
    const parts = abs.split(sep);
    for (let i = parts.length - 3; i >= 0; i--) if (parts[i] === "models") return parts[i + 1];
  }
  return modelVersion(data);
}

/** A file-name-safe UTC timestamp: 2025-01-02T03-04-05-678Z. */
export function reportTimestamp(d: Date): string {
  return d.toISOString().replace(/[:.]/g, "-");
}

/** Runs the evaluation; returns the report and where it was written. */
export async function runEval(o: EvalCommandOptions): Promise<{ report: EvalReport; path: string }> {
  const cfg = o.config;
  const log = o.log ?? ((s: string) => console.error(s));
  const started = performance.now();
  const when = o.now ?? new Date();

  // ---- inputs, checked before any download or GPU work ----
  const dialogues = await loadDialogues(cfg.data);
  const adapter = o.adapter === undefined ? null : await readAdapterDir(o.adapter);
  if (o.maxSamples !== undefined && !(Number.isInteger(o.maxSamples) && o.maxSamples >= 1)) {
    throw new UsageError(`--max-samples must be a positive integer (got ${o.maxSamples})`);
  }

  const { source, lora, warnings, tok } = await openInferenceSource(cfg, adapter);
  for (const w of warnings) log(`warning: ${w}`);
  const maxLen = cfg.model.max_sequence_length;
  const { examples, stats } = tokenizeDialogues(tok, dialogues, maxLen);
  const bs = cfg.training.per_device_eval_batch_size;
  const batches = makeBatches(examples, examples.map((_, i) => i), bs, tok.padId);
  const targets = batches.reduce((n, b) => n + b.targetTokens, 0);
  if (!targets) throw new UsageError(`${cfg.data}: no target tokens (no model turn survived tokenization)`);

  // ---- model and loss ----
  const seqMax = Math.max(...examples.map((e) => e.inputIds.length));
  const session = await openSession(cfg, { maxBatch: bs, maxSeq: seqMax, training: false, lora, source });
  const { engine } = session;
  log(
    `eval: ${source.source} (${session.model.quantized ? "NF4" : "dense"}, ${engine.opts.compute} operands)` +
      `${adapter ? ` + adapter ${o.adapter}` : ""} on ${cfg.data}: ${dialogues.length} dialogues, ` +
      `${examples.length} examples, ${batches.length} batches`,
  );
  const { lossSum, count } = await evalLoss(engine, batches);
  const eval_loss = lossSum / count;
  const report: EvalReport = {
    eval_loss,
    eval_perplexity: Math.exp(eval_loss),
    eval_tokens: count,
    eval_samples: examples.length,
    eval_dialogues: dialogues.length,
  };

  // ---- generation ----
  const version = evalModelVersion(o.adapter, cfg.output_dir, cfg.data);
  const stamp = reportTimestamp(when);
  const dir = join(cfg.output_dir, version, "evals");
  const path = join(dir, `${stamp}.json`);
  let samplesPath: string | null = null;
  let generation: Record<string, unknown> | null = null;
  if (o.generate) {
    const gopts: Partial<GenerationOptions> = {
      contexts: o.maxSamples ?? cfg.training.eval_generate_samples,
      consistencySamples: cfg.training.eval_consistency_samples,
      maxNewTokensCap: cfg.training.eval_max_new_tokens,
      seed: cfg.training.seed,
      maxPromptTokens: maxLen,
      ...o.generation,
    };
    const contexts = evalContextsFrom(dialogues);
    const g = await generateSamples(engine, tok, contexts, gopts, (i, n) => log(`generating ${i}/${n}`));
    Object.assign(report, evalMetricColumns(g.metrics));
    samplesPath = join(dir, `${stamp}.samples.jsonl`);
    await writeSamplesJsonl(samplesPath, g.records);
    const eff = { ...DEFAULT_GENERATION, ...gopts };
    generation = {
      contexts: g.samples.length,
      available_contexts: contexts.length,
      skipped_contexts: g.skipped,
      consistency_samples: eff.consistencySamples,
      max_new_tokens: g.maxNewTokens,
      max_new_tokens_derived: eff.maxNewTokens === undefined,
      finish: g.finish,
      sampling: eff.sampling,
      seed: eff.seed,
      new_tokens: g.timing.newTokens,
      seconds: g.timing.seconds,
      tokens_per_second: g.timing.tokensPerSecond,
      samples_path: samplesPath,
    };
  }

  Object.assign(report, {
    model_version: version,
    timestamp: when.toISOString(),
    model: {
      name: cfg.model.name,
      source: source.source,
      revision: source.revision ?? null,
      quantized: session.model.quantized,
      compute: engine.opts.compute,
      random_weights: source.randomWeights,
    },
    adapter: adapter
      ? {
        path: resolve(adapter.dir),
        base_model_name_or_path: adapter.config.base_model_name_or_path,
        r: adapter.config.r,
        lora_alpha: adapter.config.lora_alpha,
        target_modules: adapter.config.target_modules,
      }
      : null,
    data: { path: resolve(cfg.data), file: basename(cfg.data), sha256: await sha256DataFile(cfg.data) },
    tokenize: stats,
    generation,
    warnings,
    runtime_seconds: (performance.now() - started) / 1000,
    report_path: path,
    config: cfg,
    versions: versions(),
  });
  await writeJsonAtomic(path, report);
  return { report, path };
}

/** The human-readable summary printed without --json. */
export function formatReport(r: EvalReport): string {
  const m = r.model as { source: string; quantized: boolean; compute: string };
  const a = r.adapter as { path: string } | null;
  const lines = [
    `eval of ${m.source} (${m.quantized ? "NF4" : "dense"}, ${m.compute})${
      a ? ` + adapter ${a.path}` : " (no adapter)"
    }`,
    `  data             ${
      (r.data as { path: string }).path
    }: ${r.eval_dialogues} dialogues, ${r.eval_samples} examples, ${r.eval_tokens} target tokens`,
    `  eval_loss        ${r.eval_loss.toFixed(4)}`,
    `  eval_perplexity  ${r.eval_perplexity.toFixed(3)}`,
  ];
  const g = r.generation as { contexts: number; tokens_per_second: number; samples_path: string } | null;
  if (g) {
    lines.push(`  generated for ${g.contexts} contexts (${g.tokens_per_second.toFixed(1)} tokens/s)`);
    for (const [k, v] of Object.entries(r)) {
      if (
        k.startsWith("eval_") &&
        !["eval_loss", "eval_perplexity", "eval_tokens", "eval_samples", "eval_dialogues"].includes(k)
      ) {
        lines.push(`  ${k.padEnd(34)} ${(v as number).toFixed(4)}`);
      }
    }
    lines.push(`  samples          ${g.samples_path}`);
  }
  lines.push(`  report           ${r.report_path}`);
  return lines.join("\n");
}
