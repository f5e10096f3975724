/**
 * A multi-turn conversation with the model on one KV-cache decoder row (src/model/decode.ts), as `maieutic chat`
 * runs it (issue #19):
 *  - every turn goes through the model's own chat template (src/tokenizer): the prompt of turn k is the
 *    template's rendering of turns 1..k with the generation prompt; a system text is folded into the first user
 *    turn exactly as the data loader folds a system message (src/data/load.ts), so a saved transcript trains
 *    on what the model saw;
 *  - the cache is kept across turns: the next turn feeds only what the template adds after the previous
 *    rendering (the closing of the model's turn, the user's turn, the next generation prompt) with
 *    Decoder.extend, on top of the keys and values the earlier turns left. The model's own tokens stay in the
 *    cache as it generated them (llama.cpp's and mlx_lm's chat do the same), not re-tokenized;
 *  - when a turn and max_new_tokens would not fit the cache, the oldest exchanges are dropped and the rest is
 *    prefilled again (the cache cannot drop its front: RoPE positions are baked into the cached keys); the
 *    reply reports how many were dropped, so the caller can say so;
 *  - tokens are handed out as text while they decode (special tokens left out, src/chat/text.ts; a
 *    byte-fallback character is held back until all its bytes are there), and an AbortSignal stops a reply between two tokens (Ctrl-C), keeping what was said.
 * Sampling is src/eval/sampling.ts (transformers' order of processors), seeded per turn.
 */
import { seededRandom } from "../util/random.ts";
import { CONTROL_MARKERS } from "../data/load.ts";
import { GENERATION_STREAM } from "../eval/generate.ts";
import {
  chooseToken,
  isPlainGreedy,
  type ResolvedSampling,
  resolveSampling,
  type SamplingOptions,
} from "../eval/sampling.ts";
import type { Decoder } from "../model/decode.ts";
import type { ChatMessage, ChatTokenizer } from "../tokenizer/tokenizer.ts";
import { replyText } from "./text.ts";

export interface ChatOptions {
  /** A system text, folded into the first user turn of the context (Gemma has no system role). */
  system?: string;
  sampling?: SamplingOptions;
  maxNewTokens: number;
  /** Seed of the sampler; turn k of a conversation draws from stream (seed, k). */
  seed: number;
}

export type ChatFinish = "stop" | "length" | "interrupted";

export interface ChatReply {
  /** The reply as decoded (special tokens left out; the model's stop token not included). */
  text: string;
  /** The generated ids (without the stop token). */
  ids: number[];
  /** Tokens generated (without the stop token). */
  tokens: number;
  finish: ChatFinish;
  /** Oldest exchanges dropped from the context to make room for this turn (0 almost always). */
  dropped: number;
  /** Tokens in the cache when the reply started (the prompt of this turn, earlier turns included). */
  promptTokens: number;
  /** true: the turn went on from the cache; false: the whole context was prefilled. */
  reusedCache: boolean;
}

export interface ReplyOptions {
  /** Text as it decodes, in pieces that concatenate to the reply. */
  onText?: (piece: string) => void;
  /** Aborting stops the reply before the next token. */
  signal?: AbortSignal;
}

/** A user turn that cannot be answered (too long for the context, or it holds a chat control token). */
export class ChatInputError extends Error {}

/** One record of the chat data format (src/data/schema.ts ChatRecordSchema). */
export interface ChatRecord {
  messages: { role: "system" | "user" | "assistant"; content: string }[];
}

interface Exchange {
  user: string;
  model: string;
}

const SENTINEL = "MAIEUTICREPLYSENTINEL";

export class ChatSession {
  /** Exchanges in the model's context (the oldest may have been dropped). */
  private context: Exchange[] = [];
  /** Every exchange since the start or the last reset (what /save writes). */
  private all: Exchange[] = [];
  /** The token ids in the decoder's cache, in order (decoder.length of them). */
  private cached: number[] = [];
  /** Tokens owed after the cache before the next turn: the last reply's unfed token and the turn's closing. */
  private owed: number[] = [];
  private turn = 0;
  private readonly sampling: ResolvedSampling;
  private readonly closing: number[];
  private readonly stop: Set<number>;

  constructor(
    private readonly decoder: Decoder,
    private readonly tok: ChatTokenizer,
    readonly options: ChatOptions,
  ) {
    if (decoder.rows !== 1) throw new RangeError(`ChatSession needs a decoder with 1 row (${decoder.rows})`);
    if (!(Number.isInteger(options.maxNewTokens) && options.maxNewTokens >= 1)) {
      throw new RangeError(`max_new_tokens must be a positive integer (got ${options.maxNewTokens})`);
    }
    if (options.maxNewTokens >= decoder.maxLen) {
      throw new RangeError(
        `max_new_tokens ${options.maxNewTokens} leaves no room for a prompt in a context of ${decoder.maxLen}`,
      );
    }
    this.sampling = resolveSampling(options.sampling);
    this.stop = new Set(tok.stopIds);
    this.closing = tok.encode(closingText(tok));
  }

  /** The exchanges since the start or the last reset. */
  get exchanges(): readonly Exchange[] {
    return this.all;
  }

  /** The tokens in the cache (tests compare them with a fresh prefill). */
  get cacheTokens(): readonly number[] {
    return this.cached;
  }

  /** Forgets the conversation (the cache is refilled by the next turn). */
  reset(): void {
    this.context = [];
    this.all = [];
    this.cached = [];
    this.owed = [];
    this.turn = 0;
  }

  /** The conversation in the chat data format, system text first (the data loader folds it again). */
  record(): ChatRecord {
    const messages: ChatRecord["messages"] = [];
    if (this.options.system?.trim()) messages.push({ role: "system", content: this.options.system });
    for (const x of this.all) {
      messages.push({ role: "user", content: x.user }, { role: "assistant", content: x.model });
    }
    return { messages };
  }

  /** The messages the template renders for `exchanges` then `user` (the system text folded into turn 1). */
  private messages(exchanges: readonly Exchange[], user?: string): ChatMessage[] {
    const m: ChatMessage[] = [];
    for (const x of exchanges) m.push({ role: "user", content: x.user }, { role: "model", content: x.model });
    if (user !== undefined) m.push({ role: "user", content: user });
    const sys = this.options.system?.trim();
    if (sys && m.length) m[0] = { role: "user", content: `${sys}\n\n${m[0].content.trim()}` };
    return m;
  }

  private promptIds(messages: readonly ChatMessage[]): number[] {
    const ids = this.tok.encode(this.tok.renderChat(messages, true));
    if (this.tok.addBosToken && ids[0] !== this.tok.bosId) ids.unshift(this.tok.bosId);
    return ids;
  }

  /** Puts the prompt of `user` after the context into the cache: extends it, or prefills after trimming. */
  private preparePrompt(user: string): { dropped: number; reusedCache: boolean } {
    const d = this.decoder;
    const room = d.maxLen - this.options.maxNewTokens;
    if (this.cached.length > 0) {
      const prev = this.tok.renderChat(this.messages(this.context), false);
      const full = this.tok.renderChat(this.messages(this.context, user), true);
      if (full.startsWith(prev)) {
        const feed = [...this.owed, ...this.tok.encode(full.slice(prev.length))];
        if (this.cached.length + feed.length <= room) {
          d.extend(feed);
          this.cached.push(...feed);
          this.owed = [];
          return { dropped: 0, reusedCache: true };
        }
      }
    }
    // Prefill: drop the oldest exchanges until the prompt and max_new_tokens fit.
    for (let drop = 0; drop <= this.context.length; drop++) {
      const ids = this.promptIds(this.messages(this.context.slice(drop), user));
      if (ids.length <= room && ids.length <= d.maxPrompt) {
        this.context = this.context.slice(drop);
        d.prefill(ids);
        this.cached = ids;
        this.owed = [];
        return { dropped: drop, reusedCache: false };
      }
      if (drop === this.context.length) {
        throw new ChatInputError(
          `the message needs ${ids.length} prompt tokens; the context holds ${room} besides the ` +
            `${this.options.maxNewTokens} new tokens (raise --context or lower --max-new-tokens)`,
        );
      }
    }
    throw new Error("unreachable");
  }

  /** Answers `user` (see the file comment). Throws ChatInputError for a message that cannot be sent. */
  async reply(user: string, o: ReplyOptions = {}): Promise<ChatReply> {
    if (user.trim() === "") throw new ChatInputError("an empty message");
    const marker = CONTROL_MARKERS.find((m) => user.includes(m));
    if (marker) throw new ChatInputError(`the message holds the chat control token ${marker}`);
    const { dropped, reusedCache } = this.preparePrompt(user);
    const promptTokens = this.cached.length;
    const d = this.decoder;
    const cfg = this.sampling;
    const rand = seededRandom(this.options.seed, GENERATION_STREAM, this.turn++);
    const history = [...this.cached];
    const ids: number[] = [];
    let shown = "";
    const show = (final: boolean) => {
      if (!o.onText) return;
      // A character split over byte-fallback tokens decodes to one U+FFFD per byte until its last byte
      // arrives (at most 3 of 4): those are held back; more are bytes that never make a character.
      let text = replyText(this.tok, ids);
      if (!final) text = text.replace(/\uFFFD{1,3}$/, "");
      if (text.length > shown.length && text.startsWith(shown)) {
        o.onText(text.slice(shown.length));
        shown = text;
      }
    };
    let finish: ChatFinish = "length";
    // The token picked last and not yet fed (the cache holds everything before it).
    let unfed: number[] = [];
    for (let t = 0; t < this.options.maxNewTokens; t++) {
      if (o.signal?.aborted) {
        finish = "interrupted";
        break;
      }
      const id = isPlainGreedy(cfg)
        ? (await d.argmax())[0]
        : chooseToken((await d.readLogits())[0], history, cfg, rand);
      if (this.stop.has(id)) {
        finish = "stop";
        break;
      }
      ids.push(id);
      history.push(id);
      show(false);
      if (t === this.options.maxNewTokens - 1 || o.signal?.aborted) {
        finish = o.signal?.aborted ? "interrupted" : "length";
        unfed = [id];
        break;
      }
      d.step([id]);
      this.cached.push(id);
    }
    show(true);
    // The next turn closes this one as the template does (its stop token, if any, is not in the cache).
    this.owed = [...unfed, ...this.closing];
    const text = replyText(this.tok, ids);
    const x = { user, model: text.trim() };
    this.context.push(x);
    this.all.push(x);
    return { text, ids, tokens: ids.length, finish, dropped, promptTokens, reusedCache };
  }
}

/** What the template writes after a model turn's content (Gemma: "<end_of_turn>\n"). */
export function closingText(tok: ChatTokenizer): string {
  const r = tok.renderChat([{ role: "user", content: "u" }, { role: "model", content: SENTINEL }], false);
  const at = r.lastIndexOf(SENTINEL);
  if (at < 0) throw new Error("the chat template drops the model turn's content");
  return r.slice(at + SENTINEL.length);
}
