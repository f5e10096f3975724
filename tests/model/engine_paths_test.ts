// The engine's other compute paths: NF4 base weights (vs the float64 reference on dequantized weights), f16
// operands (vs transformers' goldens), the sharded checkpoint through the loader, realistic activation
// magnitudes in f16, finite differences for each projection type, and a real-width random preset.
import { BufferPool } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { buildWeights, randomWeights } from "../../src/model/weights.ts";
import { Gemma2Engine } from "../../src/model/engine.ts";
import { GEMMA2_2B } from "../../src/config/gemma2.ts";
import { loadModel } from "../../src/hub/load.ts";
import { quantizeNf4 } from "../../src/quant/nf4.ts";
import type { HostTensor } from "../../src/quant/store.ts";
import { initLoraParams, type LoraParams } from "../../src/lora/params.ts";
import { loadRefModel, nf4RefModel, referenceForward } from "../../src/model/reference.ts";
import { assertClose, f16Only, testGpu } from "../helpers/gpu.ts";
import {
  f64,
  GOLDEN,
  goldenConfig,
  goldenLora,
  goldenModelTensors,
  goldenTensors,
} from "../helpers/golden.ts";
import type { Gpu } from "../../src/gpu/device.ts";

const B = 2, T = 24;

async function goldenBatch() {
  const g = await goldenTensors("forward_f64.safetensors");
  return {
    g,
    ids: Int32Array.from(f64(g, "input_ids")),
    labels: Int32Array.from(f64(g, "labels")),
    mask: Uint8Array.from(f64(g, "attention_mask")),
  };
}

function engineFor(
  gpu: Gpu,
  weights: Awaited<ReturnType<typeof buildWeights>>,
  lora: LoraParams | null,
  compute: "f32" | "f16",
  training = false,
  batch = B,
  seq = T,
) {
  return new Gemma2Engine(gpu, new BufferPool(gpu), weights, lora, {
    maxBatch: batch,
    maxSeq: seq,
    compute,
    checkpointing: true,
    loraDropout: 0,
    training,
  });
}

async function lossOf(gpu: Gpu, e: Gemma2Engine, logits?: GPUBuffer): Promise<number> {
  const rec = new Recorder(gpu);
  e.recordZeroGrad(rec);
  e.recordForward(rec, { B, T }, { capture: logits ? { logits } : undefined });
  rec.submit();
  const l = await readF32(gpu, e.loss, 0, 2);
  return l[0] / l[1];
}

function nf4Tensors(dense: [string, HostTensor][]): [string, HostTensor][] {
  return dense.map(([name, t]) => {
    if (t.kind === "dense" && /_proj\.weight$/.test(name)) {
      return [name, { kind: "nf4", nf4: quantizeNf4(t.data, t.shape) }];
    }
    return [name, t];
  });
}

Deno.test("NF4 base: the loss equals the float64 reference on the NF4-dequantized weights (f32 operands)", async () => {
  const gpu = await testGpu();
  const config = await goldenConfig();
  const { ids, labels, mask } = await goldenBatch();
  const weights = await buildWeights(
    gpu,
    new BufferPool(gpu),
    config,
    "f32",
    nf4Tensors(await goldenModelTensors()),
  );
  const lora = await goldenLora(config);
  const e = engineFor(gpu, weights, lora, "f32");
  e.setBatch(ids, labels, mask, { B, T });
  const got = await lossOf(gpu, e);
  const ref = nf4RefModel(await loadRefModel(`${GOLDEN}tiny_gemma2`, `${GOLDEN}lora_adapter`));
  const want = referenceForward(ref, ids, mask, labels, B, T).loss;
  assertClose([got], [want], { abs: 1e-4 }, "NF4 loss");
  // And it really is the quantized model: the loss differs from the unquantized one.
  if (Math.abs(want - f64((await goldenBatch()).g, "loss")[0]) < 1e-4) {
    throw new Error("NF4 made no difference?");
  }
});

Deno.test("f16 operands: logits within 2e-2 and loss within 2e-3 relative of transformers", async () => {
  const gpu = await testGpu();
  await f16Only(gpu, async () => {
    const config = await goldenConfig();
    const { g, ids, labels, mask } = await goldenBatch();
    const weights = await buildWeights(gpu, new BufferPool(gpu), config, "f16", await goldenModelTensors());
    const e = engineFor(gpu, weights, await goldenLora(config), "f16");
    e.setBatch(ids, labels, mask, { B, T });
    const logits = gpu.device.createBuffer({
      size: B * T * config.vocab_size * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
    const loss = await lossOf(gpu, e, logits);
    assertClose(await readF32(gpu, logits), f64(g, "logits"), { abs: 2e-2 }, "f16 logits");
    assertClose([loss], f64(g, "loss"), { rel: 2e-3 }, "f16 loss");
  });
});

Deno.test("the sharded bf16 checkpoint loads through the model loader and gives transformers' base logits", async () => {
  const gpu = await testGpu();
  Deno.env.set("MAIEUTIC_CACHE", await Deno.makeTempDir());
  const m = await loadModel(`${GOLDEN}tiny_gemma2_bf16_sharded`, {
    load_in_4bit: false,
    bnb_4bit_use_double_quant: true,
    bnb_4bit_quant_type: "nf4",
    bnb_4bit_compute_dtype: "float32",
  }, { progress: false });
  const { g, ids, labels, mask } = await goldenBatch();
  const weights = await buildWeights(gpu, new BufferPool(gpu), m.config, "f32", m.tensors);
  const e = engineFor(gpu, weights, null, "f32");
  e.setBatch(ids, labels, mask, { B, T });
  const logits = gpu.device.createBuffer({
    size: B * T * m.config.vocab_size * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const loss = await lossOf(gpu, e, logits);
  assertClose(await readF32(gpu, logits), f64(g, "logits_base"), { abs: 3e-4 }, "sharded logits_base");
  assertClose([loss], f64(g, "loss_base"), { abs: 1e-5 }, "sharded loss_base");
});

Deno.test("f16 path at realistic Gemma-2 magnitudes (residual stream in the thousands): no Inf/NaN", async () => {
  const gpu = await testGpu();
  await f16Only(gpu, async () => {
    const config = await goldenConfig();
    const { ids, labels, mask } = await goldenBatch();
    // Embedding rows ×400: with √64 = 8 the residual stream starts around ±3000, as real Gemma-2 layers see.
    const tensors = (await goldenModelTensors()).map(([n, t]): [string, HostTensor] =>
      n === "model.embed_tokens.weight" && t.kind === "dense"
        ? [n, { ...t, data: t.data.map((x) => x * 400) }]
        : [n, t]
    );
    const weights = await buildWeights(gpu, new BufferPool(gpu), config, "f16", nf4Tensors(tensors));
    const e = engineFor(gpu, weights, await goldenLora(config), "f16", true);
    e.setBatch(ids, labels, mask, { B, T });
    const rec = new Recorder(gpu);
    e.recordZeroGrad(rec);
    e.recordForward(rec, { B, T }, { dropoutStep: null, accumulateLoss: true });
    rec.submit();
    const x1 = await readF32(gpu, e.xs[1]);
    const maxAbs = x1.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    if (!(maxAbs > 1000)) throw new Error(`residual stream only reaches ${maxAbs}`);
    const rec2 = new Recorder(gpu);
    e.recordBackward(rec2, { B, T }, 1 / 30, null);
    rec2.submit();
    const loss = await readF32(gpu, e.loss, 0, 2);
    const grads = await readF32(gpu, e.lora!.grad!);
    if (!Number.isFinite(loss[0]) || !grads.every(Number.isFinite)) {
      throw new Error("Inf/NaN in the f16 path");
    }
    if (!grads.some((v) => v !== 0)) throw new Error("all-zero gradients");
  });
});

Deno.test("finite differences agree with the LoRA gradient of every projection type", async () => {
  const gpu = await testGpu();
  const config = await goldenConfig();
  const { ids, labels, mask } = await goldenBatch();
  const weights = await buildWeights(gpu, new BufferPool(gpu), config, "f32", await goldenModelTensors());
  const targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
  const lora = initLoraParams(config, { r: 4, lora_alpha: 8, target_modules: targets }, 3);
  // Non-zero B so that dA is not trivially zero.
  for (const m of lora.layout.modules) {
    for (let i = 0; i < m.B.size; i++) lora.data[m.B.offset + i] = Math.sin(7 * i + m.stream) * 0.2;
  }
  const e = engineFor(gpu, weights, lora, "f32", true);
  e.setBatch(ids, labels, mask, { B, T });
  const rec = new Recorder(gpu);
  e.recordZeroGrad(rec);
  e.recordForward(rec, { B, T }, { accumulateLoss: true });
  rec.submit();
  const l0 = await readF32(gpu, e.loss, 0, 2);
  const rec2 = new Recorder(gpu);
  e.recordBackward(rec2, { B, T }, 1 / l0[1], null);
  rec2.submit();
  const grad = await readF32(gpu, e.lora!.grad!);
  const param = e.lora!.param;
  for (const m of lora.layout.modules.filter((m) => m.layer === 1)) {
    for (const t of [m.A, m.B]) {
      // The entry with the largest gradient of this tensor.
      let idx = t.offset;
      for (let i = t.offset; i < t.offset + t.size; i++) if (Math.abs(grad[i]) > Math.abs(grad[idx])) idx = i;
      const h = 1e-2;
      const at = async (v: number) => {
        gpu.device.queue.writeBuffer(param, idx * 4, new Float32Array([v]));
        return await lossOf(gpu, e);
      };
      const p0 = lora.data[idx];
      const fd = ((await at(p0 + h)) - (await at(p0 - h))) / (2 * h);
      await at(p0);
      if (Math.abs(fd - grad[idx]) > 2e-2 * Math.abs(grad[idx]) + 2e-4) {
        throw new Error(`${t.key}[${idx - t.offset}]: finite difference ${fd} vs gradient ${grad[idx]}`);
      }
    }
  }
});

Deno.test("gemma-2-2b-random (real width: 2304 hidden, 256000 vocab split across bindings) runs forward + backward", async () => {
  const gpu = await testGpu();
  // One layer of the real shapes keeps this within a minute on lavapipe; every real-width code path runs:
  // the f16 embedding split into ≤128 MiB chunks, NF4 projections of 2304×9216, head_dim 256 attention.
  const config = { ...GEMMA2_2B, num_hidden_layers: 1 };
  const Bs = 1, Ts = 8;
  const pool = new BufferPool(gpu);
  const weights = randomWeights(gpu, pool, config, gpu.f16 ? "f16" : "f32", true);
  if (weights.embed.length < 2) throw new Error(`embedding not split (${weights.embed.length} chunk)`);
  const lora = initLoraParams(config, {
    r: 16,
    lora_alpha: 32,
    target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"],
  }, 1);
  const e = new Gemma2Engine(gpu, pool, weights, lora, {
    maxBatch: Bs,
    maxSeq: Ts,
    compute: gpu.f16 ? "f16" : "f32",
    checkpointing: true,
    loraDropout: 0.1,
    training: true,
  });
  const ids = Int32Array.from({ length: Ts }, (_, i) => [2, 106, 2364, 255999, 17, 128000, 107, 1][i]);
  e.setBatch(ids, ids, null, { B: Bs, T: Ts });
  const rec = new Recorder(gpu);
  e.recordZeroGrad(rec);
  e.recordForward(rec, { B: Bs, T: Ts }, { dropoutStep: 1, accumulateLoss: true });
  e.recordBackward(rec, { B: Bs, T: Ts }, 1 / (Ts - 1), 1);
  rec.submit();
  const loss = await readF32(gpu, e.loss, 0, 2);
  if (loss[1] !== Ts - 1 || !Number.isFinite(loss[0]) || loss[0] <= 0) throw new Error(`loss ${loss}`);
  const grads = await readF32(gpu, e.lora!.grad!);
  if (!grads.every(Number.isFinite) || !grads.some((v) => v !== 0)) throw new Error("bad gradients");
});
