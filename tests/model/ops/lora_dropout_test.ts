/** LoRA dropout masks (src/lora/dropout.ts, kernels/lora_dropout.wgsl through src/model/ops/lora_dropout.ts): GPU = CPU twin bit for bit,
 *  deterministic per (seed, step, stream), ~p dropped, independent across keys, inverted scaling. */
import {
  dropoutKey,
  dropoutMaskCpu,
  dropoutScale,
  type DropoutSpec,
  pcgHash,
} from "../../../src/lora/dropout.ts";
import { recordDropoutMask } from "../../../src/model/ops/lora_dropout.ts";
import { upload } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readF32 } from "../../../src/gpu/readback.ts";
import { testGpu } from "../../helpers/gpu.ts";

const COUNT = 200_003;

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

function sameArray(a: Float32Array, b: Float32Array, what: string): void {
  assert(a.length === b.length, `${what}: length ${a.length} != ${b.length}`);
  for (let i = 0; i < a.length; i++) assert(a[i] === b[i], `${what}: element ${i}: ${a[i]} != ${b[i]}`);
}

Deno.test("dropout masks: GPU equals the CPU twin, deterministic per key, ~p dropped, independent across keys", async () => {
  const gpu = await testGpu();
  const specs: DropoutSpec[] = [
    { p: 0.1, seed: 42, step: 0, stream: 0 },
    { p: 0.1, seed: 42, step: 0, stream: 0 }, // same key again
    { p: 0.1, seed: 43, step: 0, stream: 0 },
    { p: 0.1, seed: 42, step: 1, stream: 0 },
    { p: 0.1, seed: 42, step: 0, stream: 1 },
    { p: 0.05, seed: 7, step: 123456, stream: 205 },
    { p: 0.5, seed: 0xffffffff, step: 0xfffffffe, stream: 3 },
    { p: 1, seed: 1, step: 2, stream: 3 },
    { p: 0, seed: 1, step: 2, stream: 3 },
  ];
  const rec = new Recorder(gpu);
  const bufs = specs.map((s) => {
    const b = upload(gpu, "mask", new Float32Array(COUNT));
    recordDropoutMask(rec, b, COUNT, s);
    return b;
  });
  rec.submit();
  const masks: Float32Array[] = [];
  for (let i = 0; i < specs.length; i++) {
    const got = await readF32(gpu, bufs[i], 0, COUNT);
    sameArray(got, dropoutMaskCpu(COUNT, specs[i]), `GPU vs CPU mask ${JSON.stringify(specs[i])}`);
    masks.push(got);
  }
  sameArray(masks[0], masks[1], "same key twice");
  for (const [i, s] of specs.entries()) {
    const scale = dropoutScale(s.p);
    let dropped = 0;
    for (const v of masks[i]) {
      if (v === 0) dropped++;
      else assert(v === scale, `spec ${i}: kept value ${v} != f32(1/(1-p)) ${scale}`);
    }
    const frac = dropped / COUNT;
    // 5 standard deviations of a binomial proportion.
    const tol = 5 * Math.sqrt(s.p * (1 - s.p) / COUNT) + 1e-9;
    assert(Math.abs(frac - s.p) <= tol, `spec ${i}: dropped fraction ${frac}, want ${s.p} ± ${tol}`);
  }
  assert(dropoutScale(0.1) === Math.fround(1 / 0.9), "scale of p=0.1");
  // Changing the seed, the step or the stream gives an independent mask: P(same decision) = p² + (1-p)².
  const p = 0.1;
  const agreeWant = p * p + (1 - p) * (1 - p);
  for (const j of [2, 3, 4]) {
    let agree = 0;
    for (let i = 0; i < COUNT; i++) agree += (masks[0][i] === 0) === (masks[j][i] === 0) ? 1 : 0;
    const frac = agree / COUNT;
    const tol = 5 * Math.sqrt(agreeWant * (1 - agreeWant) / COUNT);
    assert(
      Math.abs(frac - agreeWant) <= tol,
      `mask ${j} vs 0: agreement ${frac}, want ${agreeWant} ± ${tol}`,
    );
  }
  // Neighbouring elements are not correlated (the hash is applied to consecutive counters).
  let both = 0;
  for (let i = 0; i + 1 < COUNT; i++) both += masks[0][i] === 0 && masks[0][i + 1] === 0 ? 1 : 0;
  const pairWant = p * p;
  const pairTol = 5 * Math.sqrt(pairWant * (1 - pairWant) / COUNT);
  assert(
    Math.abs(both / (COUNT - 1) - pairWant) <= pairTol,
    `adjacent drops ${both / (COUNT - 1)}, want ${pairWant}`,
  );
});

Deno.test("dropout key: distinct (seed, step, stream) give distinct keys; pcg hash matches reference values", () => {
  const seen = new Set<string>();
  for (let step = 0; step < 64; step++) {
    for (let stream = 0; stream < 64; stream++) {
      const k = dropoutKey(42, step, stream).join(",");
      assert(!seen.has(k), `key collision at step ${step} stream ${stream}`);
      seen.add(k);
    }
  }
  // PCG-RXS-M-XS values computed independently with 64-bit BigInt arithmetic.
  const ref = (v: number) => {
    const M = (1n << 32n) - 1n;
    const state = (BigInt(v) * 747796405n + 2891336453n) & M;
    const word = (((state >> ((state >> 28n) + 4n)) ^ state) * 277803737n) & M;
    return Number((word >> 22n) ^ word);
  };
  for (const v of [0, 1, 2, 0x7fffffff, 0x80000000, 0xffffffff, 123456789]) {
    assert(pcgHash(v) === ref(v), `pcgHash(${v}) = ${pcgHash(v)}, want ${ref(v)}`);
  }
  let threw = false;
  try {
    dropoutKey(-1, 0, 0);
  } catch {
    threw = true;
  }
  assert(threw, "a negative seed must be rejected");
});
