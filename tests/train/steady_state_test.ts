// docs/ARCHITECTURE.md#performance in the trainer's own engine (src/train/step_engine.ts): once warm, an optimizer step creates no
// GPU buffer, submits two command buffers (micro-batch with the zero-grad, optimizer) and reads back once;
// the loss and gradient norm it reads are those of the step.
import assert from "node:assert/strict";
import { BufferPool } from "../../src/gpu/buffers.ts";
import { Gemma2Engine } from "../../src/model/engine.ts";
import { randomWeights } from "../../src/model/weights.ts";
import { initLoraParams } from "../../src/lora/params.ts";
import { tinyConfig } from "../../src/hub/tiny.ts";
import { GpuTrainEngine } from "../../src/train/step_engine.ts";
import type { TrainBatch } from "../../src/train/loop.ts";
import { testGpu } from "../helpers/gpu.ts";
import { countGpuCalls } from "../../src/bench/step.ts";

Deno.test("GpuTrainEngine steady state: no buffer created, 2 command buffers and 1 readback per step", async () => {
  const gpu = await testGpu();
  const config = tinyConfig();
  const pool = new BufferPool(gpu);
  const weights = randomWeights(gpu, pool, config, "f32", true);
  const lora = initLoraParams(config, { r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"] }, 1);
  const engine = new Gemma2Engine(gpu, pool, weights, lora, {
    maxBatch: 2,
    maxSeq: 8,
    compute: "f32",
    checkpointing: true,
    loraDropout: 0.1,
    training: true,
  });
  const train = new GpuTrainEngine(engine);
  const ids = Int32Array.from({ length: 16 }, (_, i) => 3 + (i * 37) % (config.vocab_size - 3));
  const batch: TrainBatch = {
    inputIds: ids,
    labels: Int32Array.from(ids, (x, i) => (i % 8 < 3 ? -100 : x)),
    attentionMask: new Uint8Array(16).fill(1),
    rows: 2,
    seqLen: 8,
    // Per row, positions 2..6 predict the labelled 3..7: 2 × 5.
    targetTokens: 10,
  };
  const hyper = { lr: 1e-3, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 };
  const step = async (i: number) => {
    train.beginStep();
    train.microBatch(batch, 1 / batch.targetTokens, i);
    train.optimizerStep(hyper, i);
    return await train.readStep();
  };
  const first = await step(1); // warm: pipelines, pool chunks, the parameter arena
  const runs = [];
  for (let i = 2; i <= 3; i++) runs.push(await countGpuCalls(() => step(i)));
  for (const r of runs) {
    assert.equal(r.buffers, 0, "a warm step created GPU buffers");
    assert.equal(r.submits, 2);
    assert.equal(r.maps, 1);
    // Token-weighted loss sum over the 10 targets of the batch: a mean NLL of a 1024-way softmax near ln 1024.
    assert.ok(r.value.lossSum / 10 > 3 && r.value.lossSum / 10 < 12, String(r.value.lossSum));
    assert.ok(r.value.gradNorm > 0 && Number.isFinite(r.value.gradNorm));
  }
  assert.ok(first.lossSum > 0 && first.gradNorm > 0);
  // The optimizer moved the weights: the same batch scores differently at the next step.
  assert.notEqual(runs[0].value.lossSum, first.lossSum);
});
