/**
 * Socratic figures of a tutor reply (issue #15). Every rule, weight and example is in docs/socratic_metrics.md;
 * keep the two in sync. The rules were tuned on the TUNING half of data/socratic_eval/labelled.jsonl only;
 * tests/eval/validation_test.ts checks them on the TEST half (AUROC of good replies against each other class).
 *
 * One reply is judged in this order:
 *  1. the degenerate gate: empty, a loop, mostly non-Japanese script, cut off (the decoder's finish reason, or a
 *     text that stops mid-sentence), a copy or near-copy of a user turn or of an earlier model turn;
 *  2. question form: the reply should end on ONE open question; closed yes/no, leading, rhetorical, quiz,
 *     off-topic and stacked questions and no question at all are told apart (`QuestionForm`);
 *  3. telling: statements that give or explain the answer (`telling` in [0,1]);
 *  4. uptake of the user's own words (a short quote, a shared content word), never of a copy;
 *  5. register: polite です/ます Japanese in every sentence (a pass).
 * socratic_score = gate · clamp01(form · (0.6 + 0.25·uptake + 0.15·register) − 0.5·telling).
 *
 * All functions are pure and deterministic; every per-reply figure is in [0,1] with higher = better.
 */
import type { EVAL_METRICS } from "../report/metrics_csv.ts";
import {
  charLength,
  charNgramList,
  charNgrams,
  contentBigrams,
  INTERROGATIVES,
  isPolite,
  isQuestion,
  normalizeText,
  quotedSpans,
  scriptCounts,
  splitSentences,
  stripSentenceEnd,
  wordRuns,
} from "./japanese.ts";

export interface EvalSample {
  /** The conversation so far; the reply answers it (normally the last entry is the user's). */
  context: { role: "user" | "model"; content: string }[];
  /** A gold reply for this context, when there is one (reported, not used by the figures). */
  reference?: string;
  /** The reply to score (greedy decoding in the eval loop). */
  generated: string;
  /** Why generation stopped: "length" = cut off at max_new_tokens (degenerate). */
  finish?: "stop" | "length";
  /** K sampled replies for the same context, for response_consistency and distinct_2. */
  samples?: string[];
  /** The finish reason of each sample (a sample cut off at the token limit is degenerate). */
  samplesFinish?: ("stop" | "length")[];
}

// ---------------------------------------------------------------------------------------------------------
// Constants (docs/socratic_metrics.md gives the reason for each)

/** socratic_score = gate · clamp01(form · (BASE + UPTAKE·U + REGISTER·R) − TELLING·T). */
export const SCORE_WEIGHTS = { base: 0.6, uptake: 0.25, register: 0.15, telling: 0.6 } as const;
/** Credit of each question form (the `form` factor of socratic_score). */
export const FORM_CREDIT: Record<QuestionForm, number> = {
  open: 1,
  stacked: 0.35,
  closed: 0.3,
  leading: 0.25,
  off_topic: 0.15,
  quiz: 0.15,
  rhetorical: 0.1,
  none: 0,
};
/** A sample counts as Socratic for response_consistency when it passes the gate and scores at least this. */
export const SOCRATIC_PASS = 0.5;
/** dialogue_flow = gate · (UPTAKE·U + HANDS_BACK·[ends on a question or request to the user]). */
export const FLOW_WEIGHTS = { uptake: 0.6, handsBack: 0.4 } as const;
/** Three or more questions in one reply are stacked (the bundled data never asks more than two). */
export const STACKED_QUESTIONS = 3;
/** Telling weight (Σ over statements: 1 with a cue, 0.5 bare) at which telling is 1. */
export const TELLING_FULL = 1.5;
/** A reply whose 4-gram repetition (punctuation removed) reaches this is a loop. */
export const LOOP_REPETITION = 0.4;
/** Japanese script (kana + kanji) below this share of the letters → non-Japanese; kana below KANA_MIN too. */
export const JAPANESE_MIN = 0.5;
export const KANA_MIN = 0.2;
/** Copy: ≥ COPY_SHARE of one text's character 3-grams are in the other, and ≥ COPIED_SHARE the other way. */
export const COPY_SHARE = 0.8;
export const COPIED_SHARE = 0.35;
/** A quote 「…」 counts as uptake only up to this share of the user's turn (longer is echoing, not engaging). */
export const QUOTE_MAX_SHARE = 0.6;
/** Shared content bigrams with the user turn that count as full uptake (fewer if the user turn has fewer). */
export const UPTAKE_TARGET = 4;
/**
 * Content bigrams any polite reply shares with any user turn (generic verb stems, pronouns): no evidence of
 * uptake ("…と思います" / "どう思いますか" share 思い).
 */
export const UPTAKE_STOP_BIGRAMS: ReadonlySet<string> = new Set(
  "思い 思う 思っ 思わ 言い 言う 言っ 言わ 言え 感じ 考え 何か 何を 何が 何で 私は 私が 私の 私も".split(" "),
);

const clamp01 = (x: number) => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);
/** Blank: no word character at all (empty, whitespace, punctuation only). */
export const isBlank = (s: string | undefined): boolean => !s || wordRuns(s).length === 0;

// ---------------------------------------------------------------------------------------------------------
// 1. The degenerate gate

export type Degenerate = "empty" | "loop" | "non_japanese" | "cut_off" | "copy_user" | "copy_model";
export const DEGENERATE_REASONS: readonly Degenerate[] = [
  "empty",
  "loop",
  "non_japanese",
  "cut_off",
  "copy_user",
  "copy_model",
];

/** 1 − distinct/total over the character 4-grams of the reply with punctuation and spaces removed. */
export function repetition(text: string): number {
  const joined = wordRuns(text).join("");
  const grams = charNgramList(joined, 4);
  return grams.length >= 12 ? 1 - new Set(grams).size / grams.length : 0;
}

/** Share of Japanese script: (kana + kanji) / letters, and kana / letters; null when there is no letter. */
export function japaneseShares(text: string): { japanese: number; kana: number } | null {
  const c = scriptCounts(text);
  const letters = c.kana + c.kanji + c.latin;
  return letters ? { japanese: (c.kana + c.kanji) / letters, kana: c.kana / letters } : null;
}

const TERMINAL = /[。.!?…」』)】〉》"'”’~〜♪]$/u;

/** The text stops mid-sentence: its last sentence has no terminator and is neither a question nor polite. */
export function endsMidSentence(text: string): boolean {
  const t = normalizeText(text);
  if (!t) return false;
  if (TERMINAL.test(t)) return false;
  const last = splitSentences(t).at(-1) ?? "";
  return !(isQuestion(last) || isPolite(last));
}

/** Share of the character 3-grams of `a` that occur in `b` (0 when `a` has none). */
export function containment(a: string, b: string): number {
  const A = charNgrams(wordRuns(a).join(" "), 3);
  if (!A.size) return 0;
  const B = new Set(wordRuns(b).flatMap((r) => charNgramList(r, 3)));
  let hit = 0;
  for (const g of A) if (B.has(g)) hit++;
  return hit / A.size;
}

/**
 * Whether `reply` is a copy or near-copy of `turn` (an echo of it): most of the turn reappears in the reply
 * AND a good part of the reply is the turn. A reply that reuses a short turn inside a longer question of its
 * own, or a short question made of the user's words, is not a copy.
 */
export function isCopyOf(reply: string, turn: string): boolean {
  if (isBlank(turn)) return false;
  const a = containment(turn, reply), b = containment(reply, turn);
  return Math.max(a, b) >= COPY_SHARE && Math.min(a, b) >= COPIED_SHARE;
}

/** The first degenerate reason that applies, or null (the reply passes the gate). */
export function degenerate(sample: Pick<EvalSample, "generated" | "context" | "finish">): Degenerate | null {
  const text = sample.generated ?? "";
  if (isBlank(text)) return "empty";
  if (repetition(text) >= LOOP_REPETITION || repeatedSentence(text)) return "loop";
  const shares = japaneseShares(text);
  if (!shares || shares.japanese < JAPANESE_MIN || shares.kana < KANA_MIN) return "non_japanese";
  const users = sample.context.filter((t) => t.role === "user").map((t) => t.content);
  if (users.some((u) => isCopyOf(text, u))) return "copy_user";
  const models = sample.context.filter((t) => t.role === "model").map((t) => t.content);
  if (models.some((m) => isCopyOf(text, m))) return "copy_model";
  if (sample.finish === "length" || endsMidSentence(text)) return "cut_off";
  return null;
}

/** The same sentence (word characters, at least 4) twice in one reply. */
function repeatedSentence(text: string): boolean {
  const seen = new Set<string>();
  for (const s of splitSentences(text)) {
    const k = wordRuns(s).join("");
    if ([...k].length < 4) continue;
    if (seen.has(k)) return true;
    seen.add(k);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// 2. Question form

export type QuestionForm =
  | "open"
  | "closed"
  | "leading"
  | "rhetorical"
  | "quiz"
  | "stacked"
  | "off_topic"
  | "none";
export const QUESTION_FORMS: readonly QuestionForm[] = [
  "open",
  "closed",
  "leading",
  "rhetorical",
  "quiz",
  "stacked",
  "off_topic",
  "none",
];

/** A request that hands the turn to the user ("例を挙げてください", "考えてみましょう"). */
const REQUEST_END = /(ください|下さい|くださいませんか|みましょう|みませんか)$/u;
/** Requests phrased as questions are open: "挙げていただけますか", "聞かせてもらえますか". */
const OPEN_REQUEST = /(ていただけ|てもらえ|てくれ|聞かせ|教え|挙げ|話して|説明して)/u;
/**
 * Yes/no in form but open in function: either/or, a hypothetical or a counterexample put to the user, a
 * distinction to weigh, or the user's judgement of a claim ("…と言えるでしょうか", "…と思いますか").
 * Questions about the user's facts or experience ("…したことはありますか", "…は好きですか") stay closed.
 */
export const OPEN_FRAMES = new RegExp(
  [
    "それとも|どちら|どっち", // either/or
    "もし|としたら|とすれば|とすると|だとすると|場合|としても|ても、|でも、|それでも", // hypothetical
    "たとき、|たときに|たら、|れば、", // a case put as a condition: "アプリが間違えて訳したとき、…気づけるでしょうか"
    "たとえば|例えば|本当に|だけで|だけが|必ず|いつも|常に|すべて|全部|全員|条件|証拠|意味する", // counterexample
    "のも|ことも|人も", // the user's claim applied to another case: "夜中に大音量で流すのも、自由でしょうか"
    "同じ|違う|違い|両立|対立|区別|比べ|関係", // a distinction to weigh
    "と思いますか|と考えますか|と思われますか|と感じますか|と言える|と言えま|と言えそう|言えるでしょう", // judgement
    "そうでしょうか|そうですか", // a possibility to consider: "できそうでしょうか", "変わりそうですか"
  ].join("|"),
  "u",
);
/** The question presupposes its answer: negative and tag questions, "思いませんか", "当然". */
export const LEADING = new RegExp(
  [
    "ないでしょうか|ないのでしょうか|ではありませんか|のではありません|じゃないですか|じゃない$|じゃないか",
    "ですよね|ますよね|でしたよね|よね$",
    "と思いませんか|思わない|と感じませんか|なりませんか|ありませんか|ませんか$",
    "当然|当たり前|やはり|やっぱり|こそ",
  ].join("|"),
  "u",
);
/** A tag question ("…でしょう？", "…だろう？") leads unless it carries a question word. */
const TAG_QUESTION = /(でしょう|だろう)$/u;
/** A question with a textbook answer: "知っていますか", "何年", "何と言いますか", "誰でしょう". */
export const QUIZ = new RegExp(
  [
    "知っていますか|知ってますか|ご存[じ知]|覚えていますか|分かりますか|わかりますか",
    "何と言い|何といい|何という|何て言う|何年|何歳|何時代|何時間|何人|何個|何パーセント|いくつ",
    "提唱した|発明した|発見した|書いた人|作者は|正解|答えは|クイズ|問題です",
  ].join("|"),
  "u",
);
/** Asking for the user's own view ("どう思いますか", "あなた", "言えるでしょうか"): not a quiz. */
const OPINION = /(思|考|感じ|あなた|ご自身|言え|捉え|受け取)/u;
/** Words that point back at the context: with them a question is not off-topic. */
const ANAPHORA = /(それ|その|そう|そこ|この|これ|あなた|ご自身|今の|先ほど)/u;

export interface QuestionAnalysis {
  form: QuestionForm;
  /** Question sentences and requests to the user, in order. */
  prompts: string[];
  /** Statements after the last prompt. */
  statementsAfter: number;
}

/** A sentence that hands the turn to the user: a question, or a request ending in ください/みましょう. */
export function isPrompt(sentence: string): boolean {
  return isQuestion(sentence) || REQUEST_END.test(stripSentenceEnd(normalizeText(sentence)));
}

/** How the reply asks (see QuestionForm); `contextText` decides off-topic. */
export function questionForm(text: string, context: EvalSample["context"]): QuestionAnalysis {
  const sents = splitSentences(text);
  const idx = sents.map((s, i) => (isPrompt(s) ? i : -1)).filter((i) => i >= 0);
  const prompts = idx.map((i) => sents[i]);
  if (!idx.length) return { form: "none", prompts, statementsAfter: 0 };
  const statementsAfter = sents.length - 1 - idx[idx.length - 1];
  const result = (form: QuestionForm): QuestionAnalysis => ({ form, prompts, statementsAfter });
  // The speaker answers its own question: the turn is not handed back.
  if (statementsAfter > 0) return result("rhetorical");
  if (prompts.length >= STACKED_QUESTIONS) return result("stacked");
  // Quoted words are the user's, not the question's stance: 「当たり前」 does not make a question leading.
  const last = stripSentenceEnd(normalizeText(prompts[prompts.length - 1])).replace(
    /「[^」]*」|『[^』]*』/gu,
    "X",
  );
  if (QUIZ.test(last) && !OPINION.test(last)) return result("quiz");
  if (LEADING.test(last) || (TAG_QUESTION.test(last) && !INTERROGATIVES.test(last))) return result("leading");
  const open = INTERROGATIVES.test(last) || OPEN_FRAMES.test(last) || OPEN_REQUEST.test(last) ||
    REQUEST_END.test(last);
  if (!open) return result("closed");
  // An open question about something else: nothing of the context in it.
  return result(offTopic(text, context) ? "off_topic" : "open");
}

/**
 * Nothing of the context in the reply: no quote of the user, no word pointing back at it, no content bigram
 * and no character 4-gram (any script: hiragana words such as みんな count) shared with any turn.
 */
function offTopic(text: string, context: EvalSample["context"]): boolean {
  if (!context.length) return false;
  if (ANAPHORA.test(normalizeText(text))) return false;
  const users = context.filter((t) => t.role === "user").map((t) => t.content);
  if (quotedSpans(text).some((q) => quoteFromUser(q, users))) return false;
  const mine = contentBigrams(text);
  const theirs = new Set(context.flatMap((t) => [...contentBigrams(t.content)]));
  for (const b of mine) if (theirs.has(b) && !UPTAKE_STOP_BIGRAMS.has(b)) return false;
  const grams4 = new Set(context.flatMap((t) => charNgramList(t.content, 4)));
  return !charNgramList(text, 4).some((g) => grams4.has(g));
}

// ---------------------------------------------------------------------------------------------------------
// 3. Telling

/** Markers of giving or explaining the answer in a statement. */
export const TELLING_CUES = new RegExp(
  [
    "正解は|答えは|結論は|結論として|要するに|つまり|すなわち|したがって|だから|なぜなら", // the answer, because
    "からです|ためです|ためだ|のです$|のだ$|ことです$|ものです$|ことだ$", // explaining
    "一般的|と言われ|とされ|知られて|研究|によれば|によると|学者|説$|と述べ|と呼び|と考えました|主張", // authority
    "重要です|大切です|必要です|有効|効果|望まし|賢明|合理的|べき|なければ|ましょう$|しましょう", // advice
    "第一に|第二に|第三に|まず、|次に、|最後に、|一つ目|二つ目|いくつか|二つの|三つの", // lists
    "その通り|そうです$|実は|ではありません$|限りません$|はありません$|できます$|あります$|なります$", // verdicts
    "と言えます$|わけです$|はずです$|のです$", // conclusions
  ].join("|"),
  "u",
);
/** A statement that reflects the user back ("…のですね", "…というお考えですね") is not telling. */
const REFLECTION = /(ね|よね|ねえ)$/u;

export interface TellingAnalysis {
  /** Statements (non-prompts) that tell: each weighs 1 with a cue, 0.5 as a bare assertion. */
  statements: { sentence: string; weight: number }[];
  /** clamp01(Σ weight / TELLING_FULL): a cue statement and a bare assertion already make a lecture. */
  telling: number;
}

export function telling(text: string): TellingAnalysis {
  const statements = splitSentences(text).filter((s) => !isPrompt(s)).map((sentence) => {
    const core = stripSentenceEnd(normalizeText(sentence));
    if (REFLECTION.test(core)) return { sentence, weight: 0 };
    return { sentence, weight: TELLING_CUES.test(core) ? 1 : 0.5 };
  });
  return { statements, telling: clamp01(statements.reduce((a, s) => a + s.weight, 0) / TELLING_FULL) };
}

// ---------------------------------------------------------------------------------------------------------
// 4. Uptake

/** Whether a quoted span repeats a user's words: contained in a user turn, or ≥ half of its bigrams are. */
export function quoteFromUser(quote: string, userTurns: string[]): boolean {
  const q = wordRuns(quote).join("");
  if ([...q].length < 2) return false;
  const qb = charNgrams(quote, 2);
  return userTurns.some((u) => {
    const uj = wordRuns(u).join("");
    // A quote of (nearly) the whole turn is an echo, not uptake.
    if ([...q].length > QUOTE_MAX_SHARE * [...uj].length) return false;
    if (uj.includes(q)) return true;
    const ub = charNgrams(u, 2);
    let hit = 0;
    for (const b of qb) if (ub.has(b)) hit++;
    return qb.size > 0 && hit / qb.size >= 0.5;
  });
}

/**
 * Uptake of the user's words in [0,1]; null when the context has no user turn. A short quote of a user's
 * words gives 1; else sqrt(min(1, shared content bigrams with the last user turn / min(4, its count))).
 */
export function uptake(generated: string, context: EvalSample["context"]): number | null {
  const users = context.filter((t) => t.role === "user").map((t) => t.content).filter((c) => !isBlank(c));
  if (!users.length) return null;
  if (isBlank(generated)) return 0;
  if (quotedSpans(generated).some((q) => quoteFromUser(q, users))) return 1;
  const user = users[users.length - 1];
  const content = (t: string) => new Set([...contentBigrams(t)].filter((b) => !UPTAKE_STOP_BIGRAMS.has(b)));
  let ub = content(user);
  let gb = content(generated);
  if (!ub.size) {
    ub = charNgrams(user, 2);
    gb = charNgrams(generated, 2);
  }
  if (!ub.size) return 0;
  let shared = 0;
  for (const b of ub) if (gb.has(b)) shared++;
  return Math.sqrt(clamp01(shared / Math.min(UPTAKE_TARGET, ub.size)));
}

// ---------------------------------------------------------------------------------------------------------
// 5. Register

/** Short interjections without a predicate ("なるほど", "うーん") are neither polite nor casual. */
const INTERJECTION = /^(なるほど|うーん|ええ|はい|そう|確かに|たしかに|ふむ|へえ|おお)[、,\s]*$/u;

/** 1 when every sentence (interjections aside) is polite です/ます Japanese; 0 otherwise or when not Japanese. */
export function register(text: string): 0 | 1 {
  if (isBlank(text)) return 0;
  const shares = japaneseShares(text);
  if (!shares || shares.japanese < JAPANESE_MIN) return 0;
  const sents = splitSentences(text).filter((s) => !INTERJECTION.test(stripSentenceEnd(normalizeText(s))));
  return sents.length && sents.every(isPolite) ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------------
// Per reply

/** The per-reply figures of `maieutic score --json` (each in [0,1], higher = better). */
export const REPLY_FIGURES = [
  "socratic_score",
  "open_question",
  "no_telling",
  "uptake",
  "dialogue_flow",
  "register",
  "non_degenerate",
] as const;
export type ReplyFigure = (typeof REPLY_FIGURES)[number];

export interface ReplyScore {
  figures: Record<ReplyFigure, number>;
  /** Over the K samples (null without at least two samples). */
  response_consistency: number | null;
  distinct_2: number | null;
  degenerate: Degenerate | null;
  question_form: QuestionForm;
  /** Telling in [0,1] (no_telling = 1 − telling). */
  telling: number;
  details: { sentences: string[]; prompts: string[]; tellingStatements: TellingAnalysis["statements"] };
}

/** Scores one reply (the decoder's finish reason, when given, feeds the cut-off test). */
export function scoreReply(sample: EvalSample): ReplyScore {
  const text = sample.generated ?? "";
  const deg = degenerate(sample);
  const gate = deg === null ? 1 : 0;
  const q = questionForm(text, sample.context);
  const t = telling(text);
  const up = uptake(text, sample.context) ?? 0;
  const reg = register(text);
  const form = FORM_CREDIT[q.form];
  const w = SCORE_WEIGHTS;
  const score = gate * clamp01(form * (w.base + w.uptake * up + w.register * reg) - w.telling * t.telling);
  const handsBack = q.form !== "none" && q.form !== "rhetorical" ? 1 : 0;
  const samples = sample.samples ?? [];
  return {
    figures: {
      socratic_score: score,
      open_question: gate && q.form === "open" ? 1 : 0,
      no_telling: clamp01(1 - t.telling),
      uptake: gate * up,
      dialogue_flow: gate * clamp01(FLOW_WEIGHTS.uptake * up + FLOW_WEIGHTS.handsBack * handsBack),
      register: reg,
      non_degenerate: gate,
    },
    response_consistency: samples.length >= 2
      ? socraticShare(sample.context, samples, sample.samplesFinish)
      : null,
    distinct_2: samples.length >= 2 ? distinctN(samples, 2) : null,
    degenerate: deg,
    question_form: q.form,
    telling: t.telling,
    details: { sentences: splitSentences(text), prompts: q.prompts, tellingStatements: t.statements },
  };
}

/**
 * response_consistency: the share of the K samples that pass the gate and score at least SOCRATIC_PASS.
 * Identical degenerate samples give 0, identical good ones 1: agreement alone earns nothing.
 */
export function socraticShare(
  context: EvalSample["context"],
  samples: readonly string[],
  finish?: readonly ("stop" | "length")[],
): number {
  if (!samples.length) return 0;
  let ok = 0;
  for (const [i, s] of samples.entries()) {
    const r = scoreReply({ context, generated: s, finish: finish?.[i] });
    if (r.degenerate === null && r.figures.socratic_score >= SOCRATIC_PASS) ok++;
  }
  return ok / samples.length;
}

/** distinct-n over several texts: distinct character n-grams / all character n-grams (0 when none). */
export function distinctN(texts: readonly string[], n: number): number {
  const all = texts.flatMap((t) => charNgramList(t, n));
  return all.length ? new Set(all).size / all.length : 0;
}

// ---------------------------------------------------------------------------------------------------------
// Aggregates: the eval_* columns

/** The aggregate figures, named as the CSV's EVAL_METRICS (column `eval_<name>`). */
export type SocraticMetrics = Record<(typeof EVAL_METRICS)[number], number>;

export interface ScoredSamples {
  metrics: SocraticMetrics;
  replies: ReplyScore[];
  /** Replies whose response_consistency was measured (K ≥ 2 samples). */
  consistencyCount: number;
}

const mean = (xs: number[]) => (xs.length ? clamp01(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);
const share = <T>(xs: T[], f: (x: T) => boolean) => (xs.length ? xs.filter(f).length / xs.length : 0);

/** Per-reply scores and the eval_* aggregates (rates are shares of the replies; no replies → all 0). */
export function scoreSamplesDetailed(samples: EvalSample[]): ScoredSamples {
  const replies = samples.map(scoreReply);
  const fig = (k: ReplyFigure) => mean(replies.map((r) => r.figures[k]));
  const form = (f: QuestionForm) => share(replies, (r) => r.degenerate === null && r.question_form === f);
  const rc = replies.map((r) => r.response_consistency).filter((x): x is number => x !== null);
  const d2 = replies.map((r) => r.distinct_2).filter((x): x is number => x !== null);
  const metrics: SocraticMetrics = {
    socratic_question_rate: fig("open_question"),
    socratic_score: fig("socratic_score"),
    style_consistency: fig("register"),
    dialogue_flow: fig("dialogue_flow"),
    response_consistency: mean(rc),
    distinct_2: mean(d2),
    telling_rate: share(replies, (r) => r.telling >= 0.5),
    degenerate_rate: share(replies, (r) => r.degenerate !== null),
    cut_off_rate: share(samples, (s) => s.finish === "length"),
    closed_question_rate: form("closed"),
    leading_question_rate: form("leading"),
    rhetorical_question_rate: form("rhetorical"),
    quiz_question_rate: form("quiz"),
    stacked_question_rate: form("stacked"),
    off_topic_question_rate: form("off_topic"),
    no_question_rate: form("none"),
  };
  return { metrics, replies, consistencyCount: rc.length };
}

/** The eval_* aggregates of `scoreSamplesDetailed`. */
export function scoreSamples(samples: EvalSample[]): SocraticMetrics {
  return scoreSamplesDetailed(samples).metrics;
}

/** Length of a text in characters without whitespace (re-exported for reports). */
export { charLength };
