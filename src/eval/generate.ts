/**
 * Text generation with the KV-cache decoder (src/model/decode.ts), as transformers' `generate` with
 * `max_new_tokens`, greedy or seeded sampling (src/eval/sampling.ts) and stopping on the tokenizer's stop ids
 * (`<eos>` and `<end_of_turn>`, generation_config.json's eos_token_id).
 *
 * Several continuations of ONE prompt run side by side, one decoder row each (the greedy response and the K
 * samples of response_consistency share one prefill and one forward per step). Each step reads back once:
 * 4 bytes per row (GPU argmax) when every unfinished row is plain greedy, else the logits rows.
 * A row ends at its first stop id (not part of its text) or after maxNewTokens tokens; finished rows are fed
 * their last token until every row is done (their outputs no longer change).
 */
import type { Decoder } from "../model/decode.ts";
import type { ChatMessage, ChatTokenizer } from "../tokenizer/tokenizer.ts";
import { seededRandom } from "../util/random.ts";
import {
  chooseToken,
  isPlainGreedy,
  type ResolvedSampling,
  resolveSampling,
  type SamplingOptions,
} from "./sampling.ts";

/** The PRNG stream of generation (src/util/random.ts seededRandom streams are per purpose). */
export const GENERATION_STREAM = 0x67656e; // "gen"

export interface RowRequest {
  /** Greedy when omitted or doSample is false. */
  sampling?: SamplingOptions;
  /** Seed of this row's sampler (row r of a request with the same seed always draws the same numbers). */
  seed?: number;
}

export interface GenerateRequest {
  prompt: readonly number[];
  maxNewTokens: number;
  stopIds: readonly number[];
  /** One entry per continuation; at most decoder.rows. Default: one greedy row. */
  rows?: RowRequest[];
}

export interface Generation {
  /** Generated ids, without the stop id. */
  ids: number[];
  text: string;
  /** "stop": a stop id ended it (stopId); "length": maxNewTokens reached. */
  finish: "stop" | "length";
  stopId?: number;
}

export interface GenerationTiming {
  promptTokens: number;
  /** Decode steps run (forward passes after the prefill). */
  steps: number;
  /** Tokens generated over all rows (stop ids included). */
  newTokens: number;
  prefillMs: number;
  decodeMs: number;
  /** Tokens per second of the decode phase: tokens after each row's first (which comes from the prefill),
   *  over all rows, per second after the first readback. */
  tokensPerSecond: number;
}

export interface GenerateResult {
  outputs: Generation[];
  timing: GenerationTiming;
}

/** The decoder rows' sampling state: each row's sampler, its PRNG and its ids so far (prompt included). */
export interface RowSamplers {
  cfg: readonly ResolvedSampling[];
  rand: readonly (() => number)[];
  history: readonly number[][];
}

/**
 * The next token of each unfinished row (`done[i]` false): one readback of 4 bytes per row (GPU argmax) when
 * every unfinished row is plain greedy, else of the logits rows, sampled per row. Finished rows get -1 when
 * sampled (their pick is not used).
 */
export async function nextTokens(
  decoder: Decoder,
  rows: RowSamplers,
  active: readonly number[],
  done: readonly boolean[],
): Promise<number[]> {
  if (active.every((i) => isPlainGreedy(rows.cfg[i]))) return await decoder.argmax();
  const logits = await decoder.readLogits();
  return done.map((d, i) => d ? -1 : chooseToken(logits[i], rows.history[i], rows.cfg[i], rows.rand[i]));
}

/** Generates continuations of `req.prompt` (see the file comment). */
export async function generate(
  decoder: Decoder,
  tok: Pick<ChatTokenizer, "decode">,
  req: GenerateRequest,
): Promise<GenerateResult> {
  const rows = req.rows?.length ? req.rows : [{}];
  if (rows.length > decoder.rows) {
    throw new RangeError(`generate: ${rows.length} continuations but the decoder has ${decoder.rows} rows`);
  }
  if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1) {
    throw new RangeError(`max_new_tokens must be a positive integer (got ${req.maxNewTokens})`);
  }
  const need = req.prompt.length + req.maxNewTokens - 1;
  if (need > decoder.maxLen) {
    throw new RangeError(
      `generate: ${req.prompt.length} prompt + ${req.maxNewTokens} new tokens need ${need} cache positions, ` +
        `the decoder has ${decoder.maxLen}`,
    );
  }
  const stop = new Set(req.stopIds);
  const cfg: ResolvedSampling[] = rows.map((r) => resolveSampling(r.sampling));
  const rand = rows.map((r, i) => seededRandom(r.seed ?? 0, GENERATION_STREAM, i));
  const history = rows.map(() => [...req.prompt]);
  const out = rows.map(() => ({
    ids: [] as number[],
    finish: "length" as "stop" | "length",
    stopId: undefined as number | undefined,
  }));
  const done = rows.map(() => false);
  const t0 = performance.now();
  decoder.prefill(req.prompt);
  let prefillMs = 0;
  let steps = 0;
  let newTokens = 0;
  for (let t = 0; t < req.maxNewTokens; t++) {
    const active = rows.map((_, i) => i).filter((i) => !done[i]);
    const picks = await nextTokens(decoder, { cfg, rand, history }, active, done);
    if (t === 0) prefillMs = performance.now() - t0;
    for (const i of active) {
      const id = picks[i];
      newTokens++;
      history[i].push(id);
      if (stop.has(id)) {
        done[i] = true;
        out[i].finish = "stop";
        out[i].stopId = id;
      } else {
        out[i].ids.push(id);
      }
    }
    if (done.slice(0, rows.length).every(Boolean) || t === req.maxNewTokens - 1) break;
    const feed = Array.from(
      { length: decoder.rows },
      (_, i) => i < rows.length ? history[i][history[i].length - 1] : 0,
    );
    decoder.step(feed);
    steps++;
  }
  const decodeMs = performance.now() - t0 - prefillMs;
  const outputs = out.map((o) => ({ ...o, text: tok.decode(o.ids) }));
  for (const o of outputs) if (o.stopId === undefined) delete o.stopId;
  return {
    outputs,
    timing: {
      promptTokens: req.prompt.length,
      steps,
      newTokens,
      prefillMs,
      decodeMs,
      tokensPerSecond: decodeMs > 0 ? (newTokens - rows.length) / (decodeMs / 1000) : 0,
    },
  };
}

/** The prompt of a chat context: rendered with the generation prompt, encoded without added specials. */
export function chatPrompt(tok: ChatTokenizer, context: readonly ChatMessage[]): number[] {
  const ids = tok.encode(tok.renderChat(context, true));
  if (tok.addBosToken && ids[0] !== tok.bosId) ids.unshift(tok.bosId);
  return ids;
}
