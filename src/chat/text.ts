/**
 * The text of generated ids as a reader sees it: special tokens (<bos>, <start_of_turn>, ... — what a
 * barely trained model may emit) are left out, as transformers' text-generation pipeline decodes with
 * skip_special_tokens=True. Byte-fallback tokens are ordinary tokens and stay.
 */
import type { ChatTokenizer } from "../tokenizer/tokenizer.ts";

const cache = new WeakMap<ChatTokenizer, Set<number>>();

function specialIds(tok: ChatTokenizer): Set<number> {
  let s = cache.get(tok);
  if (!s) {
    s = new Set(
      tok.specialTokens.map((t) => tok.tokenToId(t)).filter((id): id is number => id !== undefined),
    );
    cache.set(tok, s);
  }
  return s;
}

export function replyText(tok: ChatTokenizer, ids: readonly number[]): string {
  const special = specialIds(tok);
  return tok.decode(ids.filter((id) => !special.has(id)));
}
