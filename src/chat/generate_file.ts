/**
 * `maieutic generate` (issue #19): a reply to every record of a dialogue file, written as chat records.
 *
 * Each record is read by the data loader (chat, ShareGPT or pairs; JSON or JSON Lines; a system message
 * already folded into the first user turn). Its prompt is the conversation up to its LAST user turn, rendered
 * with the model's chat template and the generation prompt (src/eval/generate.ts chatPrompt); a model turn after
 * it, when the record has one, is kept as the gold `reference`. A prompt longer than the budget loses its
 * oldest exchanges first (`dropped_exchanges`); a record whose last user turn alone does not fit is left out
 * and counted.
 *
 * Records are decoded in batches through the KV-cache decoder (src/chat/batch.ts): each of a record's K samples
 * is a row, and as many records as fit `batch` rows share one forward per token, each row at its own position
 * (Decoder.prefillRow). A row's sampler is seeded by (seed, record index, sample index), so a record's replies
 * do not depend on which other records are in the file or the batch.
 *
 * Replies are decoded without special tokens (src/chat/text.ts). Output, one JSON line per record
 * (src/data/schema.ts ChatRecordSchema plus fields the loader ignores):
 *   {"messages": [...context, {"role": "assistant", "content": reply}], "reference"?: gold reply,
 *    "samples"?: [the other K − 1 replies] (K > 1), "index": record index,
 *    "finish": "stop" | "length", "prompt_tokens", "generated_tokens", "dropped_exchanges"}
 * so `maieutic score` scores the last assistant turn against its reference, `--data` trains on it, and two
 * adapters' files can be read side by side (same order, same `index`).
 */
import type { Dialogue } from "../data/schema.ts";
import { mix32 } from "../util/random.ts";
import { chatPrompt } from "../eval/generate.ts";
import { generateRows } from "./batch.ts";
import type { SamplingOptions } from "../eval/sampling.ts";
import { Decoder } from "../model/decode.ts";
import type { Gemma2Engine } from "../model/engine.ts";
import type { ChatMessage, ChatTokenizer } from "../tokenizer/tokenizer.ts";
import { writeFileAtomic } from "../util/atomic.ts";
import { replyText } from "./text.ts";

export interface GenerateFileOptions {
  samples: number;
  sampling: SamplingOptions;
  maxNewTokens: number;
  seed: number;
  /** Prompt + new tokens the decoder may hold. */
  maxLen: number;
  /** Decoder rows per batch (records × samples); records of one batch are decoded side by side. */
  batch: number;
}

export interface GeneratedRecord {
  messages: { role: "user" | "assistant"; content: string }[];
  reference?: string;
  samples?: string[];
  index: number;
  finish: "stop" | "length";
  prompt_tokens: number;
  generated_tokens: number;
  dropped_exchanges: number;
}

export interface GenerateFileResult {
  records: GeneratedRecord[];
  /** Record indices left out: even their last user turn does not fit the prompt budget. */
  skipped: number[];
  newTokens: number;
  seconds: number;
}

interface Job {
  index: number;
  context: ChatMessage[];
  reference?: string;
  ids: number[];
  dropped: number;
}

/** The prompt of a record (see the file comment), or null when the last user turn alone is too long. */
export function recordPrompt(
  tok: ChatTokenizer,
  d: Dialogue,
  maxPromptTokens: number,
): Omit<Job, "index"> | null {
  let last = -1;
  d.turns.forEach((t, k) => {
    if (t.role === "user") last = k;
  });
  const all: ChatMessage[] = d.turns.slice(0, last + 1).map((t) => ({ role: t.role, content: t.content }));
  const reference = d.turns[last + 1]?.content;
  for (let drop = 0; 2 * drop < all.length; drop++) {
    const context = all.slice(2 * drop);
    const ids = chatPrompt(tok, context);
    if (ids.length <= maxPromptTokens) return { context, reference, ids, dropped: drop };
  }
  return null;
}

const asChat = (m: ChatMessage) => ({
  role: m.role === "model" ? "assistant" as const : "user" as const,
  content: m.content,
});

/** Generates for every dialogue; `onProgress(done, total, newTokens)` after each record. */
export async function generateForDialogues(
  engine: Gemma2Engine,
  tok: ChatTokenizer,
  dialogues: readonly Dialogue[],
  o: GenerateFileOptions,
  onProgress?: (done: number, total: number, newTokens: number) => void,
): Promise<GenerateFileResult> {
  if (!(Number.isInteger(o.samples) && o.samples >= 1)) {
    throw new RangeError(`samples must be >= 1 (${o.samples})`);
  }
  const budget = o.maxLen - o.maxNewTokens + 1;
  if (budget < 1) {
    throw new RangeError(`max_new_tokens ${o.maxNewTokens} leaves no prompt room in ${o.maxLen}`);
  }
  const jobs: Job[] = [];
  const skipped: number[] = [];
  for (const d of dialogues) {
    const p = recordPrompt(tok, d, budget);
    if (p) jobs.push({ index: d.index, ...p });
    else skipped.push(d.index);
  }
  const records: GeneratedRecord[] = [];
  const t0 = performance.now();
  let newTokens = 0;
  if (jobs.length) {
    // Records per batch: as many as fit `batch` rows with their K samples each (at least one).
    const perBatch = Math.max(1, Math.floor(o.batch / o.samples));
    const rows = Math.min(perBatch, jobs.length) * o.samples;
    const maxPrompt = Math.max(...jobs.map((j) => j.ids.length));
    const decoder = new Decoder(engine, { rows, maxLen: maxPrompt + o.maxNewTokens - 1, maxPrompt });
    try {
      for (let start = 0; start < jobs.length; start += perBatch) {
        const batch = jobs.slice(start, start + perBatch);
        const out = await generateRows(
          decoder,
          batch.flatMap((j) => {
            const seed = mix32((o.seed >>> 0) ^ mix32(j.index));
            return Array.from(
              { length: o.samples },
              (_, k) => ({ prompt: j.ids, sampling: o.sampling, seed, sub: k }),
            );
          }),
          o.maxNewTokens,
          tok.stopIds,
        );
        batch.forEach((j, n) => {
          const mine = out.slice(n * o.samples, (n + 1) * o.samples);
          newTokens += mine.reduce((a, x) => a + x.ids.length, 0);
          const replies = mine.map((x) => replyText(tok, x.ids).trim());
          records.push({
            messages: [...j.context.map(asChat), { role: "assistant", content: replies[0] }],
            ...(j.reference !== undefined ? { reference: j.reference } : {}),
            ...(o.samples > 1 ? { samples: replies.slice(1) } : {}),
            index: j.index,
            finish: mine[0].finish,
            prompt_tokens: j.ids.length,
            generated_tokens: mine[0].ids.length,
            dropped_exchanges: j.dropped,
          });
        });
        onProgress?.(Math.min(jobs.length, start + perBatch), jobs.length, newTokens);
      }
    } finally {
      decoder.destroy();
    }
  }
  return { records, skipped, newTokens, seconds: (performance.now() - t0) / 1000 };
}

/** The records as JSON Lines, written atomically. */
export async function writeGeneratedJsonl(path: string, records: readonly GeneratedRecord[]): Promise<void> {
  await writeFileAtomic(path, records.map((r) => JSON.stringify(r) + "\n").join(""));
}
