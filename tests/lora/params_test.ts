/** LoRA parameter layout and init (src/lora/params.ts). */
import { GEMMA2_2B, Gemma2ConfigSchema, peftKey, projectionDims } from "../../src/config/gemma2.ts";
import {
  createLoraBuffer,
  downloadLoraParams,
  findModule,
  initLoraParams,
  loraBranch,
  loraLayout,
  loraStreamId,
  tensorBinding,
  tensorView,
  uploadLoraParams,
} from "../../src/lora/params.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { testGpu } from "../helpers/gpu.ts";

const TINY = Gemma2ConfigSchema.parse(
  JSON.parse(Deno.readTextFileSync(new URL("../fixtures/golden/tiny_gemma2/config.json", import.meta.url))),
);

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

Deno.test("LoRA layout: PEFT key names and shapes for gemma-2-2b (PEFT_ADAPTER_FORMAT.md) and the tiny model", () => {
  const L = loraLayout(GEMMA2_2B, 16, ["q_proj", "k_proj", "v_proj", "o_proj"]);
  const shape = (key: string) => L.tensors.find((t) => t.key === key)?.shape.join("x");
  const pre = "base_model.model.model.layers.0.self_attn";
  assert(shape(`${pre}.q_proj.lora_A.weight`) === "16x2304", "q A");
  assert(shape(`${pre}.q_proj.lora_B.weight`) === "2048x16", "q B");
  assert(shape(`${pre}.k_proj.lora_A.weight`) === "16x2304", "k A");
  assert(shape(`${pre}.k_proj.lora_B.weight`) === "1024x16", "k B");
  assert(shape(`${pre}.v_proj.lora_B.weight`) === "1024x16", "v B");
  assert(shape(`${pre}.o_proj.lora_A.weight`) === "16x2048", "o A");
  assert(shape(`${pre}.o_proj.lora_B.weight`) === "2304x16", "o B");
  assert(L.tensors.length === 26 * 4 * 2, `tensor count ${L.tensors.length}`);
  // 26 layers × (q 69632 + k 53248 + v 53248 + o 69632) trainable parameters.
  assert(L.count === 26 * 245760, `parameter count ${L.count}`);
  for (const t of L.tensors) assert(t.offset % 64 === 0, `${t.key} offset ${t.offset} not 256-byte aligned`);
  for (let i = 1; i < L.tensors.length; i++) {
    assert(L.tensors[i].offset >= L.tensors[i - 1].offset + L.tensors[i - 1].size, "tensors overlap");
  }
  assert(
    peftKey(25, "down_proj", "B") === "base_model.model.model.layers.25.mlp.down_proj.lora_B.weight",
    "mlp key",
  );
  assert(projectionDims(GEMMA2_2B, "down_proj").inF === 9216, "down_proj in");
  // Tiny: head_dim 24 ≠ hidden/heads, so q out = 96, k/v out = 48 (as in the golden adapter).
  const T = loraLayout(TINY, 16, ["q_proj", "k_proj", "v_proj", "o_proj"]);
  assert(findModule(T, 3, "q_proj")?.outF === 96, "tiny q out");
  assert(findModule(T, 0, "k_proj")?.outF === 48, "tiny k out");
  assert(findModule(T, 0, "o_proj")?.inF === 96, "tiny o in");
  assert(findModule(T, 0, "gate_proj") === undefined, "gate not targeted");
  const streams = new Set(L.modules.map((m) => m.stream));
  assert(streams.size === L.modules.length, "dropout streams must be distinct per module");
  assert(loraStreamId(1, "q_proj") !== loraStreamId(0, "down_proj"), "stream ids");
});

Deno.test("LoRA init: A ~ U(±1/√in) seeded and reproducible, B = 0, scaling = alpha/r", () => {
  const lora = { r: 16, lora_alpha: 32, target_modules: ["q_proj", "v_proj", "down_proj"] };
  const p = initLoraParams(GEMMA2_2B, lora, 42);
  const q = initLoraParams(GEMMA2_2B, lora, 42);
  const other = initLoraParams(GEMMA2_2B, lora, 43);
  assert(p.scaling === 2, `scaling ${p.scaling}`);
  assert(p.data.every((v, i) => v === q.data[i]), "same seed must give the same parameters");
  let differ = 0;
  for (let i = 0; i < p.data.length; i++) differ += p.data[i] !== other.data[i] ? 1 : 0;
  assert(differ > p.layout.count / 4, "another seed must give other parameters");
  for (const m of p.layout.modules) {
    const a = tensorView(p, m.A);
    const b = tensorView(p, m.B);
    assert(b.every((v) => v === 0), `${m.B.key} must be zeros`);
    const bound = Math.fround(1 / Math.sqrt(m.inF)); // the values are f32, as torch's uniform_ on an f32 weight
    let min = Infinity, max = -Infinity, sum = 0, sq = 0;
    for (const v of a) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
      sq += v * v;
    }
    assert(min >= -bound && max <= bound, `${m.A.key}: range [${min}, ${max}] exceeds ±${bound}`);
    assert(max > 0.99 * bound && min < -0.99 * bound, `${m.A.key}: does not fill ±${bound}`);
    // U(-b, b): mean 0, variance b²/3.
    const n = a.length;
    assert(Math.abs(sum / n) < 5 * bound / Math.sqrt(3 * n), `${m.A.key}: mean ${sum / n}`);
    assert(
      Math.abs(sq / n / (bound * bound / 3) - 1) < 0.05,
      `${m.A.key}: variance ratio ${sq / n / (bound * bound / 3)}`,
    );
  }
  // A module's init does not depend on which other modules are targeted.
  const qOnly = initLoraParams(GEMMA2_2B, { ...lora, target_modules: ["q_proj"] }, 42);
  const m1 = findModule(p.layout, 5, "q_proj")!;
  const m2 = findModule(qOnly.layout, 5, "q_proj")!;
  assert(
    tensorView(p, m1.A).every((v, i) => v === tensorView(qOnly, m2.A)[i]),
    "init independent of targets",
  );
  // rsLoRA scaling.
  assert(initLoraParams(TINY, { ...lora, use_rslora: true }, 1).scaling === 32 / 4, "rslora scaling");
});

Deno.test("LoRA params on the GPU: upload, per-tensor bindings, branch specs, download", async () => {
  const gpu = await testGpu();
  const p = initLoraParams(TINY, {
    r: 16,
    lora_alpha: 32,
    target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"],
  }, 9);
  for (let i = 0; i < p.data.length; i++) p.data[i] += i * 1e-6; // make B non-zero too
  const g = uploadLoraParams(gpu, p);
  const grads = createLoraBuffer(gpu, p.layout, "grads");
  const m = findModule(p.layout, 2, "v_proj")!;
  const br = loraBranch(g, p, m, { p: 0.1, seed: 42, step: 5 });
  assert(br.dropout?.stream === m.stream && br.r === 16 && br.scaling === 2, "branch fields");
  assert(loraBranch(g, p, m, null).dropout === null, "eval branch has no dropout");
  assert(loraBranch(g, p, m, { p: 0, seed: 1, step: 1 }).dropout === null, "p = 0 means no dropout");
  const bind = tensorBinding(g, m.B) as { buffer: GPUBuffer; offset: number; size: number };
  assert(bind.offset % 256 === 0 && bind.size === m.B.size * 4, "binding alignment");
  const got = await readF32(gpu, g.buffer, bind.offset, m.B.size);
  assert(got.every((v, i) => v === tensorView(p, m.B)[i]), "tensor binding reads the right slice");
  assert((await readF32(gpu, grads.buffer, 0, p.layout.total)).every((v) => v === 0), "grads start at zero");
  const back = { ...p, data: new Float32Array(p.layout.total) };
  new Recorder(gpu).submit();
  await downloadLoraParams(gpu, g, back);
  assert(back.data.every((v, i) => v === p.data[i]), "download equals upload");
});
