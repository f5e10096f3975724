// The benchmark's own kernels (kernels/bench_*.wgsl) against CPU references, on ragged shapes, and the
// bookkeeping the step benchmark relies on (FLOP model, family filter). No timing is asserted.
import assert from "node:assert/strict";
import { createBuffer, upload } from "../../src/gpu/buffers.ts";
import { fromF16Array } from "../../src/util/half.ts";
import { matmulRef } from "../../src/gpu/ops/matmul_ref.ts";
import { readBuffer, readF32 } from "../../src/gpu/readback.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { f32ToF16Bits } from "../../src/util/half.ts";
import { uploadNf4 } from "../../src/model/ops/linear.ts";
import { dequantizeNf4, quantizeNf4 } from "../../src/quant/nf4.ts";
import { recordCopy, recordFma } from "../../src/bench/ceilings.ts";
import { recordNaiveMatmul, recordNf4Dequant, recordRegblockMatmul } from "../../src/bench/kernels.ts";
import { COPIES, FilterRecorder, kernelFamily, stepFlops } from "../../src/bench/step.ts";
import { BufferPool } from "../../src/gpu/buffers.ts";
import { Gemma2Engine } from "../../src/model/engine.ts";
import { randomWeights } from "../../src/model/weights.ts";
import { initLoraParams } from "../../src/lora/params.ts";
import { tinyConfig } from "../../src/hub/tiny.ts";
import { assertClose, randomArray, rng, testGpu } from "../helpers/gpu.ts";

Deno.test("bench_matmul_naive and bench_matmul_regblock: C = A·Bᵀ on ragged shapes", async () => {
  const gpu = await testGpu();
  const rand = rng(5);
  for (const [M, N, K] of [[1, 1, 1], [1, 3, 4], [17, 33, 28], [17, 33, 29], [64, 70, 132]]) {
    const a = randomArray(M * K, rand), b = randomArray(N * K, rand);
    const want = matmulRef(a, b, null, { M, N, K });
    const A = upload(gpu, "a", a), B = upload(gpu, "b", b);
    if (K % 4 === 0) {
      const C = createBuffer(gpu, "c", M * N * 4);
      const rec = new Recorder(gpu);
      recordRegblockMatmul(rec, A, B, C, { M, N, K });
      rec.submit();
      assertClose(await readF32(gpu, C, 0, M * N), want, { abs: 1e-5 * K }, `regblock ${M}x${N}x${K}`);
    }
    const C = createBuffer(gpu, "c", M * N * 4);
    const rec = new Recorder(gpu);
    recordNaiveMatmul(rec, A, B, C, { M, N, K });
    rec.submit();
    assertClose(
      await readF32(gpu, C, 0, M * N),
      matmulRef(a, b, null, { M, N, K }),
      { abs: 1e-5 * K },
      `${M}x${N}x${K}`,
    );
  }
});

Deno.test("bench_nf4_dequant: the full f16 weight equals the CPU dequantization rounded to f16", async () => {
  const gpu = await testGpu();
  const rand = rng(8);
  for (const [out, inF] of [[3, 64], [40, 136], [96, 640]]) {
    const w = randomArray(out * inF, rand, 0.05);
    const t = quantizeNf4(w, [out, inF]);
    const weight = uploadNf4(gpu, t, "w");
    const words = Math.ceil((out * inF) / 8);
    const dst = createBuffer(gpu, "deq", words * 16);
    const rec = new Recorder(gpu);
    recordNf4Dequant(rec, weight, dst);
    rec.submit();
    const got = fromF16Array(new Uint16Array(await readBuffer(gpu, dst, 0, out * inF * 2)));
    const want = fromF16Array(Uint16Array.from(dequantizeNf4(t), (x) => f32ToF16Bits(x)));
    // One f16 ulp: the absmax product may be contracted into an fma on the GPU.
    assertClose(got, want, { abs: 2 ** -10 * 0.05 }, `${out}x${inF}`);
  }
});

Deno.test("bench_copy and bench_fma compute what they claim", async () => {
  const gpu = await testGpu();
  const n = 4099; // vec4s, not a multiple of the workgroup × items
  const src = upload(gpu, "src", randomArray(n * 4, rng(3)));
  const dst = createBuffer(gpu, "dst", n * 16);
  const inv = 300, iters = 37;
  const out = createBuffer(gpu, "out", inv * 4);
  const rec = new Recorder(gpu);
  recordCopy(rec, src, dst, n);
  recordFma(rec, out, inv, iters, 0.5, 0.25);
  rec.submit();
  assert.deepEqual(await readF32(gpu, dst), await readF32(gpu, src));
  const got = await readF32(gpu, out);
  const f = Math.fround;
  for (const i of [0, 1, 255, 256, 299]) {
    const s = f(f(i & 1023) * f(1e-3));
    let sum = 0;
    for (let c = 0; c < 8; c++) {
      for (let lane = 0; lane < 4; lane++) {
        let x = f(s + f(0.1 * lane) + f(0.01 * c));
        for (let k = 0; k < iters; k++) x = f(x * 0.5 + 0.25);
        sum += x;
      }
    }
    assert.ok(Math.abs(got[i] - sum) < 1e-4, `fma[${i}] ${got[i]} vs ${sum}`);
  }
});

Deno.test("step FLOP model: families add up; checkpointing adds the recompute of all but the last layer", () => {
  const config = tinyConfig();
  const o = {
    config,
    batch: 2,
    seq: 16,
    r: 8,
    targets: ["q_proj", "v_proj"],
    quantized: true,
  };
  const ck = stepFlops({ ...o, checkpointing: true });
  const no = stepFlops({ ...o, checkpointing: false });
  assert.equal(no.executed, no.model);
  assert.equal(ck.model, no.model);
  const sum = Object.values(ck.byFamily).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - ck.executed) < 1);
  const oneLayer = stepFlops({ ...o, config: { ...config, num_hidden_layers: 1 }, checkpointing: false });
  const head = 6 * 32 * config.vocab_size * config.hidden_size;
  const layerFwdBwd = oneLayer.model - head;
  assert.ok(layerFwdBwd > 0);
  // Recompute = a forward of L-1 layers, which is less than their forward+backward.
  const recompute = ck.executed - ck.model;
  assert.ok(recompute > 0 && recompute < (config.num_hidden_layers - 1) * layerFwdBwd);
  assert.equal(ck.byFamily.dense_matmul, head);
});

Deno.test("FilterRecorder: the census of a training step matches a plain recording; a family keeps only its own", async () => {
  const gpu = await testGpu();
  const config = tinyConfig();
  const pool = new BufferPool(gpu);
  const weights = randomWeights(gpu, pool, config, "f32", true);
  const lora = initLoraParams(config, { r: 4, lora_alpha: 8, target_modules: ["q_proj", "o_proj"] }, 1);
  const engine = new Gemma2Engine(gpu, pool, weights, lora, {
    maxBatch: 1,
    maxSeq: 8,
    compute: "f32",
    checkpointing: true,
    loraDropout: 0.1,
    training: true,
  });
  const s = { B: 1, T: 8 };
  const record = (rec: Recorder) => {
    engine.recordZeroGrad(rec);
    engine.recordForward(rec, s, { dropoutStep: 1 });
    engine.recordBackward(rec, s, 1, 1);
  };
  const plain = new Recorder(gpu);
  record(plain);
  const all = new FilterRecorder(gpu, null);
  record(all);
  const total = Object.entries(all.census).filter(([f]) => f !== COPIES).reduce((a, [, n]) => a + n, 0);
  assert.equal(total, plain.dispatchCount);
  assert.equal(all.dispatchCount, plain.dispatchCount);
  assert.equal(all.census.other ?? 0, 0, "every kernel of the step has a family");
  const only = new FilterRecorder(gpu, "attention");
  record(only);
  assert.equal(only.dispatchCount, all.census.attention);
  assert.equal(kernelFamily("nf4_matmul_dx.wgsl#main{FAST=1}<>"), "nf4_matmul");
  assert.equal(kernelFamily("matmul.wgsl#main{}<>"), "dense_matmul");
});
