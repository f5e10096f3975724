/**
 * Socratic metrics (src/eval/metrics.ts, formulas in src/eval/metrics.md) on hand-written Japanese examples
 * that must score high and low, edge cases, ranges, determinism, and the bundled 1gouki.json dialogues.
 */
import assert from "node:assert/strict";
import {
  asksQuestion,
  type EvalSample,
  ONE_GOUKI_PROFILE,
  patternScore,
  scoreSamples,
  scoreSamplesDetailed,
  scoreTurn,
  type SocraticMetrics,
  styleProfile,
} from "../../src/eval/metrics.ts";
import { isPolite, isQuestion, scriptMix, splitSentences } from "../../src/eval/japanese.ts";
import { EVAL_METRICS } from "../../src/report/metrics_csv.ts";

type Ctx = EvalSample["context"];
const user = (content: string): Ctx[number] => ({ role: "user", content });
const model = (content: string): Ctx[number] => ({ role: "model", content });

const FAIRNESS: Ctx = [user("みんなを公平に扱うのが一番大事だと思います。")];
const SOCRATIC = "『公平』とおっしゃいましたが、それはどういう意味でしょうか？例を挙げていただけますか？";
const LECTURE = "公平とは全員を同じに扱うことです。これは重要です。答えは明らかです。";

const METRIC_KEYS: (keyof SocraticMetrics)[] = [...EVAL_METRICS];

function assertUnit(x: number | null, what: string) {
  if (x === null) return;
  assert.ok(Number.isFinite(x) && x >= 0 && x <= 1, `${what} = ${x} is not in [0,1]`);
}

function assertAllUnit(m: SocraticMetrics | ReturnType<typeof scoreTurn>, what: string) {
  for (const k of METRIC_KEYS) assertUnit(m[k], `${what}.${k}`);
}

// ---------------------------------------------------------------------------------------------------------
// Japanese helpers

Deno.test("japanese: sentences split on full- and half-width terminators, not inside 「…」", () => {
  assert.deepEqual(splitSentences("勇気とは何でしょうか？例を挙げてください。"), [
    "勇気とは何でしょうか?",
    "例を挙げてください。",
  ]);
  assert.deepEqual(splitSentences("勇気とは何でしょうか?例を挙げてください!"), [
    "勇気とは何でしょうか?",
    "例を挙げてください!",
  ]);
  assert.deepEqual(splitSentences("「なぜ？」と聞かれました。どう答えますか？"), [
    "「なぜ?」と聞かれました。",
    "どう答えますか?",
  ]);
  assert.deepEqual(splitSentences("一行目\n二行目です"), ["一行目", "二行目です"]);
  assert.deepEqual(splitSentences("  \n 。。？ "), []);
  // An unbalanced bracket does not swallow the rest of the text.
  assert.equal(splitSentences("「閉じていません。まだですか？").length, 2);
});

Deno.test("japanese: question endings か・でしょうか・ますか・？/? and interrogative + でしょう", () => {
  for (
    const q of [
      "本当ですか",
      "本当ですか。",
      "そう思いますか？",
      "そう思いますか?",
      "それは公平でしょうか",
      "どちらに近いのでしょう",
      "あなたはどう考えるのかな。",
      "Is it fair?",
      "ほんと？」",
    ]
  ) assert.ok(isQuestion(q), q);
  for (
    const s of [
      "じゃんけんとか、順番とか。",
      "明日は雨でしょう。",
      "「なぜ？」と聞かれました。",
      "それは大事です。",
      "そうなの。",
      "",
    ]
  ) assert.ok(!isQuestion(s), s);
});

Deno.test("japanese: です/ます politeness, casual forms are not polite", () => {
  for (
    const p of [
      "そうですね。",
      "どう思いますか？",
      "考えてみてください。",
      "行きましょう！",
      "大丈夫ですよね",
    ]
  ) {
    assert.ok(isPolite(p), p);
  }
  for (const c of ["そうだね。", "本当か？", "マジでやばいじゃん。", "It is fine.", "まあいいけど。"]) {
    assert.ok(!isPolite(c), c);
  }
});

Deno.test("japanese: script mix counts kana, kanji and (full-width) Latin", () => {
  const m = scriptMix("かなカナ漢字ＡＢ");
  assert.equal(m.count, 8);
  assert.equal(m.kana, 0.5);
  assert.equal(m.kanji, 0.25);
  assert.equal(m.latin, 0.25);
  assert.deepEqual(scriptMix("。？!"), { kana: 0, kanji: 0, latin: 0, count: 0 });
});

// ---------------------------------------------------------------------------------------------------------
// socratic_question_rate

Deno.test("question rate: a Socratic reply asks, a lecture does not", () => {
  assert.equal(scoreTurn({ context: FAIRNESS, generated: SOCRATIC }).socratic_question_rate, 1);
  assert.equal(scoreTurn({ context: FAIRNESS, generated: LECTURE }).socratic_question_rate, 0);
});

Deno.test("question rate: half-width ? and full-width ？ both count, and bare か endings too", () => {
  for (
    const g of ["公平とはどういう意味でしょうか?", "公平とはどういう意味でしょうか？", "公平とは何ですか。"]
  ) {
    assert.equal(asksQuestion(g), 1, g);
  }
  const half = scoreTurn({ context: FAIRNESS, generated: "公平とはどういう意味でしょうか?" });
  const full = scoreTurn({ context: FAIRNESS, generated: "公平とはどういう意味でしょうか？" });
  for (const k of METRIC_KEYS) assert.equal(half[k], full[k], k);
});

Deno.test("question rate: a rhetorical question answered by the speaker is not asking", () => {
  assert.equal(asksQuestion("なぜでしょうか？それは平等だからです。つまり全員が同じなのです。"), 0);
  // A question followed by one remark still asks.
  assert.equal(asksQuestion("あなたはどう思いますか？私も迷っています。"), 1);
});

// ---------------------------------------------------------------------------------------------------------
// socratic_pattern_score

Deno.test("pattern: a definition request quoting the user's word scores high, a lecture scores ~0", () => {
  const s = scoreTurn({ context: FAIRNESS, generated: SOCRATIC });
  assert.ok(s.socratic_pattern_score >= 0.7, `socratic ${s.socratic_pattern_score}`);
  assert.equal(s.details.pattern.definitionOrExample, 1);
  assert.equal(s.details.pattern.uptake, 1);
  assert.equal(s.details.pattern.lecture.penalty, 0);

  const l = scoreTurn({ context: FAIRNESS, generated: LECTURE });
  assert.ok(l.socratic_pattern_score <= 0.1, `lecture ${l.socratic_pattern_score}`);
  assert.equal(l.details.pattern.lecture.answerGiving, 1);
  assert.equal(l.details.pattern.lecture.copulaChain, 3);
  assert.equal(l.details.pattern.lecture.penalty, 1);
});

Deno.test("pattern: each Socratic move is detected; two moves with uptake saturate", () => {
  const ctx: Ctx = [user("勇気って、怖いものがない人のことですよね。")];
  const tension = patternScore(
    "怖いものがない人が勇気がある、と。でも、もし怖さを知らずに飛び降りる人がいたら、それも勇気でしょうか？",
    ctx,
  );
  assert.equal(tension.tension, 1);
  const reasoning = patternScore("なぜ、怖いものがないことが勇気だと考えるのですか？", ctx);
  assert.equal(reasoning.reasoning, 1);
  const example = patternScore("勇気のある人として、具体的に誰が思い浮かびますか？", ctx);
  assert.equal(example.definitionOrExample, 1);
  const both = patternScore(
    "「怖いものがない人」が勇気のある人なのですね。では、怖さを感じながらも一歩を踏み出す人は、勇気がないと言えるでしょうか？",
    ctx,
  );
  assert.equal(both.uptake, 1);
  assert.ok(both.tension + both.reasoning + both.definitionOrExample >= 2);
  assert.equal(both.score, 1);
  // A bare generic question that ignores the user is a weak move.
  const generic = patternScore("ところで、今日の天気はどうでしたか？", ctx);
  assert.ok(generic.score < both.score && generic.score <= 0.4, `generic ${generic.score}`);
});

Deno.test("pattern: giving the answer or a です chain is lecturing; echoing the user's すべき is not", () => {
  const ctx: Ctx = [user("親の言うことには従うべきですよね。")];
  const preach = patternScore("親には従うべきです。それが家族というものです。どう思いますか？", ctx);
  assert.equal(preach.lecture.answerGiving, 1);
  assert.ok(preach.score <= 0.1, `preach ${preach.score}`);
  const echo = patternScore(
    "親には従うべきだ、というお考えですね。もし親が間違っていたら、どうしますか？",
    ctx,
  );
  assert.equal(echo.lecture.penalty, 0);
  assert.ok(echo.score >= 0.8, `echo ${echo.score}`);
  const chain = patternScore("それは大切です。人は平等です。社会は公平です。規則は大事です。", ctx);
  assert.equal(chain.lecture.assertionRun, 4);
  assert.equal(chain.score, 0);
});

// ---------------------------------------------------------------------------------------------------------
// style_consistency

const POLITE_QUESTION_TURNS = [
  "公平でありたい、というお気持ちなのですね。あなたにとって、公平とはどんな状態でしょうか？",
  "比べられるのがつらかったのですね。そのとき、誰と比べられていると感じましたか？",
  "なるほど、時間の使い方が気になっているのですね。どんなところから変えられそうでしょうか？",
];
const CASUAL = "公平とかマジでどうでもいいじゃん。みんな好きにすればいいんだよ。てか、それ本気で言ってんの？";
const ENGLISH = "Fairness simply means treating everyone the same way. That is the answer. Think about it.";

Deno.test("style: polite question-style turns match the 1号機 profile, casual and English do not", () => {
  for (const g of POLITE_QUESTION_TURNS) {
    const s = scoreTurn({ context: FAIRNESS, generated: g });
    assert.ok(s.details.style.againstBuiltIn);
    assert.ok(s.style_consistency >= 0.85, `${g}: ${s.style_consistency}`);
  }
  const casual = scoreTurn({ context: FAIRNESS, generated: CASUAL }).style_consistency;
  const english = scoreTurn({ context: FAIRNESS, generated: ENGLISH }).style_consistency;
  assert.ok(casual <= 0.45, `casual ${casual}`);
  assert.ok(english <= 0.3, `english ${english}`);
});

Deno.test("style: measured against the reference turn when there is one", () => {
  const reference = POLITE_QUESTION_TURNS[0];
  const same = scoreTurn({ context: FAIRNESS, reference, generated: reference });
  assert.equal(same.style_consistency, 1);
  assert.ok(!same.details.style.againstBuiltIn);
  const near = scoreTurn({ context: FAIRNESS, reference, generated: POLITE_QUESTION_TURNS[1] });
  assert.ok(near.style_consistency >= 0.85, `near ${near.style_consistency}`);
  const casual = scoreTurn({ context: FAIRNESS, reference, generated: CASUAL });
  assert.ok(casual.style_consistency <= 0.45, `casual ${casual.style_consistency}`);
});

// ---------------------------------------------------------------------------------------------------------
// dialogue_flow

Deno.test("flow: taking up the user is high; repeating itself or ignoring the user is low", () => {
  const ctx: Ctx = [user("節約のために、毎日お昼はコンビニのおにぎり一個にしています。")];
  const good = scoreTurn({
    context: ctx,
    generated: "毎日おにぎり一個で節約しているのですね。その節約は、何のためでしょうか？",
  });
  assert.ok(good.dialogue_flow >= 0.85, `good ${good.dialogue_flow}`);
  const loop = scoreTurn({
    context: ctx,
    generated: "節約は大事ですね。節約は大事ですね。節約は大事ですね。節約は大事ですね。",
  });
  assert.ok(loop.details.flow.repWithin > 0.6);
  assert.ok(loop.dialogue_flow <= 0.1, `loop ${loop.dialogue_flow}`);
  const ignore = scoreTurn({
    context: ctx,
    generated: "ところで、好きな映画は何ですか？最近見たものを教えてください。",
  });
  assert.equal(ignore.details.flow.uptake, 0);
  assert.ok(ignore.dialogue_flow <= 0.4, `ignore ${ignore.dialogue_flow}`);
});

Deno.test("flow: repeating an earlier model turn is penalized", () => {
  const earlier = "それは大切なことですね。具体的には、どんな場面でそう感じますか？";
  const ctx: Ctx = [user("友だちは大切だと思います。"), model(earlier), user("友だちといるときです。")];
  const again = scoreTurn({ context: ctx, generated: earlier });
  assert.ok(again.details.flow.repAcross > 0.9);
  assert.equal(again.details.flow.nonRepetition, 0);
  assert.equal(again.dialogue_flow, 0);
  const fresh = scoreTurn({
    context: ctx,
    generated: "友だちといるときなのですね。そのとき、友だちの何が大切だと感じますか？",
  });
  assert.ok(fresh.dialogue_flow >= 0.8, `fresh ${fresh.dialogue_flow}`);
});

Deno.test("flow: a turn far longer than the reference loses length balance", () => {
  const reference = "毎日おにぎり一個なのですね。何のための節約でしょうか？";
  const ctx: Ctx = [user("毎日お昼はおにぎり一個にしています。")];
  const ok = scoreTurn({
    context: ctx,
    reference,
    generated: "おにぎり一個の節約なのですね。目的は何でしょうか？",
  });
  const long = scoreTurn({
    context: ctx,
    reference,
    generated: "おにぎり一個の節約なのですね。".repeat(1) +
      "お金を貯めることには色々な方法があって、".repeat(12) + "目的は何でしょうか？",
  });
  assert.equal(ok.details.flow.lengthBalance, 1);
  assert.ok(long.details.flow.lengthBalance < 0.2, `long balance ${long.details.flow.lengthBalance}`);
  assert.ok(long.dialogue_flow < ok.dialogue_flow);
});

// ---------------------------------------------------------------------------------------------------------
// response_consistency

Deno.test("consistency: near-identical samples agree, unrelated ones do not", () => {
  const high = scoreTurn({
    context: FAIRNESS,
    generated: SOCRATIC,
    samples: [
      "「公平」とおっしゃいましたが、それはどういう意味でしょうか？",
      "「公平」とおっしゃいましたが、それはどういう意味ですか？",
      "「公平」とおっしゃいましたが、どういう意味でしょうか？",
    ],
  });
  assert.ok(high.response_consistency! >= 0.7, `high ${high.response_consistency}`);
  assert.equal(high.details.consistencyResponses, 3);
  const low = scoreTurn({
    context: FAIRNESS,
    generated: SOCRATIC,
    samples: [
      "「公平」とはどういう意味でしょうか？",
      "今日はいい天気ですね。散歩に行きました。",
      "Fairness is hard to define.",
    ],
  });
  assert.ok(low.response_consistency! <= 0.3, `low ${low.response_consistency}`);
});

Deno.test("consistency: fewer than two responses is unmeasured (null), left out of the mean, 0 if none", () => {
  const none = scoreTurn({ context: FAIRNESS, generated: SOCRATIC });
  assert.equal(none.response_consistency, null);
  assert.equal(none.details.consistencyResponses, 0);
  // One sample: compared with the greedy response.
  const one = scoreTurn({ context: FAIRNESS, generated: SOCRATIC, samples: [SOCRATIC] });
  assert.equal(one.response_consistency, 1);
  const agg = scoreSamplesDetailed([
    { context: FAIRNESS, generated: SOCRATIC },
    { context: FAIRNESS, generated: SOCRATIC, samples: [SOCRATIC, SOCRATIC] },
  ]);
  assert.equal(agg.consistencyCount, 1);
  assert.equal(agg.metrics.response_consistency, 1);
  assert.equal(scoreSamples([{ context: FAIRNESS, generated: SOCRATIC }]).response_consistency, 0);
});

// ---------------------------------------------------------------------------------------------------------
// Edge cases, ranges, determinism

Deno.test("edge: empty or blank generated text scores 0 everywhere, never NaN", () => {
  for (const g of ["", "   ", "\n\n", "。？！"]) {
    const s = scoreTurn({
      context: FAIRNESS,
      reference: SOCRATIC,
      generated: g,
      samples: [SOCRATIC, SOCRATIC],
    });
    for (const k of METRIC_KEYS) assert.equal(s[k], 0, `${JSON.stringify(g)} ${k}`);
  }
  assert.deepEqual(scoreSamples([]), Object.fromEntries(METRIC_KEYS.map((k) => [k, 0])));
  const blankSamples = scoreTurn({ context: FAIRNESS, generated: SOCRATIC, samples: ["", ""] });
  assert.equal(blankSamples.response_consistency, 0);
});

Deno.test("edge: no user turn in the context still scores in [0,1]", () => {
  const s = scoreTurn({ context: [], generated: SOCRATIC });
  assert.equal(s.details.pattern.uptake, null);
  assert.equal(s.details.flow.uptake, null);
  assertAllUnit(s, "no context");
  assert.ok(s.socratic_pattern_score > 0);
});

/** mulberry32, so the fuzz inputs are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("range: every metric stays in [0,1] on random mixtures of Japanese, Latin, digits and punctuation", () => {
  const pool = [..."あいうかきでしょうますか？?!！。、「」『』…公平勇気本当カタカナABCxyz 123\n"];
  const pieces = [
    "でしょうか？",
    "です。",
    "ですか",
    "でも、",
    "もし",
    "なぜ",
    "答えは",
    "「公平」",
    "ね。",
    "?",
  ];
  const r = rng(7);
  const text = () => {
    let t = "";
    const n = Math.floor(r() * 40);
    for (let i = 0; i < n; i++) {
      t += r() < 0.3 ? pieces[Math.floor(r() * pieces.length)] : pool[Math.floor(r() * pool.length)];
    }
    return t;
  };
  const samples: EvalSample[] = [];
  for (let i = 0; i < 200; i++) {
    samples.push({
      context: [user(text()), model(text()), user(text())],
      reference: r() < 0.5 ? text() : undefined,
      generated: text(),
      samples: r() < 0.5 ? [text(), text(), text()].slice(0, Math.floor(r() * 4)) : undefined,
    });
  }
  const det = scoreSamplesDetailed(samples);
  det.turns.forEach((t, i) => assertAllUnit(t, `turn ${i}`));
  assertAllUnit(det.metrics, "aggregate");
});

Deno.test("determinism: same input, same output (and independent of batch order)", () => {
  const batch: EvalSample[] = [
    { context: FAIRNESS, generated: SOCRATIC, samples: [SOCRATIC, LECTURE] },
    { context: FAIRNESS, generated: LECTURE, reference: SOCRATIC },
    { context: FAIRNESS, generated: CASUAL },
  ];
  const a = scoreSamplesDetailed(batch);
  const b = scoreSamplesDetailed(structuredClone(batch));
  assert.deepEqual(a, b);
  const rev = scoreSamplesDetailed([...batch].reverse());
  assert.deepEqual(rev.turns, [...a.turns].reverse());
  for (const k of METRIC_KEYS) assert.ok(Math.abs(rev.metrics[k] - a.metrics[k]) < 1e-12, k);
});

Deno.test("api: SocraticMetrics keys are exactly the CSV's EVAL_METRICS", () => {
  assert.deepEqual(Object.keys(scoreSamples([])).sort(), [...EVAL_METRICS].sort());
});

// ---------------------------------------------------------------------------------------------------------
// The bundled dataset

interface ChatRecord {
  messages: { role: string; content: string }[];
}
const DATA = new URL("../../data/dialogue/processed/1gouki.json", import.meta.url);
const records = (): ChatRecord[] => JSON.parse(Deno.readTextFileSync(DATA));

Deno.test("ONE_GOUKI_PROFILE is styleProfile over the bundled assistant turns (recomputed)", () => {
  const turns = records().flatMap((r) =>
    r.messages.filter((m) => m.role === "assistant").map((m) => m.content)
  );
  const p = styleProfile(turns);
  assert.equal(p.sentences, ONE_GOUKI_PROFILE.sentences);
  for (const k of ["politeness", "questionRatio", "meanSentenceLength", "kana", "kanji", "latin"] as const) {
    assert.ok(
      Math.abs(p[k] - ONE_GOUKI_PROFILE[k]) <= 5e-5,
      `ONE_GOUKI_PROFILE.${k} = ${ONE_GOUKI_PROFILE[k]} but the data gives ${p[k]}: update the constant`,
    );
  }
});

Deno.test("dataset: the 1号機 turns the model learns from are Socratic by our own measure", () => {
  const samples: EvalSample[] = [];
  for (const r of records()) {
    const ctx: Ctx = r.messages.map((m) => (m.role === "user" ? user(m.content) : model(m.content)));
    ctx.forEach((t, i) => {
      if (t.role === "model") samples.push({ context: ctx.slice(0, i), generated: t.content });
    });
  }
  assert.equal(samples.length, 410);
  const m = scoreSamples(samples);
  assertAllUnit(m, "dataset");
  assert.ok(m.socratic_question_rate > 0.9, `question rate ${m.socratic_question_rate}`);
  assert.ok(m.socratic_pattern_score > 0.6, `pattern ${m.socratic_pattern_score}`);
  assert.ok(m.style_consistency > 0.85, `style ${m.style_consistency}`);
  assert.ok(m.dialogue_flow > 0.7, `flow ${m.dialogue_flow}`);
  // With the turn as its own reference the style matches exactly.
  const self = scoreSamples(samples.map((s) => ({ ...s, reference: s.generated })));
  assert.equal(self.style_consistency, 1);
});
