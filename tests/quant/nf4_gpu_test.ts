import assert from "node:assert/strict";
import { readSafetensorsFile } from "../../src/safetensors/read_file.ts";
import { type Nf4Tensor, quantizeNf4 } from "../../src/quant/nf4.ts";
import {
  createNf4Buffers,
  destroyNf4Buffers,
  gpuReciprocals,
  quantizeNf4Gpu,
  readNf4,
  recordAbsmaxMean,
  recordDoubleQuant,
  recordNf4Quantize,
} from "../../src/quant/nf4_gpu.ts";
import { upload } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { rng, testGpu } from "../helpers/gpu.ts";

const golden = await readSafetensorsFile(
  new URL("../fixtures/golden/nf4.safetensors", import.meta.url).pathname,
);

function assertSameNf4(got: Nf4Tensor, want: Nf4Tensor, what: string) {
  assert.equal(got.n, want.n, `${what}: n`);
  const firstDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `at ${i}: ${a[i]} vs ${b[i]}`;
    return null;
  };
  for (const k of ["packed", "qabsmax", "absmax2"] as const) {
    const d = firstDiff(got[k], want[k]);
    assert.equal(d, null, `${what}.${k} differs ${d}`);
  }
  assert.equal(got.offset, want.offset, `${what}.offset`);
}

Deno.test("nf4 gpu: integer reciprocal is the correctly rounded float32 1/x", async () => {
  const gpu = await testGpu();
  const rand = rng(11);
  const n = 200_000;
  const x = new Float32Array(n);
  const u = new Uint32Array(x.buffer);
  for (let i = 0; i < n; i++) {
    // random sign, exponent in the normal range whose reciprocal is normal, random mantissa
    const e = 1 + Math.floor(rand() * 252);
    u[i] = ((rand() < 0.5 ? 1 : 0) << 31 | e << 23 | Math.floor(rand() * 0x800000)) >>> 0;
  }
  x[0] = 1;
  x[1] = 2 ** -100;
  x[2] = 3;
  x[3] = 0.0625;
  const got = await gpuReciprocals(gpu, x);
  let bad = 0;
  for (let i = 0; i < n; i++) if (got[i] !== Math.fround(1 / x[i])) bad++;
  assert.equal(bad, 0, `${bad} of ${n} reciprocals are not correctly rounded`);
});

for (const m of ["gate_proj_l0", "odd_100x170", "tiny_7x13"]) {
  Deno.test(`nf4 gpu: ${m} bit-exact with the golden (offset from the CPU mean and passed in)`, async () => {
    const gpu = await testGpu();
    const w = golden.tensors.get(`${m}.weight`)!;
    const want: Nf4Tensor = {
      shape: w.shape,
      n: w.data.length,
      packed: golden.tensors.get(`${m}.packed`)!.data as Uint8Array<ArrayBuffer>,
      qabsmax: golden.tensors.get(`${m}.qabsmax`)!.data as Uint8Array<ArrayBuffer>,
      absmax2: golden.tensors.get(`${m}.absmax2`)!.data as Float32Array<ArrayBuffer>,
      offset: (golden.tensors.get(`${m}.offset`)!.data as Float32Array)[0],
    };
    assertSameNf4(await quantizeNf4Gpu(gpu, w.data as Float32Array, w.shape), want, `${m} (readback offset)`);
    assertSameNf4(
      await quantizeNf4Gpu(gpu, w.data as Float32Array, w.shape, { offset: want.offset }),
      want,
      `${m} (given offset)`,
    );
  });
}

Deno.test("nf4 gpu: random ragged shapes equal the CPU reference bit for bit", async () => {
  const gpu = await testGpu();
  const rand = rng(3);
  const shapes = [[1], [63], [64], [65], [3, 7], [129, 33], [256 * 64 + 1], [2, 256 * 64 * 2 + 77], [
    300,
    301,
  ]];
  for (const shape of shapes) {
    const n = shape.reduce((a, d) => a * d, 1);
    const w = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      // roughly normal weights with occasional outliers, bf16-like and arbitrary mantissas mixed
      const g = (rand() + rand() + rand() - 1.5) * 0.05;
      w[i] = rand() < 0.002 ? g * 40 : g;
    }
    // a block of exact zeros and a block of identical values (ties at the thresholds)
    if (n > 256) {
      w.fill(0, 64, 128);
      w.fill(0.25, 128, 192);
    }
    assertSameNf4(
      await quantizeNf4Gpu(gpu, w, shape),
      quantizeNf4(w, shape),
      `shape ${JSON.stringify(shape)}`,
    );
  }
});

Deno.test("nf4 gpu: all-zero tensor and exact midpoints behave as bitsandbytes (NaN path -> code 0)", async () => {
  const gpu = await testGpu();
  for (const n of [64, 65, 131]) {
    const w = new Float32Array(n);
    assertSameNf4(await quantizeNf4Gpu(gpu, w, [n]), quantizeNf4(w, [n]), `zeros ${n}`);
  }
  // values placed exactly on the float32 thresholds (absmax 1 so x * r == x)
  const t = [
    0.03979014977812767,
    0.3893125355243683,
    0.6427869200706482,
    0.8614784181118011,
    -0.8480964004993439,
  ];
  const w = new Float32Array(64);
  w[0] = 1;
  t.forEach((v, i) => (w[i + 1] = v));
  assertSameNf4(await quantizeNf4Gpu(gpu, w, [64]), quantizeNf4(w, [64]), "thresholds");
});

Deno.test("nf4 gpu: all-GPU path (mean on the GPU) stays within an ulp of the exact offset", async () => {
  const gpu = await testGpu();
  const rand = rng(9);
  const n = 64 * 1000 + 5;
  const w = new Float32Array(n).map(() => (rand() - 0.5) * 0.1);
  const wb = upload(gpu, "w", w);
  const bufs = createNf4Buffers(gpu, n);
  const rec = new Recorder(gpu);
  recordNf4Quantize(rec, wb, bufs, n, 4096 * 3); // chunked dispatches, as for tensors above one binding
  recordAbsmaxMean(rec, bufs, n);
  recordDoubleQuant(rec, bufs, n);
  rec.submit();
  const got = await readNf4(gpu, bufs, [n]);
  const want = quantizeNf4(w, [n]);
  assert.deepEqual(got.packed, want.packed, "packed (chunked) equals the reference");
  assert.ok(
    Math.abs(got.offset - want.offset) <= 4 * 2 ** -23 * want.offset,
    `offset ${got.offset} vs ${want.offset}`,
  );
  let diff = 0;
  for (let i = 0; i < want.qabsmax.length; i++) {
    diff = Math.max(diff, Math.abs(got.qabsmax[i] - want.qabsmax[i]));
  }
  assert.ok(diff <= 1, `qabsmax moved by ${diff} codes`);
  destroyNf4Buffers(bufs);
  wb.destroy();
});
