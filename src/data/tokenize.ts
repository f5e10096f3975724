/**
 * Dialogues to training examples (docs/ARCHITECTURE.md#data). The conversation is rendered by the model's own chat template
 * and tokenized once, without adding special tokens (the template's <bos> is the only one). Labels are found by
 * render-prefix: rendering the turns before a model turn with the generation prompt gives the character where
 * that turn's content starts; the template's end-of-turn marker after it ends the span. Character positions
 * become token positions by encoding the prefix and matching it against the full encoding, which also catches
 * a token merged across the boundary (counted; the token is kept as a target). Targets: each model turn's
 * (template-trimmed) content and its <end_of_turn>; everything else is -100.
 *
 * Length: a dialogue longer than maxLen is split at exchange boundaries (user + model) into windows that each
 * start with the template header (<bos>) and a user turn; an exchange that alone does not fit is cut at the
 * right. Splits, cuts and dropped exchanges (no target left after the cut) are counted.
 */
import { UsageError } from "../util/errors.ts";
import type { ChatMessage, ChatTokenizer } from "../tokenizer/tokenizer.ts";
import type { Dialogue } from "./schema.ts";

/** The label of a position without a target: transformers' CrossEntropyLoss ignore_index. */
export const IGNORE_INDEX = -100;

export interface Example {
  inputIds: number[];
  /** Aligned with inputIds (not shifted; the model shifts): the token id where it is a target, else -100. */
  labels: number[];
  /** Index of the dialogue (== Dialogue.index, its record in the file). */
  dialogueIndex: number;
  /** 0-based window of its dialogue, and how many windows the dialogue gave. */
  window: number;
  windows: number;
  /** Turns [start, end) of the dialogue in this example. */
  turnStart: number;
  turnEnd: number;
  /** Cut at the right to maxLen (a single exchange longer than maxLen). */
  truncated: boolean;
}

export interface TokenizeStats {
  dialogues: number;
  examples: number;
  /** Dialogues split into more than one window. */
  splitDialogues: number;
  /** Exchanges cut at the right (each is one example). */
  cutExchanges: number;
  /** Exchanges dropped because even the cut left no target token (the user turn alone fills maxLen). */
  droppedExchanges: number;
  /** A final user turn with no model reply after it carries no target and is left out. */
  droppedTrailingUserTurns: number;
  /** Target spans whose first token was merged across the boundary with the template text before it. */
  boundaryMerges: number;
}

export function newTokenizeStats(): TokenizeStats {
  return {
    dialogues: 0,
    examples: 0,
    splitDialogues: 0,
    cutExchanges: 0,
    droppedExchanges: 0,
    droppedTrailingUserTurns: 0,
    boundaryMerges: 0,
  };
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** The full encoding of one rendered dialogue with its turn boundaries and labels. */
export interface EncodedDialogue {
  ids: number[];
  labels: number[];
  /** Tokens of the template header before the first turn (Gemma: <bos>). */
  headerEnd: number;
  /** turnEnds[k]: token index just after turn k (including the template's separator after it). */
  turnEnds: number[];
  boundaryMerges: number;
}

/**
 * Renders and encodes a dialogue (user first, alternating) and finds its target spans. Throws a UsageError if a
 * turn contains one of the tokenizer's special tokens, an Error if the template is not prefix-stable.
 */
export function encodeDialogue(tok: ChatTokenizer, messages: readonly ChatMessage[]): EncodedDialogue {
  const full = tok.renderChat(messages, false);
  const ids = tok.encode(full);
  let boundaryMerges = 0;
  // The last clean boundary: ids[0..k) are exactly the tokens of full[0..c). Boundaries are asked for in
  // increasing order, so usually only the text since the last one needs encoding: if its tokens are the next
  // ones of `ids`, they cover exactly that text (decode inverts encode), so the new boundary is clean too.
  let last = { c: 0, k: 0 };
  /** Token index of character position c of `full`; `clean` false when a token spans c. */
  const boundary = (c: number): { at: number; clean: boolean } => {
    if (c >= full.length) return { at: ids.length, clean: true };
    if (c >= last.c) {
      const tail = tok.encode(full.slice(last.c, c));
      let ok = last.k + tail.length <= ids.length;
      for (let i = 0; ok && i < tail.length; i++) ok = ids[last.k + i] === tail[i];
      if (ok) {
        last = { c, k: last.k + tail.length };
        return { at: last.k, clean: true };
      }
    }
    // Fallback: encode the whole prefix; a shorter common prefix means a token spans c.
    const pre = tok.encode(full.slice(0, c));
    const k = commonPrefix(pre, ids);
    const clean = k === pre.length;
    if (clean) last = { c, k };
    return { at: k, clean };
  };
  const prefixOf = (text: string, what: string) => {
    if (!full.startsWith(text)) {
      throw new Error(
        `the chat template is not prefix-stable (${what} is not a prefix of the whole rendered dialogue), ` +
          `so target spans cannot be found`,
      );
    }
    return text.length;
  };
  const header = tok.renderChat([], false);
  const headerEnd = boundary(prefixOf(header, "the header")).at;
  const turnEnds: number[] = [];
  const labels = new Array<number>(ids.length).fill(IGNORE_INDEX);
  for (let k = 0; k < messages.length; k++) {
    if (messages[k].role === "model") {
      const startChar = prefixOf(tok.renderChat(messages.slice(0, k), true), `the prompt of turn ${k}`);
      const eot = full.indexOf(tok.endOfTurnToken, startChar);
      if (eot < 0) throw new Error(`the chat template does not end model turns with ${tok.endOfTurnToken}`);
      const s = boundary(startChar);
      if (!s.clean) boundaryMerges++;
      const e = boundary(eot + tok.endOfTurnToken.length).at;
      for (let t = s.at; t < e; t++) labels[t] = ids[t];
    }
    turnEnds.push(boundary(prefixOf(tok.renderChat(messages.slice(0, k + 1), false), `turn ${k}`)).at);
  }
  return { ids, labels, headerEnd, turnEnds, boundaryMerges };
}

/** Splits a dialogue into training examples of at most maxLen tokens (see the file comment). */
export function tokenizeDialogue(
  tok: ChatTokenizer,
  dialogue: Dialogue,
  maxLen: number,
  stats: TokenizeStats = newTokenizeStats(),
): Example[] {
  let turns = dialogue.turns;
  if (turns.length % 2 === 1) {
    stats.droppedTrailingUserTurns++;
    turns = turns.slice(0, -1);
  }
  stats.dialogues++;
  if (turns.length === 0) return [];
  for (const t of turns) {
    const special = tok.specialTokens.find((s) => s.length > 0 && t.content.includes(s));
    if (special !== undefined) {
      throw new UsageError(
        `record ${dialogue.index}, field ${t.field}: found the special token ${special} in the text; ` +
          `expected plain text (it would be read as a control token)`,
      );
    }
  }
  const enc = encodeDialogue(tok, turns.map((t) => ({ role: t.role, content: t.content })));
  stats.boundaryMerges += enc.boundaryMerges;
  let headerIds = enc.ids.slice(0, enc.headerEnd);
  let headerLabels = enc.labels.slice(0, enc.headerEnd);
  if (!headerIds.includes(tok.bosId) && tok.addBosToken) {
    // A template that does not write <bos> itself: add exactly one, as the tokenizer would.
    headerIds = [tok.bosId, ...headerIds];
    headerLabels = [IGNORE_INDEX, ...headerLabels];
  }
  const h = headerIds.length;
  if (h >= maxLen) {
    throw new UsageError(`max_sequence_length ${maxLen} leaves no room after the template header`);
  }
  const nEx = turns.length / 2;
  const st = (x: number) => (x === 0 ? enc.headerEnd : enc.turnEnds[2 * x - 1]);
  const en = (x: number) => enc.turnEnds[2 * x + 1];
  const out: Example[] = [];
  const push = (s: number, e: number, cut: boolean) => {
    const from = st(s);
    let to = en(e);
    if (cut) to = from + (maxLen - h);
    const inputIds = [...headerIds, ...enc.ids.slice(from, to)];
    const labels = [...headerLabels, ...enc.labels.slice(from, to)];
    if (cut && !labels.some((l) => l !== IGNORE_INDEX)) {
      stats.droppedExchanges++;
      return;
    }
    if (inputIds.filter((x) => x === tok.bosId).length !== 1) {
      throw new Error(`record ${dialogue.index}: a window does not hold exactly one ${tok.bosToken}`);
    }
    if (cut) stats.cutExchanges++;
    out.push({
      inputIds,
      labels,
      dialogueIndex: dialogue.index,
      window: 0,
      windows: 0,
      turnStart: 2 * s,
      turnEnd: 2 * e + 2,
      truncated: cut,
    });
  };
  let s = 0;
  while (s < nEx) {
    if (h + en(s) - st(s) > maxLen) {
      push(s, s, true);
      s++;
      continue;
    }
    let e = s;
    while (e + 1 < nEx && h + en(e + 1) - st(s) <= maxLen) e++;
    push(s, e, false);
    s = e + 1;
  }
  out.forEach((x, i) => {
    x.window = i;
    x.windows = out.length;
  });
  if (out.length > 1) stats.splitDialogues++;
  stats.examples += out.length;
  return out;
}

/** Tokenizes many dialogues (optionally only those at `indices`), accumulating the stats. */
export function tokenizeDialogues(
  tok: ChatTokenizer,
  dialogues: readonly Dialogue[],
  maxLen: number,
  indices?: readonly number[],
): { examples: Example[]; stats: TokenizeStats } {
  const stats = newTokenizeStats();
  const examples: Example[] = [];
  for (const i of indices ?? dialogues.map((_, k) => k)) {
    examples.push(...tokenizeDialogue(tok, dialogues[i], maxLen, stats));
  }
  return { examples, stats };
}

/** Number of target tokens after the model's shift: positions t with labels[t+1] != -100. */
export function countTargets(labels: ArrayLike<number>): number {
  let n = 0;
  for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) n++;
  return n;
}
