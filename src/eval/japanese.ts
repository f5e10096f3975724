/**
 * Japanese text helpers for the Socratic metrics (src/eval/metrics.ts, documented in docs/socratic_metrics.md):
 * normalization, sentence splitting, question and politeness detection, script mix, character n-grams.
 *
 * Everything works on NFKC-normalized text so full-width and half-width forms are the same
 * (`？`/`?`, `！`/`!`, `Ａ`/`A`, half-width katakana / katakana). All functions are pure and deterministic.
 */

/** NFKC, trimmed. Full-width ASCII becomes half-width, half-width katakana becomes full-width. */
export function normalizeText(text: string): string {
  return text.normalize("NFKC").trim();
}

const TERMINATORS = new Set(["。", "!", "?"]);
const OPENERS: Record<string, string> = {
  "「": "」",
  "『": "』",
  "(": ")",
  "【": "】",
  "〈": "〉",
  "《": "》",
};
const CLOSERS = new Set(["」", "』", ")", "】", "〉", "》", '"', "'", "”", "’"]);

/** True for characters that carry words: letters of any script, digits, the prolonged sound mark. */
export function isWordChar(ch: string): boolean {
  return /[\p{L}\p{N}ー々〆]/u.test(ch);
}

function splitOnce(text: string, bracketAware: boolean): { sentences: string[]; balanced: boolean } {
  const chars = [...text];
  const sentences: string[] = [];
  const stack: string[] = [];
  let cur = "";
  const flush = () => {
    if ([...cur].some(isWordChar)) sentences.push(cur.trim());
    cur = "";
  };
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (ch === "\n" || ch === "\r") {
      // A line break ends a sentence and any bracket left open on that line.
      stack.length = 0;
      flush();
      continue;
    }
    cur += ch;
    if (bracketAware) {
      if (OPENERS[ch]) stack.push(OPENERS[ch]);
      else if (stack.length && ch === stack[stack.length - 1]) stack.pop();
    }
    if (stack.length) continue;
    const isPeriod = ch === "." && (i + 1 >= chars.length || /\s/.test(chars[i + 1])) && chars[i - 1] !== ".";
    if (TERMINATORS.has(ch) || isPeriod) {
      // Absorb runs of terminators ("?!", "。。") and closing quotes/brackets that follow ("…ですか?」").
      while (i + 1 < chars.length && (TERMINATORS.has(chars[i + 1]) || CLOSERS.has(chars[i + 1]))) {
        cur += chars[++i];
      }
      flush();
    }
  }
  flush();
  return { sentences, balanced: stack.length === 0 };
}

/**
 * Splits text into sentences on 。！？!? (and "." before a space or the end, not in an ellipsis) and on line
 * breaks. Terminators inside 「…」『…』(…) do not split ("「なぜ？」と聞きました。" is one sentence); when the
 * brackets are unbalanced the split ignores them. Sentences without any word character are dropped.
 */
export function splitSentences(text: string): string[] {
  const t = normalizeText(text);
  if (!t) return [];
  const aware = splitOnce(t, true);
  return aware.balanced ? aware.sentences : splitOnce(t, false).sentences;
}

/** The sentence without trailing punctuation, closing quotes/brackets, ellipses and whitespace. */
export function stripSentenceEnd(sentence: string): string {
  return sentence.replace(/[\s。.!?、,…・」』)\]】〉》"'”’~〜]+$/u, "");
}

/** Interrogative words; with them, a sentence ending in でしょう/だろう/の is a question even without "?". */
export const INTERROGATIVES =
  /(なぜ|何故|どうして|どう|どんな|どの|どちら|どっち|どこ|どれ|どういう|どのよう|何|なに|なん|誰|だれ|いつ|いくつ|いくら)/u;

/**
 * A sentence is a question when, after NFKC (so "？" and "?" are the same), it ends in "?" (before any closing
 * quote), or its last words are a question ending: か・かな・かね・かしら (so ですか・ますか・でしょうか・のか),
 * but not とか・しか; or でしょう・だろう・の・のでしょう after an interrogative word (どちらに近いのでしょう).
 */
export function isQuestion(sentence: string): boolean {
  const s = normalizeText(sentence);
  // "?" possibly followed by "!", "。", closing quotes or brackets: "本当?!", "…ですか?」".
  if (/\?[\s。.!」』)\]】〉》"'”’]*$/u.test(s)) return true;
  const core = stripSentenceEnd(s);
  if (!core) return false;
  if (/(か|かな|かね|かしら)$/u.test(core) && !/(とか|しか|確か|たしか)$/u.test(core)) return true;
  return /(でしょう|だろう|の)$/u.test(core) && INTERROGATIVES.test(core);
}

/** Sentence-final particles and conjunctions stripped before looking for a polite ending. */
const FINAL_PARTICLES = /(けれども|けれど|けど|ので|から|のに|かな|かね|よね|か|ね|よ|な|わ|が|し)$/u;
/** Polite (です/ます) predicate endings. */
const POLITE_ENDING = /(です|ます|ました|ません|でした|でしょう|ましょう|ませ|ください|下さい|ございます)$/u;

/**
 * A sentence is polite when its predicate ends in です/ます forms (です・ます・ました・ません・でした・でしょう・
 * ましょう・ください・ございます) once sentence-final particles (か・ね・よ・よね・かな・が・けど・から・ので…) are
 * stripped: "そうですね" and "思いますか？" are polite, "そうだね" and "本当か？" are not.
 */
export function isPolite(sentence: string): boolean {
  let core = stripSentenceEnd(normalizeText(sentence));
  for (let i = 0; i < 3; i++) {
    if (POLITE_ENDING.test(core)) return true;
    const next = core.replace(FINAL_PARTICLES, "");
    if (next === core) break;
    core = next;
  }
  return POLITE_ENDING.test(core);
}

export interface ScriptMix {
  /** Fractions of kana (hiragana + katakana + ー), kanji and Latin letters among those characters; sum 1. */
  kana: number;
  kanji: number;
  latin: number;
  /** How many kana/kanji/latin characters were counted (0 → all fractions 0). */
  count: number;
}

/** Counts of kana, kanji and Latin letters (NFKC, so full-width Latin is Latin). */
export function scriptCounts(text: string): { kana: number; kanji: number; latin: number } {
  let kana = 0, kanji = 0, latin = 0;
  for (const ch of normalizeText(text)) {
    if (/[\p{Script=Hiragana}\p{Script=Katakana}ー]/u.test(ch)) kana++;
    else if (/[\p{Script=Han}々〆]/u.test(ch)) kanji++;
    else if (/\p{Script=Latin}/u.test(ch)) latin++;
  }
  return { kana, kanji, latin };
}

export function scriptMix(text: string): ScriptMix {
  const c = scriptCounts(text);
  const n = c.kana + c.kanji + c.latin;
  if (!n) return { kana: 0, kanji: 0, latin: 0, count: 0 };
  return { kana: c.kana / n, kanji: c.kanji / n, latin: c.latin / n, count: n };
}

/** Runs of word characters (NFKC, lower-cased): punctuation, brackets and spaces separate runs. */
export function wordRuns(text: string): string[] {
  return normalizeText(text).toLowerCase().split(/[^\p{L}\p{N}ー々〆]+/u).filter((r) => r.length > 0);
}

/** Character n-grams (as a list, with repeats) inside each word run; n-grams never cross punctuation. */
export function charNgramList(text: string, n: number): string[] {
  const out: string[] = [];
  for (const run of wordRuns(text)) {
    const cs = [...run];
    for (let i = 0; i + n <= cs.length; i++) out.push(cs.slice(i, i + n).join(""));
  }
  return out;
}

export function charNgrams(text: string, n: number): Set<string> {
  return new Set(charNgramList(text, n));
}

/** True when a string has a kanji, katakana, Latin letter or digit (i.e. is not only hiragana). */
export function hasContentChar(s: string): boolean {
  return /[\p{Script=Han}\p{Script=Katakana}\p{Script=Latin}\p{N}々ー]/u.test(s);
}

/**
 * Content bigrams: character bigrams with at least one kanji/katakana/Latin/digit character. Hiragana-only
 * bigrams (です・ます・ている…) are inflections and particles shared by any two Japanese sentences.
 */
export function contentBigrams(text: string): Set<string> {
  return new Set(charNgramList(text, 2).filter(hasContentChar));
}

/** Texts quoted in 「…」 or 『…』 (NFKC), innermost first not guaranteed; empty quotes dropped. */
export function quotedSpans(text: string): string[] {
  const t = normalizeText(text);
  const out: string[] = [];
  for (const m of t.matchAll(/「([^「」]+)」|『([^『』]+)』/gu)) {
    const q = (m[1] ?? m[2]).trim();
    if (q) out.push(q);
  }
  return out;
}

/** Number of characters excluding whitespace (code points, NFKC). */
export function charLength(text: string): number {
  return [...normalizeText(text).replace(/\s+/gu, "")].length;
}
