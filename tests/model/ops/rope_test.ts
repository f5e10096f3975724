import { rope, ropeBackward, ropeInvFreq, type RopeShape } from "../../../src/model/ops/rope.ts";
import {
  ropeApply,
  ropeBwd,
  ropeFwd,
  ropeInvFreq as refInvFreq,
  ropeTables,
} from "../../../src/model/ref/rope.ts";
import { upload } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readF32 } from "../../../src/gpu/readback.ts";
import { assertClose, randomArray, rng, testGpu } from "../../helpers/gpu.ts";

const THETA = 10000;

// [B, T, H, D]: D = 2 (one pair), ragged head counts and dims (not multiples of the 64-wide workgroup),
// Gemma-2-2b's 8 query heads × 256 and the tiny model's 24.
const SHAPES: [number, number, number, number][] = [
  [1, 1, 1, 2],
  [2, 3, 1, 4],
  [1, 7, 3, 6],
  [3, 5, 2, 24],
  [2, 17, 8, 256],
  [1, 1, 4, 256],
  [4, 13, 2, 10],
  [1, 64, 4, 64],
  [5, 11, 3, 2],
  [2, 33, 1, 130],
  [1, 9, 5, 256],
  [3, 31, 7, 46],
];

Deno.test("ropeInvFreq matches the float32 reference bit for bit", () => {
  for (const D of [2, 24, 64, 128, 256]) {
    const got = ropeInvFreq(D, THETA);
    const want = refInvFreq(D, THETA);
    for (let i = 0; i < got.length; i++) {
      if (got[i] !== want[i]) throw new Error(`D=${D} i=${i}: ${got[i]} != ${want[i]}`);
    }
  }
});

Deno.test(`rope forward and backward vs float64 reference on ${SHAPES.length} shapes`, async () => {
  const gpu = await testGpu();
  const rand = rng(21);
  const rec = new Recorder(gpu);
  const checks: (() => Promise<void>)[] = [];
  const invFreqs = new Map<number, GPUBuffer>();
  const inv = (D: number) => {
    if (!invFreqs.has(D)) invFreqs.set(D, upload(gpu, "inv_freq", ropeInvFreq(D, THETA)));
    return invFreqs.get(D)!;
  };
  for (const [B, T, H, D] of SHAPES) {
    const s: RopeShape = { B, T, H, D };
    const x = randomArray(B * T * H * D, rand, 2);
    const dy = randomArray(B * T * H * D, rand, 0.3);
    const xb = upload(gpu, "q", x);
    const dyb = upload(gpu, "dq", dy);
    rope(rec, xb, inv(D), s);
    ropeBackward(rec, dyb, inv(D), s);
    checks.push(async () => {
      const what = `B=${B} T=${T} H=${H} D=${D}`;
      assertClose(
        await readF32(gpu, xb, 0, x.length),
        ropeFwd(x, B, T, H, D, THETA),
        { rel: 1e-5 },
        `fwd ${what}`,
      );
      assertClose(
        await readF32(gpu, dyb, 0, dy.length),
        ropeBwd(dy, B, T, H, D, THETA),
        { rel: 1e-5 },
        `bwd ${what}`,
      );
    });
  }
  rec.submit();
  for (const c of checks) await c();
});

Deno.test("rope at long positions matches transformers' float32 angles; forward then backward is the identity", async () => {
  const gpu = await testGpu();
  const rand = rng(22);
  const [B, T, H, D] = [2, 40, 2, 256];
  const invb = upload(gpu, "inv_freq", ropeInvFreq(D, THETA));
  const rec = new Recorder(gpu);
  const cases: { pos0: number; x: Float32Array; xb: GPUBuffer; rb: GPUBuffer }[] = [];
  for (const pos0 of [0, 473, 4090, 8150]) {
    const x = randomArray(B * T * H * D, rand, 3);
    const xb = upload(gpu, "k", x);
    const rb = upload(gpu, "roundtrip", x);
    rope(rec, xb, invb, { B, T, H, D, pos0 });
    rope(rec, rb, invb, { B, T, H, D, pos0 });
    ropeBackward(rec, rb, invb, { B, T, H, D, pos0 });
    cases.push({ pos0, x, xb, rb });
  }
  rec.submit();
  for (const { pos0, x, xb, rb } of cases) {
    const positions = Array.from({ length: T }, (_, t) => pos0 + t);
    // transformers rounds the angle inv_freq·pos to float32 (an error of up to 2.4e-4 rad at pos 4096 that it
    // has too) and evaluates cos/sin in float32: that is the reference here.
    const { cos, sin } = ropeTables(T, D, THETA, positions, true);
    const got = await readF32(gpu, xb, 0, x.length);
    assertClose(got, ropeApply(x, B, T, H, D, cos, sin, 1), { rel: 2e-6 }, `f32-angle fwd pos0=${pos0}`);
    if (pos0 < 1000) {
      assertClose(got, ropeFwd(x, B, T, H, D, THETA, positions), { rel: 2e-4 }, `float64 fwd pos0=${pos0}`);
    }
    assertClose(await readF32(gpu, rb, 0, x.length), x, { rel: 2e-6 }, `round trip pos0=${pos0}`);
  }
});

Deno.test("rope on strided q and k views of a fused qkv row leaves v untouched", async () => {
  const gpu = await testGpu();
  const rand = rng(23);
  // Rows of [q: Hq·D | k: Hkv·D | v: Hkv·D] (GQA 8:4 like gemma-2-2b, small D), T = 7, B = 3.
  const [B, T, Hq, Hkv, D] = [3, 7, 8, 4, 24];
  const stride = (Hq + 2 * Hkv) * D;
  const row = randomArray(B * T * stride, rand, 1);
  const buf = upload(gpu, "qkv", row);
  const invb = upload(gpu, "inv_freq", ropeInvFreq(D, THETA));
  const rec = new Recorder(gpu);
  rope(rec, buf, invb, { B, T, H: Hq, D, stride, offset: 0 });
  rope(rec, buf, invb, { B, T, H: Hkv, D, stride, offset: Hq * D });
  rec.submit();
  const got = await readF32(gpu, buf, 0, row.length);
  const slice = (a: ArrayLike<number>, off: number, H: number) => {
    const out = new Float64Array(B * T * H * D);
    for (let n = 0; n < B * T; n++) {
      for (let j = 0; j < H * D; j++) out[n * H * D + j] = a[n * stride + off + j];
    }
    return out;
  };
  assertClose(slice(got, 0, Hq), ropeFwd(slice(row, 0, Hq), B, T, Hq, D, THETA), { rel: 1e-5 }, "q view");
  assertClose(
    slice(got, Hq * D, Hkv),
    ropeFwd(slice(row, Hq * D, Hkv), B, T, Hkv, D, THETA),
    { rel: 1e-5 },
    "k",
  );
  assertClose(slice(got, (Hq + Hkv) * D, Hkv), slice(row, (Hq + Hkv) * D, Hkv), { abs: 0 }, "v untouched");
});

Deno.test("rope over more workgroups than one grid dimension allows (folded grid)", async () => {
  const gpu = await testGpu();
  const rand = rng(24);
  // tokens·D/2 / 64 = 65600 workgroups > 65535.
  const [B, T, H, D] = [1, 32800, 1, 256];
  const x = randomArray(B * T * H * D, rand, 1);
  const xb = upload(gpu, "q", x);
  const rec = new Recorder(gpu);
  rope(rec, xb, upload(gpu, "inv_freq", ropeInvFreq(D, THETA)), { B, T, H, D });
  rec.submit();
  const got = await readF32(gpu, xb, 0, x.length);
  const positions = Array.from({ length: T }, (_, t) => t);
  const { cos, sin } = ropeTables(T, D, THETA, positions, true);
  assertClose(got, ropeApply(x, B, T, H, D, cos, sin, 1), { rel: 2e-6 }, "folded");
});
