/**
 * Socratic figures (src/eval/metrics.ts, documented in docs/socratic_metrics.md) on hand-written Japanese
 * replies, one behaviour per test: the degenerate gate, question forms, telling, uptake, register,
 * consistency over samples, ranges, determinism, and the bundled 1gouki.json dialogues. The AUROC targets on the
 * labelled set are in tests/eval/validation_test.ts.
 */
import assert from "node:assert/strict";
import {
  degenerate,
  distinctN,
  type EvalSample,
  questionForm,
  register,
  REPLY_FIGURES,
  scoreReply,
  scoreSamples,
  scoreSamplesDetailed,
  socraticShare,
  telling,
  uptake,
} from "../../src/eval/metrics.ts";
import { isPolite, isQuestion, scriptMix, splitSentences } from "../../src/eval/japanese.ts";
import { EVAL_METRICS } from "../../src/report/metrics_csv.ts";
import { mulberry32 } from "../../src/util/random.ts";

type Ctx = EvalSample["context"];
const user = (content: string): Ctx[number] => ({ role: "user", content });
const model = (content: string): Ctx[number] => ({ role: "model", content });

const FAIRNESS: Ctx = [user("みんなを公平に扱うのが一番大事だと思います。")];
const SOCRATIC = "「公平」を大事にしているのですね。あなたの言う公平とは、どんな状態のことでしょうか？";
const LECTURE = "公平とは全員を同じに扱うことです。これは重要です。答えは明らかです。";

function assertUnit(x: number | null, what: string) {
  if (x === null) return;
  assert.ok(Number.isFinite(x) && x >= 0 && x <= 1, `${what} = ${x} is not in [0,1]`);
}

const score = (generated: string, context: Ctx = FAIRNESS, extra: Partial<EvalSample> = {}) =>
  scoreReply({ context, generated, ...extra });

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
// The degenerate gate

Deno.test("gate: empty, blank and punctuation-only replies are degenerate and score 0 everywhere", () => {
  for (const g of ["", "   ", "\n", "。。。", "？"]) {
    const s = score(g);
    assert.equal(s.degenerate, "empty", JSON.stringify(g));
    for (const k of REPLY_FIGURES) {
      if (k !== "no_telling") assert.equal(s.figures[k], 0, `${JSON.stringify(g)} ${k}`);
    }
  }
});

Deno.test("gate: loops, English, copies of the user or of an earlier model turn, cut-offs", () => {
  assert.equal(
    degenerate({ context: FAIRNESS, generated: "公平とは何でしょうか。公平とは何でしょうか。" }),
    "loop",
  );
  assert.equal(
    degenerate({ context: FAIRNESS, generated: "順位、順位、順位、順位、順位、順位、順位、順位。" }),
    "loop",
  );
  assert.equal(degenerate({ context: FAIRNESS, generated: "What do you mean by fair?" }), "non_japanese");
  assert.equal(degenerate({ context: FAIRNESS, generated: FAIRNESS[0].content }), "copy_user");
  // The fixed template that scored 1.00 on three seed figures in every context.
  const echo =
    "「みんなを公平に扱うのが一番大事だと思います」とおっしゃいましたが、それはどういう意味だと思いますか？";
  assert.equal(degenerate({ context: FAIRNESS, generated: echo }), "copy_user");
  assert.equal(score(echo).figures.socratic_score, 0);
  const earlier = "公平とは、どういうことだと思いますか？";
  const ctx: Ctx = [user("公平が大事。"), model(earlier), user("みんな同じってこと。")];
  assert.equal(degenerate({ context: ctx, generated: earlier }), "copy_model");
  // Cut off: by the decoder's finish reason, or a text that stops mid-sentence.
  assert.equal(degenerate({ context: FAIRNESS, generated: SOCRATIC, finish: "length" }), "cut_off");
  assert.equal(
    degenerate({
      context: FAIRNESS,
      generated: "「公平」を大事にしているのですね。あなたの言う公平とは、どんな",
    }),
    "cut_off",
  );
  assert.equal(degenerate({ context: FAIRNESS, generated: SOCRATIC, finish: "stop" }), null);
  // A question without "？" is complete; a short quote of the user is uptake, not a copy.
  assert.equal(degenerate({ context: FAIRNESS, generated: "公平とはどういう意味ですか" }), null);
});

// ---------------------------------------------------------------------------------------------------------
// Question form

Deno.test("question form: open questions (question word, either/or, hypothetical, counterexample, request)", () => {
  for (
    const g of [
      SOCRATIC,
      "公平を大事にしているのですね。なぜ、それが一番大事だと思うのでしょうか？",
      "公平とは、全員に同じものを配ることでしょうか、それとも必要な人に多く配ることでしょうか？",
      "公平が一番大事なのですね。もし公平にすると誰かが困るとしたら、それでも公平が一番大事だと言えるでしょうか？",
      "公平が大事なのですね。公平だと感じた場面の例を挙げていただけますか？",
    ]
  ) assert.equal(questionForm(g, FAIRNESS).form, "open", g);
});

Deno.test("question form: closed, leading, rhetorical, quiz, stacked, off-topic and none are told apart", () => {
  const cases: [string, string][] = [
    ["公平な扱いを受けたことはありますか？", "closed"],
    ["公平に扱うのは当然ですよね？", "leading"],
    ["公平こそが一番大切なのではないでしょうか？", "leading"],
    ["公平は大事でしょうか。もちろん大事です。公平は社会の基本です。", "rhetorical"],
    ["「公平」という言葉を最初に使った哲学者は誰か、知っていますか？", "quiz"],
    ["公平は大事ですか？どうしてですか？いつからそう思いますか？", "stacked"],
    ["ところで、好きな食べ物は何ですか？", "off_topic"],
    [LECTURE, "none"],
  ];
  for (const [g, form] of cases) assert.equal(questionForm(g, FAIRNESS).form, form, g);
  // Each failure is counted apart in the aggregates.
  const m = scoreSamples(cases.map(([g]) => ({ context: FAIRNESS, generated: g })));
  for (const k of ["closed", "leading", "rhetorical", "quiz", "stacked", "off_topic"] as const) {
    assert.ok(m[`${k}_question_rate`] > 0, k);
  }
  assert.equal(m.no_question_rate, 1 / 8);
  assert.equal(m.socratic_question_rate, 0);
});

Deno.test("question form: a quoted word does not make a question leading; two questions are not stacked", () => {
  const q = "「当たり前」とおっしゃいましたね。その「当たり前」は、誰が決めたものでしょうか？";
  assert.equal(questionForm(q, [user("公平なのは当たり前だと思う。")]).form, "open");
  const two = "公平が大事なのですね。それは全員が同じということでしょうか？どんなときにそう感じますか？";
  assert.equal(questionForm(two, FAIRNESS).form, "open");
});

// ---------------------------------------------------------------------------------------------------------
// Telling, uptake, register

Deno.test("telling: explaining or giving the answer is telling; reflecting the user back is not", () => {
  assert.equal(telling(LECTURE).telling, 1);
  assert.equal(telling(SOCRATIC).telling, 0);
  assert.equal(telling("公平が大事だというお考えなのですね。どうしてそう思うのですか？").telling, 0);
  // A lecture with an open question tacked on still loses most of its score.
  const tacked =
    "公平には機会の平等と結果の平等の二つがあります。一般的には機会の平等が重要だとされています。あなたはどう思いますか？";
  const s = score(tacked);
  assert.equal(s.question_form, "open");
  assert.ok(s.telling >= 0.99, `telling ${s.telling}`);
  assert.ok(s.figures.socratic_score < 0.45 && score(SOCRATIC).figures.socratic_score > 0.9);
});

Deno.test("uptake: a short quote or a shared content word is uptake, ignoring the user is none", () => {
  assert.equal(uptake(SOCRATIC, FAIRNESS), 1);
  const shared = uptake("公平について、どう感じますか？", FAIRNESS)!;
  assert.ok(shared > 0.3 && shared < 1, `shared ${shared}`);
  assert.equal(uptake("好きな季節はいつですか？", FAIRNESS), 0);
  assert.equal(uptake("どう思いますか？", []), null);
  // A copy earns no uptake: dialogue_flow and uptake are gated.
  assert.equal(score(FAIRNESS[0].content).figures.dialogue_flow, 0);
  assert.equal(score(FAIRNESS[0].content).figures.uptake, 0);
});

Deno.test("register: polite です/ます Japanese passes; casual or English does not", () => {
  assert.equal(register(SOCRATIC), 1);
  assert.equal(register("なるほど。公平が大事なのですね。どうしてでしょうか？"), 1);
  assert.equal(register("公平が大事なんだね。どうして？"), 0);
  assert.equal(register("Why is fairness important to you?"), 0);
  assert.equal(register(""), 0);
});

// ---------------------------------------------------------------------------------------------------------
// Consistency over K samples

Deno.test("consistency: the share of samples that are Socratic; identical degenerate samples score 0", () => {
  const good = [SOCRATIC, "公平が大事なのですね。なぜそう思うのでしょうか？", SOCRATIC];
  assert.equal(socraticShare(FAIRNESS, good), 1);
  assert.equal(socraticShare(FAIRNESS, [LECTURE, LECTURE, LECTURE]), 0);
  assert.equal(socraticShare(FAIRNESS, ["", "", ""]), 0);
  assert.equal(socraticShare(FAIRNESS, [SOCRATIC, LECTURE]), 0.5);
  // A sample cut off at the token limit is not Socratic.
  assert.equal(socraticShare(FAIRNESS, [SOCRATIC, SOCRATIC], ["stop", "length"]), 0.5);
  // distinct-2 is reported apart: collapse shows there, not as high consistency.
  assert.ok(distinctN([SOCRATIC, SOCRATIC, SOCRATIC], 2) < distinctN(good, 2));
  const s = score(SOCRATIC, FAIRNESS, { samples: [LECTURE, LECTURE] });
  assert.equal(s.response_consistency, 0);
  assert.equal(score(SOCRATIC).response_consistency, null);
});

// ---------------------------------------------------------------------------------------------------------
// Aggregates, ranges, determinism

Deno.test("aggregates: the eval_* figures are means and shares; no replies give all 0", () => {
  const m = scoreSamples([
    { context: FAIRNESS, generated: SOCRATIC },
    { context: FAIRNESS, generated: LECTURE },
    { context: FAIRNESS, generated: "", finish: "length" },
    { context: FAIRNESS, generated: SOCRATIC, samples: [SOCRATIC, LECTURE] },
  ]);
  assert.equal(m.socratic_question_rate, 0.5);
  assert.equal(m.degenerate_rate, 0.25);
  assert.equal(m.cut_off_rate, 0.25);
  assert.equal(m.telling_rate, 0.25);
  assert.equal(m.style_consistency, 0.75);
  assert.equal(m.response_consistency, 0.5);
  assert.deepEqual(Object.keys(scoreSamples([])).sort(), [...EVAL_METRICS].sort());
  for (const v of Object.values(scoreSamples([]))) assert.equal(v, 0);
});

Deno.test("range: every figure stays in [0,1] on random mixtures of Japanese, Latin, digits and punctuation", () => {
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
  const r = mulberry32(7);
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
      generated: text(),
      finish: r() < 0.2 ? "length" : "stop",
      samples: r() < 0.5 ? [text(), text(), text()].slice(0, Math.floor(r() * 4)) : undefined,
    });
  }
  const det = scoreSamplesDetailed(samples);
  det.replies.forEach((t, i) => {
    for (const k of REPLY_FIGURES) assertUnit(t.figures[k], `reply ${i}.${k}`);
    assertUnit(t.response_consistency, `reply ${i}.response_consistency`);
    assertUnit(t.distinct_2, `reply ${i}.distinct_2`);
  });
  for (const [k, v] of Object.entries(det.metrics)) assertUnit(v, `aggregate ${k}`);
});

Deno.test("determinism: same input, same output (and independent of batch order)", () => {
  const batch: EvalSample[] = [
    { context: FAIRNESS, generated: SOCRATIC, samples: [SOCRATIC, LECTURE] },
    { context: FAIRNESS, generated: LECTURE, reference: SOCRATIC },
    { context: FAIRNESS, generated: "公平が大事なんだね。どうして？" },
  ];
  const a = scoreSamplesDetailed(batch);
  assert.deepEqual(a, scoreSamplesDetailed(structuredClone(batch)));
  const rev = scoreSamplesDetailed([...batch].reverse());
  assert.deepEqual(rev.replies, [...a.replies].reverse());
});

// ---------------------------------------------------------------------------------------------------------
// The bundled dataset

Deno.test("dataset: the 1号機 turns the model learns from score high", () => {
  const DATA = new URL("../../data/dialogue/processed/1gouki.json", import.meta.url);
  const records: { messages: { role: string; content: string }[] }[] = JSON.parse(
    Deno.readTextFileSync(DATA),
  );
  const samples: EvalSample[] = [];
  for (const r of records) {
    const ctx: Ctx = r.messages.map((m) => (m.role === "user" ? user(m.content) : model(m.content)));
    ctx.forEach((t, i) => {
      if (t.role === "model") samples.push({ context: ctx.slice(0, i), generated: t.content });
    });
  }
  assert.equal(samples.length, 410);
  const m = scoreSamples(samples);
  // Measured: socratic_score 0.82 (median 0.93), open questions 0.86, register 0.99, one degenerate.
  assert.ok(m.socratic_score > 0.75, `socratic_score ${m.socratic_score}`);
  assert.ok(m.socratic_question_rate > 0.8, `open questions ${m.socratic_question_rate}`);
  assert.ok(m.style_consistency > 0.95, `register ${m.style_consistency}`);
  assert.ok(m.degenerate_rate < 0.01, `degenerate ${m.degenerate_rate}`);
  assert.ok(m.telling_rate < 0.02, `telling ${m.telling_rate}`);
});
