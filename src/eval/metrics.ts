/**
 * Socratic quality metrics of generated tutor turns (DESIGN §8, issue #7). Every formula, weight and edge case
 * is documented in src/eval/metrics.md; keep the two in sync. All metrics are in [0,1], pure and deterministic
 * (no randomness, no locale- or time-dependent calls), and Japanese-aware through src/eval/japanese.ts.
 *
 * The names of `SocraticMetrics` are the `EVAL_METRICS` of src/report/metrics_csv.ts (CSV columns
 * `eval_<name>`).
 */
import type { EVAL_METRICS } from "../report/metrics_csv.ts";
import {
  charLength,
  charNgramList,
  charNgrams,
  contentBigrams,
  isPolite,
  isQuestion,
  quotedSpans,
  scriptCounts,
  splitSentences,
  stripSentenceEnd,
  wordRuns,
} from "./japanese.ts";

export interface EvalSample {
  /** The conversation so far; the turn being scored answers it (normally the last entry is the user's). */
  context: { role: "user" | "model"; content: string }[];
  /** The dataset's model turn for this context, when there is one. */
  reference?: string;
  /** The response to score (greedy decoding in the eval loop). */
  generated: string;
  /** K sampled responses for the same context, for response_consistency. */
  samples?: string[];
}

export interface SocraticMetrics {
  socratic_question_rate: number;
  socratic_pattern_score: number;
  style_consistency: number;
  dialogue_flow: number;
  response_consistency: number;
}

// Compile-time check that the metric names are exactly the CSV's EVAL_METRICS.
type _SameNames<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const _namesMatch: _SameNames<keyof SocraticMetrics, (typeof EVAL_METRICS)[number]> = true;
void _namesMatch;

// ---------------------------------------------------------------------------------------------------------
// Weights and constants (metrics.md lists each one with its reason).

/** style_consistency: weights of the weighted Euclidean distance between style profiles (sum 1). */
export const STYLE_WEIGHTS = {
  politeness: 0.35,
  question: 0.25,
  sentenceLength: 0.15,
  script: 0.25,
} as const;
/** A mean-sentence-length ratio of this factor (either way) is the maximal length distance. */
export const STYLE_LENGTH_FACTOR = 4;

/** Shared content bigrams with the user turn that count as full uptake (fewer if the user turn has fewer). */
export const UPTAKE_TARGET = 4;
/**
 * Content bigrams that any polite reply shares with any user turn (generic verb stems, pronouns): they are no
 * evidence of uptake ("…と思います" / "どう思いますか" share 思い).
 */
export const UPTAKE_STOP_BIGRAMS: ReadonlySet<string> = new Set(
  "思い 思う 思っ 思わ 言い 言う 言っ 言わ 言え 感じ 考え 何か 何を 何が 何で 私は 私が 私の 私も".split(" "),
);
/** A quote 「…」 counts as the user's words when at least this share of its bigrams occur in a user turn. */
export const QUOTE_MATCH = 0.5;

/** socratic_pattern_score = clamp(uptake·uptake + probe·probe − lecture·lecturePenalty) with these weights. */
export const PATTERN_WEIGHTS = { uptake: 0.4, probe: 0.6, lecture: 1 } as const;
/** Probe credit per Socratic move (definition/example, tension, reasoning): two moves saturate. */
export const PROBE_CREDIT = 2 / 3;

/** dialogue_flow = nonRepetition · (uptake·uptake + length·lengthBalance) with these weights. */
export const FLOW_WEIGHTS = { uptake: 0.65, length: 0.35 } as const;
/** n for repeated n-grams inside the turn and for n-grams repeated from earlier model turns. */
export const REPEAT_N_WITHIN = 4;
export const REPEAT_N_ACROSS = 5;
/** Repetition up to FREE is normal phrasing; at FREE + SPAN the turn counts as fully repetitive. */
export const REPEAT_FREE = 0.2;
export const REPEAT_SPAN = 0.4;
/** Length band of generated/reference lengths that scores 1. */
export const LENGTH_BAND_REFERENCE: readonly [number, number] = [0.5, 2];
/**
 * Length band of generated/user lengths (no reference), from the bundled 1gouki.json assistant/preceding-user
 * length ratios (1st percentile 0.68, median 1.9, 95th percentile 3.94, 99th 5.0): see metrics.md.
 */
export const LENGTH_BAND_USER: readonly [number, number] = [0.5, 4];

/** response_consistency pair similarity = text·bigramJaccard + question·[both ask or neither does]. */
export const CONSISTENCY_WEIGHTS = { text: 0.8, question: 0.2 } as const;

const clamp01 = (x: number) => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);
/** Blank: no word character at all (empty, whitespace, punctuation only). Blank turns score 0. */
const isBlank = (s: string | undefined): boolean => !s || wordRuns(s).length === 0;

// ---------------------------------------------------------------------------------------------------------
// Question rate

/**
 * 1 when the turn asks the interlocutor a question: it has a question sentence and at most one statement
 * follows the last one (a question followed by two or more statements is rhetorical: the speaker answers it).
 */
export function asksQuestion(text: string): 0 | 1 {
  const sents = splitSentences(text);
  let last = -1;
  sents.forEach((s, i) => {
    if (isQuestion(s)) last = i;
  });
  if (last < 0) return 0;
  return sents.length - 1 - last <= 1 ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------------
// Uptake of the user's words (pattern score and dialogue flow)

/** Whether a quoted span repeats a user's words: contained in a user turn, or ≥ QUOTE_MATCH of its bigrams are. */
export function quoteFromUser(quote: string, userTurns: string[]): boolean {
  const q = wordRuns(quote).join("");
  if ([...q].length < 2) return false;
  const qb = charNgrams(quote, 2);
  return userTurns.some((u) => {
    if (wordRuns(u).join("").includes(q)) return true;
    const ub = charNgrams(u, 2);
    let hit = 0;
    for (const b of qb) if (ub.has(b)) hit++;
    return qb.size > 0 && hit / qb.size >= QUOTE_MATCH;
  });
}

/**
 * Uptake of the preceding user turn in [0,1], or null when there is no user turn to take up.
 * overlap = sqrt(min(1, |CB(gen) ∩ CB(user)| / min(UPTAKE_TARGET, |CB(user)|))) with CB the content bigrams
 * less UPTAKE_STOP_BIGRAMS (all bigrams when the user turn has none); quoting a user's words in 「…」『…』
 * gives 1.
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
// Pattern score

/** Asks for a definition or an example, or for something concrete (inside a question or a ください request). */
export const DEFINITION_OR_EXAMPLE = new RegExp(
  [
    "どういう意味|どういうこと|どういう|とは|って何|ってなん|何を指|定義|意味", // definition
    "例えば|たとえば|例を|例は|具体|どんな|どのような|どのくらい|どれくらい|挙げ", // example, specifics
    "思い浮か|思いつ|思い当た|経験|場面", // a case from the user's own experience
    "(は|が|も)(あり|い)(ます|ました|そう)", // "…はありますか", "…はいますか": is there a case?
  ].join("|"),
  "u",
);
/** Raises a counterexample or a tension (anywhere in a turn that asks a question). */
export const TENSION = new RegExp(
  [
    "(^|[、,\\s])(でも|しかし|けれども|ただ)[、,]|ても[、,]|ながらも|それでも|とはいえ|にもかかわらず", // but, even if
    "一方|逆に|反対に|矛盾|例外|食い違|両立|対立|それとも", // opposition, two sides
    "もし|としたら|とすれば|とすると|だとすると|場合", // hypotheticals: what if
    "本当に|必ず|いつも|常に|すべて|全部|全員|だけで|だけが|同じ|違って|違いま", // challenges to a general claim
    "ないでしょうか|ないのでしょうか", // "…ということはないでしょうか"
  ].join("|"),
  "u",
);
/** Invites the user to reason (inside a question or a ください request). */
export const REASONING = new RegExp(
  [
    "なぜ|何故|どうして|理由|根拠|何のため|何によって", // why
    "どう(思|考|感|捉|見)|お考え|(思|考|感じ)(います|われます|られます|ます)か|考えて|考える", // what do you think
    "言える|言えま|どうでしょう|どうですか|どうなる|どうなり|どうします|どうすれば|どうしたら|どうやって|どのように",
    "どちら|どっち|違い|違う|比べ|関係|判断|見分|決ま|何が", // compare, weigh, decide
  ].join("|"),
  "u",
);
/** Giving the answer outright (in a statement, not a question; not when reporting the user's view: "…べきだ、と"). */
export const ANSWER_GIVING =
  /(正解は|答えは|結論は|結論として|要するに|すべき|べきです|べきだ|なければなりません|なければならない|ねばならない|に決まって|明らかです|明らかだ|間違いありません|間違いない|とは.+(こと|もの|意味)(です|だ|である))(?![、,]?\s*と(いう|お考え|思|考|感|言|おっしゃ|の))/u;
/** A bare assertion: a statement ending in です/ます/だ/である without a softening ね・よね・かな. */
const BARE_ASSERTION = /(です|ます|ました|ません|でした|だ|である|であります)$/u;

export interface LectureBreakdown {
  /** Longest run of consecutive statements (non-questions). */
  assertionRun: number;
  /** Longest run of consecutive bare です/ます/だ assertions. */
  copulaChain: number;
  /** 1 when a statement gives the answer outright (答えは・正解は・〜すべきです・〜とは…ことです). */
  answerGiving: 0 | 1;
  /** min(1, clamp((assertionRun−2)/2) + clamp((copulaChain−2)/2) + answerGiving). */
  penalty: number;
}

export function lecture(text: string): LectureBreakdown {
  const sents = splitSentences(text);
  let run = 0, assertionRun = 0, chain = 0, copulaChain = 0;
  let answerGiving: 0 | 1 = 0;
  for (const s of sents) {
    if (isQuestion(s)) {
      run = 0;
      chain = 0;
      continue;
    }
    assertionRun = Math.max(assertionRun, ++run);
    chain = BARE_ASSERTION.test(stripSentenceEnd(s)) ? chain + 1 : 0;
    copulaChain = Math.max(copulaChain, chain);
    if (ANSWER_GIVING.test(s)) answerGiving = 1;
  }
  const penalty = Math.min(
    1,
    clamp01((assertionRun - 2) / 2) + clamp01((copulaChain - 2) / 2) + answerGiving,
  );
  return { assertionRun, copulaChain, answerGiving, penalty };
}

export interface PatternBreakdown {
  /** Asks for a definition or an example. */
  definitionOrExample: 0 | 1;
  /** Raises a counterexample or tension. */
  tension: 0 | 1;
  /** Invites the user to reason. */
  reasoning: 0 | 1;
  /** min(1, PROBE_CREDIT · (definitionOrExample + tension + reasoning)). */
  probe: number;
  /** Builds on the user's words; null when the context has no user turn. */
  uptake: number | null;
  lecture: LectureBreakdown;
  score: number;
}

export function patternScore(text: string, context: EvalSample["context"]): PatternBreakdown {
  const sents = splitSentences(text);
  // Probes must be asked: in a question sentence, or a request ("考えてみてください").
  const asked = sents.filter((s) => isQuestion(s) || /(ください|下さい)$/u.test(stripSentenceEnd(s)));
  const inAsked = (re: RegExp): 0 | 1 => (asked.some((s) => re.test(s)) ? 1 : 0);
  const definitionOrExample = inAsked(DEFINITION_OR_EXAMPLE);
  const reasoning = inAsked(REASONING);
  const tension: 0 | 1 = asked.length && sents.some((s) => TENSION.test(s)) ? 1 : 0;
  const probe = Math.min(1, PROBE_CREDIT * (definitionOrExample + tension + reasoning));
  const up = uptake(text, context);
  const lec = lecture(text);
  const base = up === null ? probe : PATTERN_WEIGHTS.uptake * up + PATTERN_WEIGHTS.probe * probe;
  const score = sents.length ? clamp01(base - PATTERN_WEIGHTS.lecture * lec.penalty) : 0;
  return { definitionOrExample, tension, reasoning, probe, uptake: up, lecture: lec, score };
}

// ---------------------------------------------------------------------------------------------------------
// Style

export interface StyleProfile {
  /** Share of sentences with a です/ます ending. */
  politeness: number;
  /** Share of sentences that are questions. */
  questionRatio: number;
  /** Mean sentence length in characters (NFKC, no whitespace). */
  meanSentenceLength: number;
  /** Shares of kana / kanji / Latin letters among all such characters (sum 1, or all 0 when there are none). */
  kana: number;
  kanji: number;
  latin: number;
  /** Number of sentences the profile was computed from (0 → empty profile). */
  sentences: number;
}

/** Style profile of one or more texts, pooled over all their sentences and characters. */
export function styleProfile(texts: string | string[]): StyleProfile {
  const list = typeof texts === "string" ? [texts] : texts;
  let n = 0, polite = 0, questions = 0, chars = 0, kana = 0, kanji = 0, latin = 0;
  for (const t of list) {
    for (const s of splitSentences(t)) {
      n++;
      if (isPolite(s)) polite++;
      if (isQuestion(s)) questions++;
      chars += charLength(s);
    }
    const c = scriptCounts(t);
    kana += c.kana;
    kanji += c.kanji;
    latin += c.latin;
  }
  const letters = kana + kanji + latin;
  return {
    politeness: n ? polite / n : 0,
    questionRatio: n ? questions / n : 0,
    meanSentenceLength: n ? chars / n : 0,
    kana: letters ? kana / letters : 0,
    kanji: letters ? kanji / letters : 0,
    latin: letters ? latin / letters : 0,
    sentences: n,
  };
}

/**
 * The 1号機 style: `styleProfile` over all 410 assistant turns of data/dialogue/processed/1gouki.json
 * (105 dialogues), rounded to 4 decimals. Obtained with
 *   deno eval 'import {styleProfile} from "./src/eval/metrics.ts";
 *     const d = JSON.parse(Deno.readTextFileSync("data/dialogue/processed/1gouki.json"));
 *     console.log(styleProfile(d.flatMap((r) => r.messages.filter((m) => m.role === "assistant")
 *       .map((m) => m.content))))'
 * tests/eval/metrics_test.ts recomputes it from the file and fails if the data or the profile code drift.
 */
export const ONE_GOUKI_PROFILE: StyleProfile = {
  politeness: 0.996,
  questionRatio: 0.5609,
  meanSentenceLength: 27.9143,
  kana: 0.7783,
  kanji: 0.2208,
  latin: 0.0009,
  sentences: 747,
};

export interface StyleDistanceParts {
  politeness: number;
  question: number;
  sentenceLength: number;
  script: number;
  /** sqrt(Σ STYLE_WEIGHTS_i · part_i²), in [0,1]. */
  distance: number;
}

/** Normalized distance between two style profiles; 1 when either is empty. */
export function styleDistance(a: StyleProfile, b: StyleProfile): StyleDistanceParts {
  if (!a.sentences || !b.sentences) {
    return { politeness: 1, question: 1, sentenceLength: 1, script: 1, distance: 1 };
  }
  const politeness = Math.abs(a.politeness - b.politeness);
  const question = Math.abs(a.questionRatio - b.questionRatio);
  const sentenceLength = a.meanSentenceLength > 0 && b.meanSentenceLength > 0
    ? clamp01(Math.abs(Math.log(a.meanSentenceLength / b.meanSentenceLength)) / Math.log(STYLE_LENGTH_FACTOR))
    : 1;
  const noLetters = (p: StyleProfile) => p.kana + p.kanji + p.latin === 0;
  const script = noLetters(a) || noLetters(b)
    ? (noLetters(a) && noLetters(b) ? 0 : 1)
    : clamp01((Math.abs(a.kana - b.kana) + Math.abs(a.kanji - b.kanji) + Math.abs(a.latin - b.latin)) / 2);
  const w = STYLE_WEIGHTS;
  const distance = clamp01(
    Math.sqrt(
      w.politeness * politeness ** 2 + w.question * question ** 2 + w.sentenceLength * sentenceLength ** 2 +
        w.script * script ** 2,
    ),
  );
  return { politeness, question, sentenceLength, script, distance };
}

// ---------------------------------------------------------------------------------------------------------
// Dialogue flow

export interface FlowBreakdown {
  uptake: number | null;
  /** 1 − clamp((max(repWithin, repAcross) − REPEAT_FREE) / REPEAT_SPAN). */
  nonRepetition: number;
  /** Share of repeated REPEAT_N_WITHIN-grams inside the turn: 1 − distinct/total. */
  repWithin: number;
  /** Share of the turn's distinct REPEAT_N_ACROSS-grams already in earlier model turns of the context. */
  repAcross: number;
  /** generated length / (reference length, else preceding user turn length). */
  lengthRatio: number;
  lengthBalance: number;
  score: number;
}

/** 1 inside [lo, hi]; falls linearly in log-ratio to 0 at lo/2 and at 2·hi. */
export function bandScore(ratio: number, [lo, hi]: readonly [number, number]): number {
  if (!(ratio > 0)) return 0;
  if (ratio < lo) return clamp01(1 - Math.log(lo / ratio) / Math.LN2);
  if (ratio > hi) return clamp01(1 - Math.log(ratio / hi) / Math.LN2);
  return 1;
}

export function dialogueFlow(
  generated: string,
  context: EvalSample["context"],
  reference?: string,
): FlowBreakdown {
  const up = uptake(generated, context);
  const grams = charNgramList(generated, REPEAT_N_WITHIN);
  const repWithin = grams.length ? 1 - new Set(grams).size / grams.length : 0;
  const mine = charNgrams(generated, REPEAT_N_ACROSS);
  const earlier = new Set(
    context.filter((t) => t.role !== "user").flatMap((t) => charNgramList(t.content, REPEAT_N_ACROSS)),
  );
  let seen = 0;
  for (const g of mine) if (earlier.has(g)) seen++;
  const repAcross = mine.size ? seen / mine.size : 0;
  const nonRepetition = 1 - clamp01((Math.max(repWithin, repAcross) - REPEAT_FREE) / REPEAT_SPAN);

  const genLen = charLength(generated);
  const users = context.filter((t) => t.role === "user" && !isBlank(t.content));
  let lengthRatio = 0, lengthBalance = 0;
  if (!isBlank(reference)) {
    lengthRatio = genLen / charLength(reference!);
    lengthBalance = bandScore(lengthRatio, LENGTH_BAND_REFERENCE);
  } else if (users.length) {
    lengthRatio = genLen / charLength(users[users.length - 1].content);
    lengthBalance = bandScore(lengthRatio, LENGTH_BAND_USER);
  } else {
    // Nothing to compare the length with: any non-empty turn is balanced.
    lengthRatio = genLen > 0 ? 1 : 0;
    lengthBalance = genLen > 0 ? 1 : 0;
  }
  const body = up === null ? lengthBalance : FLOW_WEIGHTS.uptake * up + FLOW_WEIGHTS.length * lengthBalance;
  const score = isBlank(generated) ? 0 : clamp01(nonRepetition * body);
  return { uptake: up, nonRepetition, repWithin, repAcross, lengthRatio, lengthBalance, score };
}

// ---------------------------------------------------------------------------------------------------------
// Response consistency

/** Jaccard similarity of the character-bigram sets of two texts (identical texts → 1, a blank text → 0). */
export function bigramJaccard(a: string, b: string): number {
  if (isBlank(a) || isBlank(b)) return 0;
  const A = charNgrams(a, 2), B = charNgrams(b, 2);
  if (!A.size || !B.size) return wordRuns(a).join("") === wordRuns(b).join("") ? 1 : 0;
  let inter = 0;
  for (const x of A) if (B.has(x)) inter++;
  return inter / (A.size + B.size - inter);
}

/** Pair similarity: CONSISTENCY_WEIGHTS.text · bigram Jaccard + .question · [both ask or neither]; 0 if blank. */
export function pairConsistency(a: string, b: string): number {
  if (isBlank(a) || isBlank(b)) return 0;
  const sameQ = asksQuestion(a) === asksQuestion(b) ? 1 : 0;
  return clamp01(CONSISTENCY_WEIGHTS.text * bigramJaccard(a, b) + CONSISTENCY_WEIGHTS.question * sameQ);
}

/**
 * The responses compared for one context: `samples` when there are at least two; else the greedy response
 * plus the single sample. Fewer than two → null (not measurable).
 */
export function consistencyResponses(sample: EvalSample): string[] | null {
  const s = sample.samples ?? [];
  const set = s.length >= 2 ? s : [sample.generated, ...s];
  return set.length >= 2 ? set : null;
}

/** Mean pairwise `pairConsistency` over the responses; null when fewer than two. */
export function responseConsistency(responses: string[] | null): number | null {
  if (!responses || responses.length < 2) return null;
  let sum = 0, pairs = 0;
  for (let i = 0; i < responses.length; i++) {
    for (let j = i + 1; j < responses.length; j++) {
      sum += pairConsistency(responses[i], responses[j]);
      pairs++;
    }
  }
  return clamp01(sum / pairs);
}

// ---------------------------------------------------------------------------------------------------------
// Per turn and aggregated

export interface TurnScore {
  socratic_question_rate: number;
  socratic_pattern_score: number;
  style_consistency: number;
  dialogue_flow: number;
  /** null when fewer than two responses were available for this context (left out of the mean). */
  response_consistency: number | null;
  details: {
    /** Sentences of the generated turn as the metrics split them. */
    sentences: string[];
    pattern: PatternBreakdown;
    style: {
      generated: StyleProfile;
      /** The reference turn's profile, or ONE_GOUKI_PROFILE when the sample has no reference. */
      against: StyleProfile;
      againstBuiltIn: boolean;
      parts: StyleDistanceParts;
    };
    flow: FlowBreakdown;
    /** How many responses response_consistency compared (0 when null). */
    consistencyResponses: number;
  };
}

/** Scores one generated turn, with the breakdown of every metric (for tests and the samples file). */
export function scoreTurn(sample: EvalSample): TurnScore {
  const gen = sample.generated ?? "";
  const blank = isBlank(gen);
  const pattern = patternScore(gen, sample.context);
  const againstBuiltIn = isBlank(sample.reference);
  const against = againstBuiltIn ? ONE_GOUKI_PROFILE : styleProfile(sample.reference!);
  const generated = styleProfile(gen);
  const parts = styleDistance(generated, against);
  const flow = dialogueFlow(gen, sample.context, sample.reference);
  const responses = consistencyResponses(sample);
  const consistency = responseConsistency(responses);
  return {
    socratic_question_rate: blank ? 0 : asksQuestion(gen),
    socratic_pattern_score: blank ? 0 : pattern.score,
    style_consistency: blank ? 0 : clamp01(1 - parts.distance),
    dialogue_flow: blank ? 0 : flow.score,
    response_consistency: blank ? 0 : consistency,
    details: {
      sentences: splitSentences(gen),
      pattern,
      style: { generated, against, againstBuiltIn, parts },
      flow,
      consistencyResponses: consistency === null || blank ? 0 : responses!.length,
    },
  };
}

export interface ScoredSamples {
  metrics: SocraticMetrics;
  turns: TurnScore[];
  /** Samples whose response_consistency was measurable (the mean is over these; 0 of them → 0). */
  consistencyCount: number;
}

/** Per-turn scores and their means (see `scoreSamples`). */
export function scoreSamplesDetailed(samples: EvalSample[]): ScoredSamples {
  const turns = samples.map(scoreTurn);
  const mean = (xs: number[]) => (xs.length ? clamp01(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);
  const measured = turns.map((t) => t.response_consistency).filter((x): x is number => x !== null);
  return {
    metrics: {
      socratic_question_rate: mean(turns.map((t) => t.socratic_question_rate)),
      socratic_pattern_score: mean(turns.map((t) => t.socratic_pattern_score)),
      style_consistency: mean(turns.map((t) => t.style_consistency)),
      dialogue_flow: mean(turns.map((t) => t.dialogue_flow)),
      response_consistency: mean(measured),
    },
    turns,
    consistencyCount: measured.length,
  };
}

/**
 * The five metrics, each the mean over the samples of `scoreTurn`'s value (response_consistency: over the
 * samples where it is measurable, 0 when none is). No samples → all 0. Always finite and in [0,1].
 */
export function scoreSamples(samples: EvalSample[]): SocraticMetrics {
  return scoreSamplesDetailed(samples).metrics;
}
