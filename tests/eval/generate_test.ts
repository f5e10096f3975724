// Generation (src/eval/generate.ts, sampling.ts) and the trainer's eval hook (src/eval/in_training.ts).
import { BufferPool, createBuffer } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { validateConfig } from "../../src/config/merge.ts";
import { makeBatches, parseDialogues, tokenizeDialogues } from "../../src/data/mod.ts";
import { Decoder } from "../../src/model/decode.ts";
import { Gemma2Engine } from "../../src/model/engine.ts";
import { openModelSource, openSession } from "../../src/model/session.ts";
import { buildWeights } from "../../src/model/weights.ts";
import { loadTokenizer } from "../../src/tokenizer/tokenizer.ts";
import { chatPrompt, generate } from "../../src/eval/generate.ts";
import {
  deriveMaxNewTokens,
  evalContextsFrom,
  evaluateStep,
  generateSamples,
  pickContexts,
} from "../../src/eval/in_training.ts";
import { REPLY_FIGURES } from "../../src/eval/metrics.ts";
import {
  applyRepetitionPenalty,
  applyTopK,
  applyTopP,
  argmax,
  chooseToken,
  drawFrom,
  resolveSampling,
  softmax,
} from "../../src/eval/sampling.ts";
import { EVAL_METRICS } from "../../src/report/metrics_csv.ts";
import { testGpu } from "../helpers/gpu.ts";
import { goldenConfig, goldenLora, goldenModelTensors } from "../helpers/golden.ts";

function assertEq(a: unknown, b: unknown, what: string): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${what}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`);
  }
}

// ---- logits processors (host) ----

Deno.test("repetition penalty, top-k, top-p and temperature follow transformers' processors", () => {
  // RepetitionPenaltyLogitsProcessor: positive scores divided, negative multiplied, each distinct id once.
  const s = Float64Array.from([2, -1, 0.5, 3]);
  applyRepetitionPenalty(s, [0, 1, 1, 0], 2);
  assertEq(Array.from(s), [1, -2, 0.5, 3], "repetition penalty");
  // TopK: ties with the k-th value are kept.
  const k = Float64Array.from([1, 5, 3, 5, 2]);
  applyTopK(k, 2);
  assertEq(Array.from(k), [-Infinity, 5, -Infinity, 5, -Infinity], "top-k");
  const k3 = Float64Array.from([1, 5, 3, 3, 2]);
  applyTopK(k3, 2);
  assertEq(Array.from(k3), [-Infinity, 5, 3, 3, -Infinity], "top-k ties at the k-th value");
  // TopP: probabilities 0.5, 0.3, 0.15, 0.05 (log space); p = 0.75 keeps 0.5 and 0.3 (the ascending cumsum of
  // 0.05 and 0.15 is 0.2 ≤ 1 − 0.75, so those two go); p = 0.85 drops only 0.05.
  const probs = [0.05, 0.5, 0.15, 0.3];
  const p = Float64Array.from(probs.map(Math.log));
  applyTopP(p, 0.75);
  assertEq(Array.from(p).map((x) => x > -Infinity), [false, true, false, true], "top-p 0.75");
  const p2 = Float64Array.from(probs.map(Math.log));
  applyTopP(p2, 0.85);
  assertEq(Array.from(p2).map((x) => x > -Infinity), [false, true, true, true], "top-p 0.85");
  // The most likely token always stays, even for a tiny p.
  const p3 = Float64Array.from(probs.map(Math.log));
  applyTopP(p3, 1e-6);
  assertEq(Array.from(p3).map((x) => x > -Infinity), [false, true, false, false], "top-p keeps one");
  // Greedy: argmax of the penalized scores, smallest index on ties.
  assertEq(argmax([1, 3, 3, 2]), 1, "argmax ties");
  const greedy = resolveSampling({ repetitionPenalty: 4 });
  assertEq(chooseToken([1, 3, 2.5], [1], greedy, Math.random), 2, "greedy with repetition penalty");
  // Temperature sharpens: at T = 0.05 the top token wins every draw.
  const sharp = resolveSampling({ doSample: true, temperature: 0.05 });
  let r = 0.123;
  const rand = () => (r = (r * 9301 + 0.49297) % 1);
  for (let i = 0; i < 20; i++) assertEq(chooseToken([0, 1, 0.5], [], sharp, rand), 1, "temperature");
  // drawFrom is the inverse CDF.
  const pr = softmax(Float64Array.from([0, Math.log(3)]));
  assertEq([drawFrom(pr, 0.2), drawFrom(pr, 0.3), drawFrom(pr, 0.999999)], [0, 1, 1], "inverse CDF");
  for (const bad of [{ temperature: 0 }, { topP: 0 }, { topK: -1 }, { repetitionPenalty: 0 }]) {
    let threw = false;
    try {
      resolveSampling(bad);
    } catch {
      threw = true;
    }
    if (!threw) throw new Error(`${JSON.stringify(bad)} accepted`);
  }
});

Deno.test("seeded sampling frequencies follow the processed distribution", () => {
  // top_k 3 over [4 logits]: the 4th never appears; frequencies ≈ softmax of the top 3.
  const o = resolveSampling({ doSample: true, topK: 3 });
  const logits = [1, 0, Math.log(2), -5];
  let a = 1;
  const rand = () => {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    return a / 2 ** 32;
  };
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[chooseToken(logits, [], o, rand)]++;
  const z = Math.E + 1 + 2;
  const want = [Math.E / z, 1 / z, 2 / z, 0];
  counts.forEach((c, i) => {
    if (Math.abs(c / 20000 - want[i]) > 0.015) throw new Error(`token ${i}: ${c / 20000} vs ${want[i]}`);
  });
});

// ---- generation on the golden tiny model ----

const FAKE_TOK = { decode: (ids: readonly number[] | Int32Array) => Array.from(ids).join(" ") };

async function goldenEngine(maxSeq: number) {
  const gpu = await testGpu();
  const config = await goldenConfig();
  const pool = new BufferPool(gpu);
  const weights = await buildWeights(gpu, pool, config, "f32", await goldenModelTensors());
  const engine = new Gemma2Engine(gpu, pool, weights, await goldenLora(config), {
    maxBatch: 1,
    maxSeq,
    compute: "f32",
    checkpointing: true,
    loraDropout: 0,
    training: false,
  });
  return { gpu, config, engine };
}

Deno.test("greedy generation is deterministic and equals argmax over the full forward", async () => {
  const prompt = [2, 17, 301, 45, 99, 7];
  const N = 10;
  const { gpu, config, engine } = await goldenEngine(prompt.length + N);
  const V = config.vocab_size;
  const dec = new Decoder(engine, { rows: 2, maxLen: prompt.length + N });
  // The golden model mostly repeats its last token; a repetition penalty (host path, logits read back) makes
  // the greedy sequence vary. Plain greedy uses the GPU argmax.
  const penalized = { repetitionPenalty: 3 };
  try {
    const a = await generate(dec, FAKE_TOK, { prompt, maxNewTokens: N, stopIds: [] });
    const b = await generate(dec, FAKE_TOK, { prompt, maxNewTokens: N, stopIds: [], rows: [{}, {}] });
    const p = await generate(dec, FAKE_TOK, {
      prompt,
      maxNewTokens: N,
      stopIds: [],
      rows: [{ sampling: penalized }, {}],
    });
    assertEq(a.outputs[0].ids.length, N, "length");
    assertEq(a.outputs[0].finish, "length", "finish");
    assertEq(b.outputs[0].ids, a.outputs[0].ids, "greedy run 2");
    assertEq(b.outputs[1].ids, a.outputs[0].ids, "greedy row 2");
    assertEq(p.outputs[1].ids, a.outputs[0].ids, "plain greedy beside a penalized row");
    assertEq(a.outputs[0].text, a.outputs[0].ids.join(" "), "text is the decoded ids");
    if (!(a.timing.steps === N - 1 && a.timing.newTokens === N && a.timing.tokensPerSecond > 0)) {
      throw new Error(`timing ${JSON.stringify(a.timing)}`);
    }
    if (new Set(p.outputs[0].ids).size < N / 2) {
      throw new Error(`penalized greedy repeats: ${p.outputs[0].ids}`);
    }
    // The same tokens from the engine's full forward, one growing sequence at a time.
    const logits = createBuffer(gpu, "logits", (prompt.length + N) * V * 4);
    for (const [penalty, want] of [[1, a.outputs[0].ids], [3, p.outputs[0].ids]] as const) {
      const seq = [...prompt];
      for (let t = 0; t < N; t++) {
        engine.setBatch(Int32Array.from(seq), null, null, { B: 1, T: seq.length });
        const rec = new Recorder(gpu);
        engine.recordForward(rec, { B: 1, T: seq.length }, { capture: { logits } });
        rec.submit();
        const last = Float64Array.from(await readF32(gpu, logits, (seq.length - 1) * V * 4, V));
        applyRepetitionPenalty(last, seq, penalty);
        seq.push(argmax(last));
      }
      assertEq(want, seq.slice(prompt.length), `greedy (penalty ${penalty}) == full-forward argmax`);
    }
  } finally {
    dec.destroy();
  }
});

Deno.test("seeded sampling is deterministic; stop ids end a row; rows are independent", async () => {
  const prompt = [2, 5, 6, 7, 8];
  const N = 12;
  const { engine } = await goldenEngine(4);
  const dec = new Decoder(engine, { rows: 3, maxLen: prompt.length + N });
  try {
    // The golden model mostly repeats its last token (tied embeddings, p ≈ 0.996): sample hot.
    const hot = { doSample: true, temperature: 8, topK: 200, topP: 0.99 };
    const req = (seed: number) => ({
      prompt,
      maxNewTokens: N,
      stopIds: [],
      rows: [{ sampling: hot, seed }, { sampling: hot, seed }, {}],
    });
    const a = await generate(dec, FAKE_TOK, req(1));
    const b = await generate(dec, FAKE_TOK, req(1));
    const c = await generate(dec, FAKE_TOK, req(2));
    assertEq(b.outputs, a.outputs, "same seed, same samples");
    if (JSON.stringify(a.outputs[0].ids) === JSON.stringify(a.outputs[1].ids)) {
      throw new Error("rows 0 and 1 of one request drew the same sample");
    }
    if (JSON.stringify(c.outputs[0].ids) === JSON.stringify(a.outputs[0].ids)) {
      throw new Error("another seed drew the same sample");
    }
    // The greedy row is unaffected by its sampled neighbours.
    const g = await generate(dec, FAKE_TOK, { prompt, maxNewTokens: N, stopIds: [] });
    assertEq(a.outputs[2].ids, g.outputs[0].ids, "greedy row beside sampled rows");
    // Stop ids: the row ends at the first occurrence, the stop id is not part of the output.
    const pen = { repetitionPenalty: 3 };
    const greedy =
      (await generate(dec, FAKE_TOK, { prompt, maxNewTokens: N, stopIds: [], rows: [{ sampling: pen }] }))
        .outputs[0].ids;
    const stopId = greedy[3];
    const first = greedy.indexOf(stopId);
    const s = await generate(dec, FAKE_TOK, {
      prompt,
      maxNewTokens: N,
      stopIds: [stopId, 100000],
      rows: [{ sampling: pen }],
    });
    assertEq(s.outputs[0].ids, greedy.slice(0, first), "ids before the stop");
    if (first < 1) throw new Error(`the stop id is the first token (${greedy})`);
    assertEq([s.outputs[0].finish, s.outputs[0].stopId], ["stop", stopId], "finish");
    // A sampled row that stops while the penalized greedy row goes on (or stops at its own occurrence).
    const sStop = a.outputs[0].ids[2];
    const mixed = await generate(dec, FAKE_TOK, {
      prompt,
      maxNewTokens: N,
      stopIds: [sStop],
      rows: [{ sampling: hot, seed: 1 }, { sampling: pen }],
    });
    assertEq(
      mixed.outputs[0].ids,
      a.outputs[0].ids.slice(0, a.outputs[0].ids.indexOf(sStop)),
      "sampled row stopped",
    );
    const gStop = greedy.indexOf(sStop);
    assertEq(mixed.outputs[1].ids, gStop < 0 ? greedy : greedy.slice(0, gStop), "greedy row beside it");
    // Capacity is checked up front.
    let threw = false;
    try {
      await generate(dec, FAKE_TOK, { prompt, maxNewTokens: N + 2, stopIds: [] });
    } catch {
      threw = true;
    }
    if (!threw) throw new Error("a request beyond the cache was accepted");
  } finally {
    dec.destroy();
  }
});

// ---- the eval hook on the built-in tiny model (real tokenizer and chat template) ----

const DIALOGUES = [
  {
    messages: [
      { role: "user", content: "嘘は常に悪いと思います。" },
      { role: "assistant", content: "「常に」とはどういう意味でしょうか？" },
      { role: "user", content: "例外はないという意味です。" },
      { role: "assistant", content: "では、友達を守るための嘘はどうですか？" },
    ],
  },
  {
    messages: [
      { role: "user", content: "Is homework useful?" },
      { role: "assistant", content: "What do you think homework is for?" },
    ],
  },
];

Deno.test("deriveMaxNewTokens: 1.25 × the longest reference + 8, capped, at least 8", () => {
  assertEq(deriveMaxNewTokens([10, 40, 20], 256), 58, "1.25·40 + 8");
  assertEq(deriveMaxNewTokens([400], 256), 256, "cap");
  assertEq(deriveMaxNewTokens([], 256), 8, "no reference");
  assertEq(deriveMaxNewTokens([100], 5), 5, "small cap");
});

Deno.test("evaluateStep: eval loss, the eval_* figures and the samples file", async () => {
  const cfg = validateConfig({ model: { name: "tiny", max_sequence_length: 128 } });
  const source = await openModelSource(cfg);
  const tok = await loadTokenizer(source.dir);
  const dialogues = parseDialogues(JSON.stringify(DIALOGUES), "test.json");
  const { examples } = tokenizeDialogues(tok, dialogues, 128);
  const batches = makeBatches(examples, examples.map((_, i) => i), 2, tok.padId);
  const session = await openSession(cfg, {
    maxBatch: 2,
    maxSeq: Math.max(...examples.map((e) => e.inputIds.length)),
    training: false,
    lora: null,
    source,
  });
  const contexts = evalContextsFrom(dialogues);
  assertEq(contexts.map((c) => [c.dialogueIndex, c.turn, c.context.length]), [[0, 1, 1], [0, 3, 3], [
    1,
    1,
    1,
  ]], "contexts");
  assertEq(contexts[1].reference, "では、友達を守るための嘘はどうですか？", "reference");
  assertEq(pickContexts([0, 1, 2, 3, 4, 5], 3), [0, 2, 4], "evenly spaced");
  const logsDir = await Deno.makeTempDir();
  try {
    const gen = { contexts: 2, consistencySamples: 2, maxNewTokens: 6, seed: 3, maxPromptTokens: 128 };
    const r = await evaluateStep(session.engine, tok, batches, contexts, {
      step: 7,
      logsDir,
      generation: gen,
    });
    if (
      !(Number.isFinite(r.eval_loss) &&
        Math.abs(r.eval_perplexity - Math.exp(r.eval_loss)) < 1e-9 * r.eval_perplexity)
    ) {
      throw new Error(`loss ${JSON.stringify(r)}`);
    }
    for (const m of EVAL_METRICS) {
      const v = r[`eval_${m}`];
      if (!(v >= 0 && v <= 1)) throw new Error(`eval_${m} = ${v}`);
    }
    const lines = (await Deno.readTextFile(`${logsDir}/samples/step-7.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assertEq(lines.length, 2, "sample lines");
    for (const l of lines) {
      assertEq(l.step, 7, "step");
      if (l.samples.length !== 2 || typeof l.generated !== "string" || typeof l.reference !== "string") {
        throw new Error(JSON.stringify(l));
      }
      const keys = [...REPLY_FIGURES, "response_consistency", "distinct_2"];
      if (Object.keys(l.scores).join() !== keys.join()) throw new Error(JSON.stringify(l.scores));
      if (!["stop", "length"].includes(l.finish) || typeof l.question_form !== "string") {
        throw new Error("finish");
      }
      // Cut off at the token limit is degenerate: the gate knows the finish reason.
      if (l.finish === "length" && l.degenerate === null) throw new Error(JSON.stringify(l));
      if (!(l.prompt_tokens === chatPrompt(tok, l.context).length)) throw new Error("prompt tokens");
    }
    // The same generation twice gives the same samples (seeded), and loss-only evaluation has no metrics.
    const again = await generateSamples(session.engine, tok, contexts, gen);
    assertEq(
      again.records.map((x) => [x.generated, x.samples]),
      lines.map((x) => [x.generated, x.samples]),
      "repeat",
    );
    const lossOnly = await evaluateStep(session.engine, tok, batches, contexts, {
      step: 8,
      generation: null,
    });
    assertEq(Object.keys(lossOnly).sort(), ["eval_loss", "eval_perplexity"], "loss only");
    assertEq(lossOnly.eval_loss, r.eval_loss, "same loss");
    // A prompt budget too small for the long context drops its first exchange.
    const cut = await generateSamples(session.engine, tok, contexts.slice(1, 2), {
      ...gen,
      contexts: 1,
      maxPromptTokens: chatPrompt(tok, contexts[1].context.slice(2)).length + gen.maxNewTokens,
    });
    assertEq([cut.records[0].dropped_exchanges, cut.records[0].context.length], [1, 1], "dropped exchange");
    // Without a fixed max_new_tokens it is derived from the references, capped; finish reasons are counted.
    const { maxNewTokens: _fixed, ...auto } = gen;
    const capped = await generateSamples(session.engine, tok, contexts, { ...auto, maxNewTokensCap: 4 });
    assertEq(capped.maxNewTokens, 4, "capped max_new_tokens");
    assertEq(capped.finish.stop + capped.finish.length, capped.records.length, "finish counts");
    assertEq(
      capped.finish.length,
      capped.records.filter((x) => x.finish === "length").length,
      "length count",
    );
  } finally {
    await Deno.remove(logsDir, { recursive: true });
  }
});
