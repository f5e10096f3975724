/**
 * Generation for several different prompts at once, one decoder row each (`maieutic generate`): every row is
 * prefilled with its own prompt (Decoder.prefillRow) and then all rows step together, each at its own
 * position, so the weights are read once per token for the whole batch instead of once per prompt.
 *
 * Per row as src/eval/generate.ts does it for one prompt: greedy or seeded sampling (src/eval/sampling.ts),
 * the row ends at its first stop id (not part of its text) or after maxNewTokens; a finished row is fed its last
 * token until the batch is done (its output no longer changes). A row's sampler is seeded by (seed, sub) only,
 * so a reply does not depend on which other prompts share its batch. Rows the batch does not fill are given a
 * one-token prompt and ignored.
 */
import type { Decoder } from "../model/decode.ts";
import { GENERATION_STREAM, nextTokens } from "../eval/generate.ts";
import { resolveSampling, type SamplingOptions } from "../eval/sampling.ts";
import { seededRandom } from "../util/random.ts";

export interface RowPrompt {
  prompt: readonly number[];
  sampling?: SamplingOptions;
  seed?: number;
  /** The sampler's sub-stream (e.g. the sample index within its record). */
  sub?: number;
}

export interface RowGeneration {
  /** Generated ids, without the stop id. */
  ids: number[];
  finish: "stop" | "length";
}

/** Generates for every row prompt (at most decoder.rows of them); see the file comment. */
export async function generateRows(
  decoder: Decoder,
  rows: readonly RowPrompt[],
  maxNewTokens: number,
  stopIds: readonly number[],
): Promise<RowGeneration[]> {
  if (!rows.length) return [];
  if (rows.length > decoder.rows) {
    throw new RangeError(`generateRows: ${rows.length} prompts for ${decoder.rows} decoder rows`);
  }
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 1)) {
    throw new RangeError(`max_new_tokens must be a positive integer (got ${maxNewTokens})`);
  }
  for (const [i, r] of rows.entries()) {
    if (r.prompt.length + maxNewTokens - 1 > decoder.maxLen) {
      throw new RangeError(
        `generateRows: row ${i}: ${r.prompt.length} prompt + ${maxNewTokens} new tokens exceed ${decoder.maxLen}`,
      );
    }
  }
  const stop = new Set(stopIds);
  const cfg = rows.map((r) => resolveSampling(r.sampling));
  const rand = rows.map((r) => seededRandom(r.seed ?? 0, GENERATION_STREAM, r.sub ?? 0));
  const history = rows.map((r) => [...r.prompt]);
  const out: RowGeneration[] = rows.map(() => ({ ids: [], finish: "length" }));
  const done = rows.map(() => false);
  for (let b = 0; b < decoder.rows; b++) {
    decoder.prefillRow(b, b < rows.length ? rows[b].prompt : [rows[0].prompt[0]]);
  }
  for (let t = 0; t < maxNewTokens; t++) {
    const active = rows.map((_, i) => i).filter((i) => !done[i]);
    const picks = await nextTokens(decoder, { cfg, rand, history }, active, done);
    for (const i of active) {
      const id = picks[i];
      history[i].push(id);
      if (stop.has(id)) {
        done[i] = true;
        out[i].finish = "stop";
      } else {
        out[i].ids.push(id);
      }
    }
    if (done.every(Boolean) || t === maxNewTokens - 1) break;
    decoder.step(
      Array.from(
        { length: decoder.rows },
        (_, b) => b < rows.length ? history[b].at(-1)! : rows[0].prompt[0],
      ),
    );
  }
  return out;
}
