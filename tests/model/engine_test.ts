// Gemma-2 engine parity with transformers' goldens (tests/fixtures/golden, float64 run), f32 path on lavapipe.
import { BufferPool } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { buildWeights } from "../../src/model/weights.ts";
import { Gemma2Engine } from "../../src/model/engine.ts";
import { assertClose, testGpu } from "../helpers/gpu.ts";
import { f64, goldenConfig, goldenLora, goldenModelTensors, goldenTensors } from "../helpers/golden.ts";

const B = 2, T = 24;

async function setup(withLora: boolean, dir = "tiny_gemma2") {
  const gpu = await testGpu();
  const config = await goldenConfig(dir);
  const pool = new BufferPool(gpu);
  const weights = await buildWeights(gpu, pool, config, "f32", await goldenModelTensors(dir));
  const lora = withLora ? await goldenLora(config) : null;
  const engine = new Gemma2Engine(gpu, pool, weights, lora, {
    maxBatch: B,
    maxSeq: T,
    compute: "f32",
    checkpointing: true,
    loraDropout: 0,
    training: true,
  });
  const g = await goldenTensors("forward_f64.safetensors");
  const ids = Int32Array.from(f64(g, "input_ids"));
  const labels = Int32Array.from(f64(g, "labels"));
  const mask = Uint8Array.from(f64(g, "attention_mask"));
  engine.setBatch(ids, labels, mask, { B, T });
  return { gpu, config, engine, g, pool };
}

function shifted(x: Float32Array, V: number): Float64Array {
  // golden label_logprobs [2, 23] vs our per-row values [2, 24] (the last position has no target)
  const out = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) for (let t = 0; t < T - 1; t++) out[b * (T - 1) + t] = x[b * T + t];
  void V;
  return out;
}

Deno.test("engine f32 + LoRA: logits, loss, hidden states, label log-probs and LoRA gradients match transformers", async () => {
  const { gpu, config, engine, g } = await setup(true);
  const V = config.vocab_size;
  const logits = gpu.device.createBuffer({
    size: B * T * V * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const lp = gpu.device.createBuffer({
    size: B * T * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const rec = new Recorder(gpu);
  engine.recordZeroGrad(rec);
  engine.recordForward(rec, { B, T }, { capture: { logits, labelLogprob: lp } });
  rec.submit();
  // Hidden states must be read before the backward's recomputation passes over them (it rewrites the same values).
  const hs = [];
  for (let l = 0; l <= config.num_hidden_layers; l++) hs.push(await readF32(gpu, engine.xs[l]));
  const hf = await readF32(gpu, engine.hf);
  const loss = await readF32(gpu, engine.loss, 0, 2);
  const count = loss[1];
  const rec2 = new Recorder(gpu);
  engine.recordBackward(rec2, { B, T }, 1 / count, null);
  rec2.submit();

  assertClose(await readF32(gpu, logits), f64(g, "logits"), { abs: 3e-4 }, "logits");
  assertClose([loss[0] / count], f64(g, "loss"), { abs: 1e-5 }, "loss");
  for (let l = 0; l < config.num_hidden_layers; l++) {
    assertClose(hs[l], f64(g, `hidden_states.${l}`), { abs: 3e-4 }, `hidden_states.${l}`);
    assertClose(hs[l + 1], f64(g, `layer_output.${l}`), { abs: 3e-4 }, `layer_output.${l}`);
  }
  assertClose(hf, f64(g, `hidden_states.${config.num_hidden_layers}`), { abs: 3e-4 }, "final norm");
  const mask = f64(g, "label_mask");
  const got = shifted(await readF32(gpu, lp), V).map((x, i) => (mask[i] ? x : 0));
  assertClose(got, f64(g, "label_logprobs"), { abs: 1e-4 }, "label_logprobs");

  const grads = await goldenTensors("lora_grads_f64.safetensors");
  const arena = await readF32(gpu, engine.lora!.grad!);
  for (const t of engine.lora!.layout.tensors) {
    const want = f64(grads, t.key);
    const max = want.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    assertClose(arena.subarray(t.offset, t.offset + t.size), want, { abs: 1e-4 * max }, t.key);
  }
  const gx = (await readF32(gpu, engine.gradX0)).map((x) => x * Math.sqrt(config.hidden_size));
  const wantE = f64(g, "embeds_case.grad_inputs_embeds");
  const maxE = wantE.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
  assertClose(gx, wantE, { abs: 1e-4 * maxE }, "grad_inputs_embeds");
});

for (const dir of ["tiny_gemma2", "tiny_gemma2_bf16"]) {
  Deno.test(`engine f32 base model (${dir}): logits_base and loss_base match transformers`, async () => {
    const { gpu, config, engine, g } = await setup(false, dir);
    const V = config.vocab_size;
    const logits = gpu.device.createBuffer({
      size: B * T * V * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
    const rec = new Recorder(gpu);
    engine.recordZeroGrad(rec);
    engine.recordForward(rec, { B, T }, { capture: { logits } });
    rec.submit();
    const loss = await readF32(gpu, engine.loss, 0, 2);
    assertClose(await readF32(gpu, logits), f64(g, "logits_base"), { abs: 3e-4 }, "logits_base");
    assertClose([loss[0] / loss[1]], f64(g, "loss_base"), { abs: 1e-5 }, "loss_base");
  });
}

Deno.test("without activation checkpointing the LoRA gradients are the same (every layer keeps its workspace)", async () => {
  const gpu = await testGpu();
  const config = await goldenConfig();
  const g = await goldenTensors("forward_f64.safetensors");
  const grads = async (checkpointing: boolean) => {
    const pool = new BufferPool(gpu);
    const weights = await buildWeights(gpu, pool, config, "f32", await goldenModelTensors());
    const e = new Gemma2Engine(gpu, pool, weights, await goldenLora(config), {
      maxBatch: B,
      maxSeq: T,
      compute: "f32",
      checkpointing,
      loraDropout: 0,
      training: true,
    });
    e.setBatch(
      Int32Array.from(f64(g, "input_ids")),
      Int32Array.from(f64(g, "labels")),
      Uint8Array.from(f64(g, "attention_mask")),
      {
        B,
        T,
      },
    );
    const rec = new Recorder(gpu);
    e.recordZeroGrad(rec);
    e.recordForward(rec, { B, T });
    e.recordBackward(rec, { B, T }, 1 / 35, null);
    rec.submit();
    return { grads: await readF32(gpu, e.lora!.grad!), bytes: pool.stats().peakBytes };
  };
  const on = await grads(true);
  const off = await grads(false);
  assertClose(off.grads, on.grads, { abs: 1e-7 }, "grads without checkpointing");
  if (!(off.bytes > on.bytes)) throw new Error("checkpointing should hold fewer activation bytes");
});
