// Decoding with a KV cache (src/model/decode.ts; its kernels are tested in tests/model/ops/attention_decode_test.ts
// and argmax_test.ts): the decoder's logits at every position against the engine's full forward (golden tiny Gemma-2
// + golden LoRA, f32; and NF4 random weights).
import { BufferPool, createBuffer } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import type { Gemma2Config } from "../../src/config/gemma2.ts";
import { Decoder } from "../../src/model/decode.ts";
import { Gemma2Engine } from "../../src/model/engine.ts";
import { buildWeights, type ModelWeights, randomWeights } from "../../src/model/weights.ts";
import type { LoraParams } from "../../src/lora/params.ts";
import { assertClose, rng, testGpu } from "../helpers/gpu.ts";
import { goldenConfig, goldenLora, goldenModelTensors } from "../helpers/golden.ts";

async function engineFor(
  _config: Gemma2Config,
  weights: ModelWeights,
  pool: BufferPool,
  lora: LoraParams | null,
  B: number,
  T: number,
) {
  const gpu = await testGpu();
  return new Gemma2Engine(gpu, pool, weights, lora, {
    maxBatch: B,
    maxSeq: T,
    compute: "f32",
    checkpointing: true,
    loraDropout: 0.1, // must be ignored: eval forward and decoding use no dropout
    training: false,
  });
}

/** Full-forward logits [B, T, V] of the engine for B sequences of length T. */
async function fullLogits(engine: Gemma2Engine, seqs: number[][]): Promise<Float32Array> {
  const gpu = engine.gpu!;
  const B = seqs.length, T = seqs[0].length, V = engine.weights.config.vocab_size;
  engine.setBatch(Int32Array.from(seqs.flat()), null, null, { B, T });
  const logits = createBuffer(gpu, "logits", B * T * V * 4);
  const rec = new Recorder(gpu);
  engine.recordForward(rec, { B, T }, { capture: { logits } });
  rec.submit();
  return await readF32(gpu, logits, 0, B * T * V);
}

/** Prefills the shared prompt, then feeds each row its own sequence; compares every position's logits. */
async function compareDecode(engine: Gemma2Engine, seqs: number[][], P: number, tol: number, what: string) {
  const V = engine.weights.config.vocab_size;
  const T = seqs[0].length;
  const full = await fullLogits(engine, seqs);
  const dec = new Decoder(engine, { rows: seqs.length, maxLen: T, maxPrompt: P });
  try {
    dec.prefill(seqs[0].slice(0, P));
    for (let t = P - 1; t < T; t++) {
      if (t >= P) dec.step(seqs.map((s) => s[t]));
      const got = await dec.readLogits();
      seqs.forEach((_, b) => {
        const want = full.subarray((b * T + t) * V, (b * T + t + 1) * V);
        assertClose(got[b], want, { abs: tol }, `${what}: row ${b} position ${t}`);
      });
      if (t === T - 1) {
        // Greedy on the GPU agrees with the host argmax of the same logits.
        const ids = await dec.argmax();
        got.forEach((row, b) => {
          let best = 0;
          for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
          if (ids[b] !== best) throw new Error(`${what}: GPU argmax ${ids[b]} != ${best} (row ${b})`);
        });
      }
    }
    if (dec.length !== T) throw new Error(`length ${dec.length} != ${T}`);
  } finally {
    dec.destroy();
  }
}

function sequences(V: number, P: number, T: number, rows: number, seed: number): number[][] {
  const rand = rng(seed);
  const prompt = Array.from({ length: P }, () => 3 + Math.floor(rand() * (V - 3)));
  return Array.from({ length: rows }, () => [
    ...prompt,
    ...Array.from({ length: T - P }, () => 3 + Math.floor(rand() * (V - 3))),
  ]);
}

Deno.test("decoder logits equal the full forward's at every position (golden tiny Gemma-2 + LoRA, f32)", async () => {
  const gpu = await testGpu();
  const config = await goldenConfig();
  const pool = new BufferPool(gpu);
  const weights = await buildWeights(gpu, pool, config, "f32", await goldenModelTensors());
  // T = 21 > sliding_window 8, so the sliding layers' window is exercised both in the prefill and the steps.
  const T = 21, P = 6;
  const seqs = sequences(config.vocab_size, P, T, 2, 7);
  const withLora = await engineFor(config, weights, pool, await goldenLora(config), 2, T);
  await compareDecode(withLora, seqs, P, 1e-4, "golden + LoRA");
  const base = await engineFor(config, weights, pool, null, 2, T);
  await compareDecode(base, seqs, P, 1e-4, "golden base");
  // A one-token prompt (prefill of a single position) and a prompt longer than the window.
  await compareDecode(withLora, sequences(config.vocab_size, 1, 5, 1, 8), 1, 1e-4, "P = 1");
  await compareDecode(withLora, sequences(config.vocab_size, 13, 16, 2, 9), 13, 1e-4, "P = 13");
});

Deno.test("decoder logits equal the full forward's with NF4 base weights", async () => {
  const gpu = await testGpu();
  const config = await goldenConfig();
  const pool = new BufferPool(gpu);
  const weights = randomWeights(gpu, pool, config, "f32", true, 99);
  const engine = await engineFor(config, weights, pool, await goldenLora(config), 2, 14);
  await compareDecode(engine, sequences(config.vocab_size, 4, 14, 2, 3), 4, 2e-4, "NF4");
});

Deno.test("decoder logits with a vocabulary of several head chunks (V = 9000 > 8192 columns per chunk)", async () => {
  const gpu = await testGpu();
  const config: Gemma2Config = { ...(await goldenConfig()), vocab_size: 9000 };
  const pool = new BufferPool(gpu);
  const weights = randomWeights(gpu, pool, config, "f32", false, 5);
  const engine = await engineFor(config, weights, pool, null, 2, 7);
  await compareDecode(engine, sequences(config.vocab_size, 3, 7, 2, 4), 3, 1e-4, "V = 9000");
});

Deno.test("decoder: input checks", async () => {
  const gpu = await testGpu();
  const config = await goldenConfig();
  const pool = new BufferPool(gpu);
  const weights = randomWeights(gpu, pool, config, "f32", false, 1);
  const engine = await engineFor(config, weights, pool, null, 1, 4);
  const dec = new Decoder(engine, { rows: 2, maxLen: 4 });
  const throws = (f: () => void, what: string) => {
    try {
      f();
    } catch (e) {
      if (e instanceof RangeError || e instanceof Error) return;
    }
    throw new Error(`${what} did not throw`);
  };
  throws(() => dec.step([1, 1]), "step before prefill");
  throws(() => dec.prefill([1, 2, 3, 4, 5]), "prompt longer than the cache");
  throws(() => dec.prefill([config.vocab_size]), "id outside the vocabulary");
  dec.prefill([1, 2, 3]);
  throws(() => dec.step([1]), "wrong number of ids");
  dec.step([4, 5]);
  throws(() => dec.step([4, 5]), "cache full");
  dec.destroy();
  throws(() => dec.prefill([1]), "use after destroy");
});
