import { geglu, gegluBackward, gegluBackwardInPlace } from "../../../src/model/ops/geglu.ts";
import { gegluBwd, gegluFwd, geluTanh } from "../../../src/model/ref/geglu.ts";
import { createBuffer, upload } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readBuffer, readF32 } from "../../../src/gpu/readback.ts";
import { fromF16Array } from "../../../src/util/half.ts";
import { assertClose, f16Only, randomArray, rng, testGpu } from "../../helpers/gpu.ts";

// [rows, cols]: ragged (1, primes, not multiples of the 256-wide workgroup), gemma-2-2b's 9216 and the tiny 128.
const SHAPES: [number, number][] = [
  [1, 1],
  [3, 7],
  [17, 128],
  [5, 9216],
  [2, 1000],
  [129, 13],
  [64, 257],
  [11, 255],
  [1, 2304],
  [300, 24],
  [7, 1],
  [33, 511],
];

/** Gate pre-activations over the range where gelu bends, with a tail out to ±12. */
function gates(n: number, rand: () => number): Float32Array<ArrayBuffer> {
  const g = randomArray(n, rand, 4);
  for (let i = 0; i < n; i += 17) g[i] *= 3;
  return g;
}

/** Splits a dense [rows, 2·cols] buffer of [gate | up] rows. */
function interleave(
  gate: Float32Array,
  up: Float32Array,
  rows: number,
  cols: number,
): Float32Array<ArrayBuffer> {
  const out = new Float32Array(rows * 2 * cols);
  for (let r = 0; r < rows; r++) {
    out.set(gate.subarray(r * cols, (r + 1) * cols), r * 2 * cols);
    out.set(up.subarray(r * cols, (r + 1) * cols), r * 2 * cols + cols);
  }
  return out;
}

function halves(a: Float32Array, rows: number, cols: number): [Float32Array, Float32Array] {
  const g = new Float32Array(rows * cols);
  const u = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    g.set(a.subarray(r * 2 * cols, r * 2 * cols + cols), r * cols);
    u.set(a.subarray(r * 2 * cols + cols, (r + 1) * 2 * cols), r * cols);
  }
  return [g, u];
}

Deno.test(`geglu forward (two buffers and one fused [N, 2I] buffer) vs float64 reference on ${SHAPES.length} shapes`, async () => {
  const gpu = await testGpu();
  const rand = rng(31);
  const rec = new Recorder(gpu);
  const checks: (() => Promise<void>)[] = [];
  for (const [rows, cols] of SHAPES) {
    const gate = gates(rows * cols, rand);
    const up = randomArray(rows * cols, rand, 2);
    const h1 = createBuffer(gpu, "h", rows * cols * 4);
    geglu(rec, upload(gpu, "gate", gate), upload(gpu, "up", up), h1, { rows, cols });
    const gu = upload(gpu, "gate_up", interleave(gate, up, rows, cols));
    const h2 = createBuffer(gpu, "h", rows * cols * 4);
    geglu(rec, gu, gu, h2, { rows, cols, ldGate: 2 * cols, ldUp: 2 * cols, offUp: cols });
    checks.push(async () => {
      const want = gegluFwd(gate, up, rows * cols);
      assertClose(await readF32(gpu, h1, 0, rows * cols), want, { rel: 1e-5 }, `h rows=${rows} cols=${cols}`);
      assertClose(
        await readF32(gpu, h2, 0, rows * cols),
        want,
        { rel: 1e-5 },
        `fused h rows=${rows} cols=${cols}`,
      );
    });
  }
  rec.submit();
  for (const c of checks) await c();
});

Deno.test(`geglu backward (separate outputs, fused outputs, in place) vs float64 reference on ${SHAPES.length} shapes`, async () => {
  const gpu = await testGpu();
  const rand = rng(32);
  const rec = new Recorder(gpu);
  const checks: (() => Promise<void>)[] = [];
  for (const [rows, cols] of SHAPES) {
    const n = rows * cols;
    const gate = gates(n, rand);
    const up = randomArray(n, rand, 2);
    const dh = randomArray(n, rand, 0.5);
    const dhb = upload(gpu, "dh", dh);
    // Separate buffers in, separate buffers out.
    const dg = createBuffer(gpu, "dgate", n * 4);
    const du = createBuffer(gpu, "dup", n * 4);
    gegluBackward(rec, dhb, upload(gpu, "gate", gate), upload(gpu, "up", up), dg, du, { rows, cols });
    // Fused [gate | up] in, fused [dgate | dup] out.
    const gu = upload(gpu, "gate_up", interleave(gate, up, rows, cols));
    const dgu = createBuffer(gpu, "dgate_up", 2 * n * 4);
    gegluBackward(rec, dhb, gu, gu, dgu, dgu, {
      rows,
      cols,
      ldGate: 2 * cols,
      ldUp: 2 * cols,
      offUp: cols,
      ldOut: 2 * cols,
      offDUp: cols,
    });
    // In place on a fused buffer.
    const io = upload(gpu, "gate_up_io", interleave(gate, up, rows, cols));
    gegluBackwardInPlace(rec, dhb, io, io, { rows, cols, ldGate: 2 * cols, ldUp: 2 * cols, offUp: cols });
    checks.push(async () => {
      const want = gegluBwd(dh, gate, up, n);
      const what = `rows=${rows} cols=${cols}`;
      assertClose(await readF32(gpu, dg, 0, n), want.dgate, { rel: 1e-5 }, `dgate ${what}`);
      assertClose(await readF32(gpu, du, 0, n), want.dup, { rel: 1e-5 }, `dup ${what}`);
      const [fg, fu] = halves(await readF32(gpu, dgu, 0, 2 * n), rows, cols);
      assertClose(fg, want.dgate, { rel: 1e-5 }, `fused dgate ${what}`);
      assertClose(fu, want.dup, { rel: 1e-5 }, `fused dup ${what}`);
      const [ig, iu] = halves(await readF32(gpu, io, 0, 2 * n), rows, cols);
      assertClose(ig, want.dgate, { rel: 1e-5 }, `in-place dgate ${what}`);
      assertClose(iu, want.dup, { rel: 1e-5 }, `in-place dup ${what}`);
    });
  }
  rec.submit();
  for (const c of checks) await c();
});

Deno.test("geglu f16 outputs (h, dgate, dup) vs float64 reference, saturating instead of Inf", async () => {
  const gpu = await testGpu();
  await f16Only(gpu, async () => {
    const rand = rng(33);
    const [rows, cols] = [37, 300];
    const n = rows * cols;
    const gate = gates(n, rand);
    const up = randomArray(n, rand, 2);
    const dh = randomArray(n, rand, 0.5);
    // A few products beyond half range: they must come out as ±65504.
    gate[5] = 3e3;
    up[5] = 100;
    gate[6] = 3e3;
    up[6] = -100;
    const [gb, ub] = [upload(gpu, "gate", gate), upload(gpu, "up", up)];
    const h = createBuffer(gpu, "h16", n * 2);
    const dg = createBuffer(gpu, "dgate16", n * 2);
    const du = createBuffer(gpu, "dup16", n * 2);
    const rec = new Recorder(gpu);
    geglu(rec, gb, ub, h, { rows, cols, hType: "f16" });
    gegluBackward(rec, upload(gpu, "dh", dh), gb, ub, dg, du, { rows, cols, dType: "f16" });
    rec.submit();
    const read16 = async (b: GPUBuffer) => fromF16Array(new Uint16Array(await readBuffer(gpu, b, 0, n * 2)));
    const sat = (a: Float64Array) => a.map((v) => Math.max(-65504, Math.min(65504, v)));
    const want = gegluBwd(dh, gate, up, n);
    const gotH = await read16(h);
    if (gotH[5] !== 65504 || gotH[6] !== -65504) throw new Error(`saturation: got ${gotH[5]}, ${gotH[6]}`);
    // Half rounding (2^-11 relative) against the tensor's max, the saturated entries excluded.
    const mask = (a: ArrayLike<number>) => Array.from(a, (v, i) => (i === 5 || i === 6 ? 0 : v));
    assertClose(mask(gotH), mask(sat(gegluFwd(gate, up, n))), { rel: 5e-4 }, "h f16");
    assertClose(mask(await read16(dg)), mask(sat(want.dgate)), { rel: 5e-4 }, "dgate f16");
    assertClose(mask(await read16(du)), mask(sat(want.dup)), { rel: 5e-4 }, "dup f16");
  });
});

Deno.test("geglu at extreme gate values stays finite and matches the reference per element", async () => {
  const gpu = await testGpu();
  const gate = new Float32Array([
    -1e30,
    -1e5,
    -100,
    -20,
    -12,
    -10,
    -8,
    -5,
    -3,
    -1,
    -1e-3,
    -1e-30,
    0,
    1e-30,
    1e-3,
    1,
    3,
    5,
    8,
    12,
    20,
    100,
    1e5,
    1e12,
    1e15,
    1e30,
    -1e15,
    3e38,
    -3e38,
  ]);
  const n = gate.length;
  const up = new Float32Array(n).map((_, i) => (i % 3) - 1.25);
  const dh = new Float32Array(n).map((_, i) => 0.5 - (i % 4) * 0.3);
  const gb = upload(gpu, "gate", gate);
  const ub = upload(gpu, "up", up);
  const h = createBuffer(gpu, "h", n * 4);
  const dg = createBuffer(gpu, "dgate", n * 4);
  const du = createBuffer(gpu, "dup", n * 4);
  const rec = new Recorder(gpu);
  geglu(rec, gb, ub, h, { rows: 1, cols: n });
  gegluBackward(rec, upload(gpu, "dh", dh), gb, ub, dg, du, { rows: 1, cols: n });
  rec.submit();
  const want = gegluBwd(dh, gate, up, n);
  const check = (got: Float32Array, ref: ArrayLike<number>, what: string) => {
    for (let i = 0; i < n; i++) {
      const w = Math.fround(ref[i]); // ±3e38·1.25 overflows f32 in the reference too
      // Absolute slack 1e-12: for gate ≤ −8 the float64 reference's 1 + tanh(u) cancels to exactly 0, while
      // the kernel's logistic form keeps the true ~1e-21.
      const ok = Number.isFinite(w) ? Math.abs(got[i] - w) <= 1e-5 * Math.abs(w) + 1e-12 : got[i] === w;
      if (!ok || Number.isNaN(got[i])) {
        throw new Error(
          `${what} at gate=${gate[i]}: got ${got[i]}, want ${ref[i]} (gelu ${geluTanh(gate[i])})`,
        );
      }
    }
  };
  check(await readF32(gpu, h, 0, n), gegluFwd(gate, up, n), "h");
  check(await readF32(gpu, dg, 0, n), want.dgate, "dgate");
  check(await readF32(gpu, du, 0, n), want.dup, "dup");
});

Deno.test("geglu over more workgroups than one grid dimension allows (folded grid)", async () => {
  const gpu = await testGpu();
  // 2049 × 9216 / 256 = 73764 workgroups > 65535 (a full gemma-2-2b MLP batch of 2048 tokens plus one).
  const [rows, cols] = [2049, 9216];
  const n = rows * cols;
  // Cheap deterministic data that is never 0 (so gelu(gate)·up ≠ 0 marks every written element).
  const gate = new Float32Array(n).map((_, i) => ((i * 7919) % 1000) / 100 - 4.995);
  const up = new Float32Array(n).map((_, i) => 1.5 - (i % 3));
  const h = createBuffer(gpu, "h", n * 4);
  const rec = new Recorder(gpu);
  geglu(rec, upload(gpu, "gate", gate), upload(gpu, "up", up), h, { rows, cols });
  rec.submit();
  const got = await readF32(gpu, h, 0, n);
  for (let i = 0; i < n; i++) {
    if (got[i] === 0) throw new Error(`element ${i} (row ${Math.floor(i / cols)}) not written`);
  }
  // Every 41st row and the last rows (the end of the folded grid) against the reference.
  const sampled = [...Array.from({ length: Math.ceil(rows / 41) }, (_, k) => 41 * k), rows - 2, rows - 1];
  for (const r of sampled) {
    const o = r * cols;
    const want = gegluFwd(gate.subarray(o, o + cols), up.subarray(o, o + cols), cols);
    assertClose(got.subarray(o, o + cols), want, { rel: 1e-5 }, `folded h row ${r}`);
  }
});
