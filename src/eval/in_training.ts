/**
 * Evaluation at the trainer's eval steps and in `maieutic eval` (docs/ARCHITECTURE.md#evaluation, issue #7):
 *  - eval_loss: the token-weighted mean NLL over every target token of the eval batches, and its perplexity
 *    (src/eval/loss.ts evalLoss: forward only, one readback);
 *  - then, when generation is on, for up to `contexts` eval contexts (32 by default; a dialogue up to one of
 *    its model turns, rendered with the generation prompt; the reference is that model turn): one greedy
 *    response and K seeded samples from the KV-cache decoder (src/eval/generate.ts, all K+1 in one batch), with
 *    max_new_tokens derived from the longest reference (capped), scored with the Socratic figures of
 *    src/eval/metrics.ts (docs/socratic_metrics.md; `eval_<name>` = "eval_" + EVAL_METRICS), the greedy
 *    reply's finish reason feeding the degenerate gate (cut off at the token limit) and counted;
 *  - the samples (context, reference, generated, K samples, per-turn scores) go to
 *    `{logsDir}/samples/step-{step}.jsonl`, written atomically.
 * Contexts are picked evenly across the list (deterministic), and the sampling seeds depend only on the seed
 * and the context, so successive eval steps compare like with like.
 */
import { join } from "node:path";
import type { Dialogue } from "../data/mod.ts";
import { mix32 } from "../util/random.ts";
import { Decoder } from "../model/decode.ts";
import type { Gemma2Engine } from "../model/engine.ts";
import { EVAL_METRICS } from "../report/metrics_csv.ts";
import type { ChatMessage, ChatTokenizer } from "../tokenizer/tokenizer.ts";
import { evalLoss, type EvalResult, type LossBatch as TrainBatch } from "./loss.ts";
import { writeFileAtomic } from "../util/atomic.ts";
import { UsageError } from "../util/errors.ts";
import { chatPrompt, generate, type Generation } from "./generate.ts";
import { type EvalSample, REPLY_FIGURES, scoreSamplesDetailed, type SocraticMetrics } from "./metrics.ts";
import type { SamplingOptions } from "./sampling.ts";

/** One generation prompt: the dialogue before a model turn, and that turn as the reference. */
export interface EvalContext {
  /** user, model, ..., user (the turns before the reference). */
  context: ChatMessage[];
  reference: string;
  /** The dialogue's record index in its file, and the index of the reference turn in the dialogue. */
  dialogueIndex: number;
  turn: number;
}

/** Every (dialogue, model turn) of the dialogues as an eval context, in file order. */
export function evalContextsFrom(dialogues: readonly Dialogue[]): EvalContext[] {
  const out: EvalContext[] = [];
  for (const d of dialogues) {
    d.turns.forEach((t, k) => {
      if (t.role !== "model") return;
      out.push({
        context: d.turns.slice(0, k).map((x) => ({ role: x.role, content: x.content })),
        reference: t.content,
        dialogueIndex: d.index,
        turn: k,
      });
    });
  }
  return out;
}

/** Up to n contexts spread evenly over the list (index ⌊i·len/n⌋), so several dialogues are covered. */
export function pickContexts<T>(all: readonly T[], n: number): T[] {
  if (n >= all.length) return [...all];
  return Array.from({ length: Math.max(0, n) }, (_, i) => all[Math.floor((i * all.length) / n)]);
}

export interface GenerationOptions {
  /** Contexts to generate for (training.eval_generate_samples); 0 = no generation. */
  contexts: number;
  /** Seeded samples per context for response_consistency (K; training.eval_consistency_samples); 0 = greedy only. */
  consistencySamples: number;
  /** Fixed max_new_tokens; when absent it is derived from the longest reference (`deriveMaxNewTokens`). */
  maxNewTokens?: number;
  /** Cap of the derived max_new_tokens (training.eval_max_new_tokens). */
  maxNewTokensCap: number;
  /** Sampler of the K samples (doSample is implied). */
  sampling: SamplingOptions;
  /** Repetition penalty of the greedy response (1 = plain argmax on the GPU). */
  greedyRepetitionPenalty: number;
  seed: number;
  /** Prompts longer than this lose their oldest exchanges first (model.max_sequence_length). */
  maxPromptTokens: number;
}

/**
 * Defaults: 32 contexts (a mean of 32 binary values has a standard error of at most 0.09, against 0.18 for 8),
 * 3 samples (one batch of 4 rows per context), max_new_tokens derived from the references up to 256, nucleus
 * sampling at temperature 0.8 (top_k 50 is transformers' default; top_p 0.95).
 */
export const DEFAULT_GENERATION: GenerationOptions = {
  contexts: 32,
  consistencySamples: 3,
  maxNewTokensCap: 256,
  sampling: { doSample: true, temperature: 0.8, topK: 50, topP: 0.95, repetitionPenalty: 1 },
  greedyRepetitionPenalty: 1,
  seed: 42,
  maxPromptTokens: 512,
};

/** One line of the samples file. */
export interface SampleRecord {
  step?: number;
  dialogue_index: number;
  turn: number;
  context: ChatMessage[];
  reference: string;
  generated: string;
  samples: string[];
  finish: Generation["finish"];
  /** The greedy reply's degenerate reason (null: it passed the gate) and question form. */
  degenerate: string | null;
  question_form: string;
  generated_tokens: number;
  prompt_tokens: number;
  /** Exchanges dropped from the start of the context to fit maxPromptTokens. */
  dropped_exchanges: number;
  /** The per-reply figures (REPLY_FIGURES) of the greedy reply, and response_consistency/distinct_2 over the K samples. */
  scores: Record<string, number | null>;
}

export interface GeneratedSamples {
  samples: EvalSample[];
  records: SampleRecord[];
  metrics: SocraticMetrics;
  /** Contexts left out because even their last user turn does not fit maxPromptTokens. */
  skipped: number;
  /** The max_new_tokens used, and how the greedy replies ended. */
  maxNewTokens: number;
  finish: Record<Generation["finish"], number>;
  timing: { seconds: number; newTokens: number; tokensPerSecond: number };
}

/** The context's prompt, dropping leading exchanges until it fits; null when the last user turn alone does not. */
function fitPrompt(
  tok: ChatTokenizer,
  c: EvalContext,
  maxTokens: number,
): { ids: number[]; context: ChatMessage[]; dropped: number } | null {
  for (let drop = 0; 2 * drop < c.context.length; drop++) {
    const context = c.context.slice(2 * drop);
    const ids = chatPrompt(tok, context);
    if (ids.length <= maxTokens) return { ids, context, dropped: drop };
  }
  return null;
}

/** Greedy + K samples for each context, scored (see the file comment). */
export async function generateSamples(
  engine: Gemma2Engine,
  tok: ChatTokenizer,
  contexts: readonly EvalContext[],
  options: Partial<GenerationOptions> = {},
  onProgress?: (done: number, total: number) => void,
): Promise<GeneratedSamples> {
  const o = { ...DEFAULT_GENERATION, ...options };
  const K = o.consistencySamples;
  if (!Number.isInteger(K) || K < 0) throw new RangeError(`consistency samples must be >= 0 (got ${K})`);
  const chosen = pickContexts(contexts, o.contexts);
  const maxNewTokens = o.maxNewTokens ??
    deriveMaxNewTokens(chosen.map((c) => tok.encode(c.reference).length), o.maxNewTokensCap);
  const prompts = chosen.map((c) => fitPrompt(tok, c, Math.max(1, o.maxPromptTokens - maxNewTokens)));
  const usable = chosen.map((c, i) => ({ c, p: prompts[i] })).filter((x) => x.p !== null) as {
    c: EvalContext;
    p: NonNullable<ReturnType<typeof fitPrompt>>;
  }[];
  const samples: EvalSample[] = [];
  const records: Omit<SampleRecord, "scores" | "degenerate" | "question_form">[] = [];
  const start = performance.now();
  let newTokens = 0;
  if (usable.length) {
    const maxPrompt = Math.max(...usable.map((u) => u.p.ids.length));
    const decoder = new Decoder(engine, {
      rows: 1 + K,
      maxLen: maxPrompt + maxNewTokens - 1,
      maxPrompt,
    });
    try {
      for (const [n, { c, p }] of usable.entries()) {
        const ctxSeed = mix32((o.seed >>> 0) ^ mix32(c.dialogueIndex * 4096 + c.turn));
        const r = await generate(decoder, tok, {
          prompt: p.ids,
          maxNewTokens,
          stopIds: tok.stopIds,
          rows: [
            { sampling: { doSample: false, repetitionPenalty: o.greedyRepetitionPenalty } },
            ...Array.from(
              { length: K },
              () => ({ sampling: { ...o.sampling, doSample: true }, seed: ctxSeed }),
            ),
          ],
        });
        newTokens += r.timing.newTokens;
        const [greedy, ...rest] = r.outputs;
        const context = p.context.map((m) => ({ role: m.role, content: m.content }));
        samples.push({
          context,
          reference: c.reference,
          generated: greedy.text.trim(),
          finish: greedy.finish,
          samples: rest.map((s) => s.text.trim()),
          samplesFinish: rest.map((s) => s.finish),
        });
        records.push({
          dialogue_index: c.dialogueIndex,
          turn: c.turn,
          context,
          reference: c.reference,
          generated: greedy.text.trim(),
          samples: rest.map((s) => s.text.trim()),
          finish: greedy.finish,
          generated_tokens: greedy.ids.length,
          prompt_tokens: p.ids.length,
          dropped_exchanges: p.dropped,
        });
        onProgress?.(n + 1, usable.length);
      }
    } finally {
      decoder.destroy();
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const scored = scoreSamplesDetailed(samples);
  const finish = { stop: 0, length: 0 };
  for (const r of records) finish[r.finish]++;
  return {
    samples,
    records: records.map((r, i) => {
      const s = scored.replies[i];
      return {
        ...r,
        degenerate: s.degenerate,
        question_form: s.question_form,
        scores: {
          ...Object.fromEntries(REPLY_FIGURES.map((m) => [m, s.figures[m]])),
          response_consistency: s.response_consistency,
          distinct_2: s.distinct_2,
        },
      };
    }),
    metrics: scored.metrics,
    skipped: chosen.length - usable.length,
    maxNewTokens,
    finish,
    timing: { seconds, newTokens, tokensPerSecond: seconds > 0 ? newTokens / seconds : 0 },
  };
}

/**
 * max_new_tokens from the references' token counts: 1.25 × the longest + 8 (room for a reply a little longer
 * than any reference, so a good reply is not cut off before its question), at most `cap`, at least 8.
 */
export function deriveMaxNewTokens(referenceTokens: readonly number[], cap: number): number {
  const longest = referenceTokens.length ? Math.max(...referenceTokens) : 0;
  return Math.max(1, Math.min(cap, Math.max(8, Math.ceil(1.25 * longest) + 8)));
}

/** Writes the records as JSON Lines, atomically. */
export async function writeSamplesJsonl(path: string, records: readonly SampleRecord[]): Promise<void> {
  await writeFileAtomic(
    path,
    records.map((r) => JSON.stringify(r)).join("\n") + (records.length ? "\n" : ""),
  );
}

/** Columns where higher is better: a checkpoint may be chosen by them (the failure rates go the other way). */
export const BEST_MODEL_FIGURES = [
  "socratic_score",
  "socratic_question_rate",
  "style_consistency",
  "dialogue_flow",
  "response_consistency",
] as const;

/**
 * Checks training.metric_for_best_model (UsageError, exit 2): eval_loss / eval_perplexity (lower is better), or
 * an eval_* figure where higher is better, which needs generation at eval time (eval_generate_samples > 0).
 */
export function checkBestMetric(name: string, generationContexts: number): void {
  if (name === "eval_loss" || name === "eval_perplexity") return;
  const ok = BEST_MODEL_FIGURES.map((f) => `eval_${f}`);
  if (!ok.includes(name)) {
    const rate = EVAL_METRICS.some((m) => `eval_${m}` === name);
    throw new UsageError(
      `training.metric_for_best_model: ${JSON.stringify(name)} ${
        rate ? "is not a figure where higher is better" : "is not a column of training_metrics.csv"
      }; use eval_loss, eval_perplexity or one of ${ok.join(", ")} (docs/socratic_metrics.md)`,
    );
  }
  if (generationContexts <= 0) {
    throw new UsageError(
      `training.metric_for_best_model=${name} needs generation at eval time: set training.eval_generate_samples > 0`,
    );
  }
}

/** The eval_* figures of a log entry (an eval step), for the training summary; null without any. */
export function socraticColumns(
  entry: Record<string, number | undefined> | undefined,
): Record<string, number> | null {
  if (!entry) return null;
  const out = Object.fromEntries(
    EVAL_METRICS.map((m) => [`eval_${m}`, entry[`eval_${m}`]]).filter(([, v]) => v !== undefined),
  ) as Record<string, number>;
  return Object.keys(out).length ? out : null;
}

/** The aggregate figures under their CSV names: eval_socratic_question_rate, eval_socratic_score, ... */
export function evalMetricColumns(m: SocraticMetrics): Record<string, number> {
  return Object.fromEntries(EVAL_METRICS.map((k) => [`eval_${k}`, m[k]]));
}

export interface EvaluateStepOptions {
  step: number;
  /** The run's logs directory: samples go to {logsDir}/samples/step-{step}.jsonl (null: not written). */
  logsDir?: string | null;
  /** Generation settings; null or contexts 0 = eval loss only. */
  generation?: Partial<GenerationOptions> | null;
  onProgress?: (done: number, total: number) => void;
}

/**
 * The trainer's eval hook: eval_loss and eval_perplexity over `evalBatches` (no dropout), plus, with
 * generation, the five `eval_*` Socratic metrics over up to `generation.contexts` of `evalContexts`.
 */
export async function evaluateStep(
  engine: Gemma2Engine,
  tok: ChatTokenizer,
  evalBatches: TrainBatch[],
  evalContexts: readonly EvalContext[],
  opts: EvaluateStepOptions,
): Promise<EvalResult> {
  const { lossSum, count } = await evalLoss(engine, evalBatches);
  const eval_loss = count > 0 ? lossSum / count : NaN;
  const result: EvalResult = { eval_loss, eval_perplexity: Math.exp(eval_loss) };
  const gen = opts.generation;
  const n = gen ? gen.contexts ?? DEFAULT_GENERATION.contexts : 0;
  if (!gen || n <= 0 || !evalContexts.length) return result;
  const g = await generateSamples(engine, tok, evalContexts, gen, opts.onProgress);
  if (!g.samples.length) return result;
  Object.assign(result, evalMetricColumns(g.metrics));
  if (opts.logsDir) {
    await writeSamplesJsonl(
      join(opts.logsDir, "samples", `step-${opts.step}.jsonl`),
      g.records.map((r) => ({ step: opts.step, ...r })),
    );
  }
  return result;
}
