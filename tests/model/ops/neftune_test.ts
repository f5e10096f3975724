// NEFTune: uniform noise of magnitude alpha/sqrt(T·hidden) on the embeddings, training forwards only.
import { BufferPool } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readF32 } from "../../../src/gpu/readback.ts";
import { buildWeights } from "../../../src/model/weights.ts";
import { Gemma2Engine } from "../../../src/model/engine.ts";
import { testGpu } from "../../helpers/gpu.ts";
import { goldenConfig, goldenModelTensors } from "../../helpers/golden.ts";

Deno.test("NEFTune adds seeded uniform noise of the right size to the embeddings in training forwards only", async () => {
  const gpu = await testGpu();
  const config = await goldenConfig();
  const weights = await buildWeights(gpu, new BufferPool(gpu), config, "f32", await goldenModelTensors());
  const [B, T, alpha] = [2, 16, 5];
  const e = new Gemma2Engine(gpu, new BufferPool(gpu), weights, null, {
    maxBatch: B,
    maxSeq: T,
    compute: "f32",
    checkpointing: true,
    loraDropout: 0,
    training: false,
    neftuneAlpha: alpha,
  });
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 37) % config.vocab_size);
  e.setBatch(ids, ids, null, { B, T });
  const x0 = async (step: number | null) => {
    const rec = new Recorder(gpu);
    e.recordForward(rec, { B, T }, { dropoutStep: step });
    rec.submit();
    return await readF32(gpu, e.xs[0]);
  };
  const clean = await x0(null);
  const noisy = await x0(7);
  const again = await x0(7);
  const other = await x0(8);
  const H = config.hidden_size;
  const mag = (alpha / Math.sqrt(T * H)) * Math.sqrt(H);
  let max = 0, sum = 0;
  for (let i = 0; i < clean.length; i++) {
    const d = noisy[i] - clean[i];
    max = Math.max(max, Math.abs(d));
    sum += d;
    if (again[i] !== noisy[i]) throw new Error("the noise of a step must be reproducible");
  }
  if (!(max <= mag * 1.0001 && max > 0.9 * mag)) throw new Error(`noise max ${max}, magnitude ${mag}`);
  if (Math.abs(sum / clean.length) > 0.05 * mag) throw new Error("noise is not centred");
  if (other.every((v, i) => v === noisy[i])) throw new Error("different steps must draw different noise");
  if ((await x0(null)).some((v, i) => v !== clean[i])) throw new Error("eval forwards must be noise-free");
});
