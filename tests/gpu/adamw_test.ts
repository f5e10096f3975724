import { readSafetensorsFile } from "../../src/safetensors/read_file.ts";
import { upload } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { NORM_PARTIALS, type OptimizerBuffers, recordAdamW, recordClip } from "../../src/gpu/ops/adamw.ts";
import { assertClose, testGpu, testReductions } from "../helpers/gpu.ts";

const { tensors } = await readSafetensorsFile(
  new URL("../fixtures/golden/adamw.safetensors", import.meta.url).pathname,
);
const get = (k: string) => tensors.get(k)!.data as Float32Array;
const cat = (a: Float32Array, b: Float32Array) => {
  const o = new Float32Array(a.length + b.length);
  o.set(a);
  o.set(b, a.length);
  return o;
};

testReductions("clip_grad_norm_ + AdamW match torch for two steps (adamw.safetensors)", async () => {
  const gpu = await testGpu();
  const n = 17;
  const b: OptimizerBuffers = {
    n,
    param: upload(gpu, "p", cat(get("init.p0"), get("init.p1"))),
    grad: upload(gpu, "g", new Float32Array(n)),
    m: upload(gpu, "m", new Float32Array(n)),
    v: upload(gpu, "v", new Float32Array(n)),
    stats: upload(gpu, "stats", new Float32Array(4)),
    partials: upload(gpu, "partials", new Float32Array(NORM_PARTIALS)),
  };
  const h = { lr: 8e-5, weightDecay: 0.06, beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 };
  for (const step of [1, 2]) {
    gpu.device.queue.writeBuffer(
      b.grad,
      0,
      cat(get(`step${step}.grad_raw.p0`), get(`step${step}.grad_raw.p1`)),
    );
    const rec = new Recorder(gpu);
    recordClip(rec, b, h.maxGradNorm);
    recordAdamW(rec, b, h, step);
    rec.submit();
    const stats = await readF32(gpu, b.stats, 0, 2);
    assertClose([stats[0]], get(`step${step}.total_norm`), { rel: 1e-6 }, `step ${step} norm`);
    const s = `step${step}`;
    assertClose(await readF32(gpu, b.param, 0, n), cat(get(`${s}.param.p0`), get(`${s}.param.p1`)), {
      rel: 1e-6,
    }, `${s} param`);
    assertClose(await readF32(gpu, b.m, 0, n), cat(get(`${s}.exp_avg.p0`), get(`${s}.exp_avg.p1`)), {
      rel: 1e-6,
    }, `${s} m`);
    assertClose(
      await readF32(gpu, b.v, 0, n),
      cat(get(`${s}.exp_avg_sq.p0`), get(`${s}.exp_avg_sq.p1`)),
      { rel: 1e-6 },
      `${s} v`,
    );
  }
});

testReductions("grad norm over a large ragged arena equals float64", async () => {
  const gpu = await testGpu();
  const n = 1_000_003;
  const g = new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * (1 + (i % 5)));
  let want = 0;
  for (const x of g) want += x * x;
  want = Math.sqrt(want);
  const b = {
    n,
    param: upload(gpu, "p", new Float32Array(1)),
    grad: upload(gpu, "g", g),
    m: upload(gpu, "m", new Float32Array(1)),
    v: upload(gpu, "v", new Float32Array(1)),
    stats: upload(gpu, "stats", new Float32Array(4)),
    partials: upload(gpu, "partials", new Float32Array(NORM_PARTIALS)),
  };
  const rec = new Recorder(gpu);
  recordClip(rec, b, 1.0);
  rec.submit();
  const stats = await readF32(gpu, b.stats, 0, 2);
  assertClose([stats[0], stats[1]], [want, 1 / (want + 1e-6)], { rel: 1e-6 }, "norm/coef");
});
