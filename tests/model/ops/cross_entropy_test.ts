/**
 * The fused lm_head + softcap + cross-entropy (src/model/ops/cross_entropy.ts) against the float64 reference
 * (src/model/ref/cross_entropy.ts) and transformers' own outputs (tests/fixtures/golden/forward_f64).
 *
 * Tolerances (f32 path; the f16 path feeds the reference the f16-rounded table, and f16 → f32 is exact, so
 * the same bounds apply), each error measured against the tensor's scale:
 *   logits, lse, token loss, label log-prob: max |got − want| ≤ 1e-5 · max |want|
 *   loss sum: |got − want| ≤ 1e-5 · |want|;  count: exact
 *   dh: max |got − want| ≤ 1e-5 · max |want| (gradients are judged against their scale, golden README)
 * Observed on lavapipe: lse/token loss/logits ≤ 2.5e-7 of scale, loss sum ≤ 1.2e-7, dh ≤ 1.7e-6 (dim 2304).
 * Inputs have realistic size: pre-cap logits are scaled to reach ±60 (tanh argument 2 at softcap 30), and
 * some rows are made confident (target logit far above the rest) so p ≈ 1 is exercised.
 */
import {
  acquireCrossEntropyScratch,
  ceChunkFor,
  type CrossEntropyScratch,
  crossEntropyScratchBytes,
  FINAL_SOFTCAP,
  lmHeadCeForward,
  type LmHeadCeShape,
  lmHeadCrossEntropy,
  type TableChunk,
} from "../../../src/model/ops/cross_entropy.ts";
import { crossEntropyFwd, lmHeadCeBwd, lmHeadLogits } from "../../../src/model/ref/cross_entropy.ts";
import { IGNORE_INDEX } from "../../../src/data/tokenize.ts";
import { BufferPool, createBuffer, upload } from "../../../src/gpu/buffers.ts";
import type { Gpu } from "../../../src/gpu/device.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readF32 } from "../../../src/gpu/readback.ts";
import { fromF16Array, toF16Array } from "../../../src/util/half.ts";
import { readSafetensorsFile } from "../../../src/safetensors/read_file.ts";
import { toFloat64 } from "../../../src/safetensors/decode.ts";
import { assertClose, f16Only, randomArray, rng, testGpu, testReductions } from "../../helpers/gpu.ts";

const TOL = 1e-5;

function assert(cond: boolean, msg: string): void {
  if (!cond) throw new Error(msg);
}

function assertEquals(got: unknown, want: unknown, msg = ""): void {
  const [g, w] = [JSON.stringify(got), JSON.stringify(want)];
  if (g !== w) throw new Error(`${msg}: got ${g}, want ${w}`);
}

function assertThrows(fn: () => void, type: typeof Error = Error, includes = ""): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof type) || !(e as Error).message.includes(includes)) {
      throw new Error(`expected ${type.name} containing "${includes}", got ${e}`);
    }
    return;
  }
  throw new Error(`expected ${type.name} containing "${includes}", nothing thrown`);
}

interface Case {
  name: string;
  N: number;
  dim: number;
  /** Row counts of the table pieces; V is their sum. */
  pieces: number[];
  chunk: number;
  softcap: number | null;
  /** Rows whose target is −100. */
  ignored?: number[];
  /** Rows made confident (h along the target's embedding row). */
  confident?: number[];
}

const CASES: Case[] = [
  { name: "N=1, V < one chunk", N: 1, dim: 16, pieces: [37], chunk: 64, softcap: FINAL_SOFTCAP },
  {
    name: "N=7, V=1021 prime over 3 odd pieces",
    N: 7,
    dim: 67,
    pieces: [331, 347, 343],
    chunk: 128,
    softcap: FINAL_SOFTCAP,
    ignored: [2, 5],
    confident: [3],
  },
  {
    name: "N=13, a 1-row piece, no softcap",
    N: 13,
    dim: 48,
    pieces: [97, 1, 402],
    chunk: 64,
    softcap: null,
    ignored: [0, 12],
    confident: [4, 7],
  },
  {
    name: "N=31, V=257 < chunk",
    N: 31,
    dim: 33,
    pieces: [257],
    chunk: 4096,
    softcap: FINAL_SOFTCAP,
    ignored: [30],
  },
  {
    name: "N=67 (> 64-row tile), chunk 192 not dividing the pieces",
    N: 67,
    dim: 96,
    pieces: [233, 235, 231],
    chunk: 192,
    softcap: FINAL_SOFTCAP,
    ignored: [0, 1, 2, 40, 66],
    confident: [10, 11, 50],
  },
];

interface Data {
  h: Float32Array<ArrayBuffer>;
  /** The table as the GPU sees it (f16-rounded on the f16 path). */
  table: Float32Array<ArrayBuffer>;
  targets: Int32Array<ArrayBuffer>;
  V: number;
}

/** Random inputs whose pre-cap logits reach ±maxLogit. */
function makeData(c: Case, seed: number, tableType: "f32" | "f16", maxLogit = 60): Data {
  const rand = rng(seed);
  const V = c.pieces.reduce((a, b) => a + b, 0);
  let table = randomArray(V * c.dim, rand, 0.05);
  if (tableType === "f16") table = fromF16Array(toF16Array(table));
  const h = randomArray(c.N * c.dim, rand);
  const targets = new Int32Array(c.N);
  for (let n = 0; n < c.N; n++) targets[n] = Math.floor(rand() * V);
  for (const n of c.ignored ?? []) targets[n] = IGNORE_INDEX;
  for (const n of c.confident ?? []) {
    const t = targets[n];
    for (let d = 0; d < c.dim; d++) h[n * c.dim + d] = 0.3 * h[n * c.dim + d] + table[t * c.dim + d] * 40;
  }
  const z = lmHeadLogits(h, table, c.N, c.dim, V, null);
  const zmax = z.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  for (let i = 0; i < h.length; i++) h[i] *= maxLogit / zmax;
  return { h, table, targets, V };
}

function uploadTable(
  gpu: Gpu,
  table: Float32Array,
  dim: number,
  pieces: number[],
  type: "f32" | "f16",
): TableChunk[] {
  const out: TableChunk[] = [];
  let rowStart = 0;
  for (const rows of pieces) {
    const part = table.subarray(rowStart * dim, (rowStart + rows) * dim);
    out.push({
      buffer: upload(gpu, `E${rowStart}`, type === "f16" ? toF16Array(part) : part),
      rowStart,
      rows,
    });
    rowStart += rows;
  }
  return out;
}

function scratchFor(gpu: Gpu, N: number, chunk: number): CrossEntropyScratch {
  return {
    chunkLogits: createBuffer(gpu, "chunk", N * chunk * 4),
    rowState: createBuffer(gpu, "state", 3 * N * 4),
    rows: N,
    chunk,
  };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function assertFinite(a: ArrayLike<number>, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new Error(`${what}[${i}] = ${a[i]}`);
  }
}

/** Compares with an absolute tolerance TOL · scale (scale = max |want|, at least `floor`). */
function closeToScale(got: ArrayLike<number>, want: ArrayLike<number>, what: string, floor = 0): void {
  assertFinite(got, what);
  assertClose(got, want, { abs: TOL * Math.max(maxAbs(want), floor) }, what);
}

for (const tableType of ["f32", "f16"] as const) {
  testReductions(
    `lm_head CE forward + backward, ${tableType} table, vs float64 reference on ${CASES.length} ragged shapes`,
    async () => {
      const gpu = await testGpu();
      // An f16 table without shader-f16 (MAIEUTIC_F16=0, GL adapters) is refused naming it.
      await (tableType === "f16" ? f16Only : (_: unknown, body: () => Promise<void>) => body())(
        gpu,
        async () => {
          const rec = new Recorder(gpu);
          const checks: (() => Promise<void>)[] = [];
          CASES.forEach((c, ci) => {
            const d = makeData(c, 100 + ci, tableType);
            const s: LmHeadCeShape = { N: c.N, dim: c.dim, V: d.V, tableType, softcap: c.softcap };
            const gradScale = 1 / 3;
            const io = {
              h: upload(gpu, "h", d.h),
              table: uploadTable(gpu, d.table, c.dim, c.pieces, tableType),
              targets: upload(gpu, "targets", d.targets),
              lse: createBuffer(gpu, "lse", c.N * 4),
              tokenLoss: createBuffer(gpu, "tokenLoss", c.N * 4),
              loss: createBuffer(gpu, "loss", 8),
              dh: createBuffer(gpu, "dh", c.N * c.dim * 4),
            };
            lmHeadCrossEntropy(rec, io, scratchFor(gpu, c.N, c.chunk), s, { gradScale });
            checks.push(async () => {
              const what = `${tableType} ${c.name}`;
              const logits = lmHeadLogits(d.h, d.table, c.N, c.dim, d.V, c.softcap);
              const ref = crossEntropyFwd(logits, d.targets, c.N, d.V);
              const refDh = lmHeadCeBwd(d.h, d.table, d.targets, c.N, c.dim, d.V, c.softcap, gradScale).dh;
              const [lse, tokenLoss, loss, dh] = await Promise.all([
                readF32(gpu, io.lse, 0, c.N),
                readF32(gpu, io.tokenLoss, 0, c.N),
                readF32(gpu, io.loss, 0, 2),
                readF32(gpu, io.dh, 0, c.N * c.dim),
              ]);
              closeToScale(lse, ref.lse, `${what} lse`);
              closeToScale(tokenLoss, ref.tokenLoss, `${what} tokenLoss`, maxAbs(ref.lse));
              const sum = ref.tokenLoss.reduce((a, b) => a + b, 0);
              assertEquals(loss[1], ref.count, `${what} count`);
              assert(Math.abs(loss[0] - sum) <= TOL * Math.abs(sum), `${what} loss sum ${loss[0]} vs ${sum}`);
              closeToScale(dh, refDh, `${what} dh`);
              for (const n of c.ignored ?? []) {
                for (let k = 0; k < c.dim; k++) {
                  assertEquals(dh[n * c.dim + k], 0, `${what} ignored row ${n} dh`);
                }
              }
            });
          });
          rec.submit();
          for (const check of checks) await check();
        },
      );
    },
  );
}

testReductions("lm_head CE with every row ignored: loss 0, count 0, dh 0, no NaN", async () => {
  const gpu = await testGpu();
  const c: Case = {
    name: "all ignored",
    N: 9,
    dim: 40,
    pieces: [100, 77],
    chunk: 64,
    softcap: FINAL_SOFTCAP,
  };
  const d = makeData(c, 7, "f32");
  d.targets.fill(IGNORE_INDEX);
  const io = {
    h: upload(gpu, "h", d.h),
    table: uploadTable(gpu, d.table, c.dim, c.pieces, "f32"),
    targets: upload(gpu, "targets", d.targets),
    lse: createBuffer(gpu, "lse", c.N * 4),
    tokenLoss: upload(gpu, "tokenLoss", new Float32Array(c.N).fill(NaN)),
    loss: upload(gpu, "loss", new Float32Array([NaN, NaN])),
    labelLogprob: upload(gpu, "lp", new Float32Array(c.N).fill(NaN)),
    dh: upload(gpu, "dh", new Float32Array(c.N * c.dim).fill(NaN)),
  };
  const rec = new Recorder(gpu);
  // gradScale = 1/count would be Infinity; the trainer skips the division when count is 0, use 1.
  lmHeadCrossEntropy(rec, io, scratchFor(gpu, c.N, c.chunk), {
    N: c.N,
    dim: c.dim,
    V: d.V,
    tableType: "f32",
    softcap: 30,
  }, {
    gradScale: 1,
  });
  rec.submit();
  assertEquals(Array.from(await readF32(gpu, io.loss, 0, 2)), [0, 0]);
  assertEquals(Array.from(await readF32(gpu, io.tokenLoss, 0, c.N)), new Array(c.N).fill(0));
  assertEquals(Array.from(await readF32(gpu, io.labelLogprob, 0, c.N)), new Array(c.N).fill(0));
  assert((await readF32(gpu, io.dh)).every((x) => x === 0), "dh must be exactly 0");
  const ref = crossEntropyFwd(lmHeadLogits(d.h, d.table, c.N, c.dim, d.V, 30), d.targets, c.N, d.V);
  closeToScale(await readF32(gpu, io.lse, 0, c.N), ref.lse, "lse of ignored rows");
});

testReductions(
  "lm_head CE full logits, label log-probs, accumulated loss and dh (V = 512, tiny-model shape)",
  async () => {
    const gpu = await testGpu();
    const c: Case = {
      name: "tiny",
      N: 48,
      dim: 64,
      pieces: [512],
      chunk: 192,
      softcap: FINAL_SOFTCAP,
      ignored: [0, 1, 2, 3, 23, 47],
      confident: [9],
    };
    const d1 = makeData(c, 11, "f32");
    const d2 = makeData(c, 12, "f32");
    d2.table = d1.table; // same head, two micro-batches
    const s: LmHeadCeShape = { N: c.N, dim: c.dim, V: d1.V, tableType: "f32", softcap: c.softcap };
    const table = uploadTable(gpu, d1.table, c.dim, c.pieces, "f32");
    const scratch = scratchFor(gpu, c.N, c.chunk);
    const loss = upload(gpu, "loss", new Float32Array([0, 0]));
    const dh = createBuffer(gpu, "dh", c.N * c.dim * 4);
    const mk = (d: Data) => ({
      h: upload(gpu, "h", d.h),
      table,
      targets: upload(gpu, "targets", d.targets),
      lse: createBuffer(gpu, "lse", c.N * 4),
      tokenLoss: createBuffer(gpu, "tokenLoss", c.N * 4),
      labelLogprob: createBuffer(gpu, "lp", c.N * 4),
      logits: createBuffer(gpu, "logits", c.N * d.V * 4),
      loss,
      dh,
    });
    const io1 = mk(d1);
    const io2 = mk(d2);
    const rec = new Recorder(gpu);
    // Two micro-batches of one accumulation window (the dh of both rows sets summed, as the trainer would
    // only do for shared rows; here it checks accumulateDh).
    lmHeadCrossEntropy(rec, io1, scratch, s, { gradScale: 0.25, accumulateLoss: true });
    lmHeadCrossEntropy(rec, io2, scratch, s, { gradScale: 0.5, accumulateLoss: true, accumulateDh: true });
    rec.submit();
    let sum = 0;
    let count = 0;
    const wantDh = new Float64Array(c.N * c.dim);
    for (const [d, io, scale] of [[d1, io1, 0.25], [d2, io2, 0.5]] as const) {
      const logits = lmHeadLogits(d.h, d.table, c.N, c.dim, d.V, c.softcap);
      const ref = crossEntropyFwd(logits, d.targets, c.N, d.V);
      closeToScale(await readF32(gpu, io.logits), logits, "full logits");
      const lp = ref.tokenLoss.map((x) => -x);
      closeToScale(await readF32(gpu, io.labelLogprob, 0, c.N), lp, "label log-prob", maxAbs(ref.lse));
      sum += ref.tokenLoss.reduce((a, b) => a + b, 0);
      count += ref.count;
      const g = lmHeadCeBwd(d.h, d.table, d.targets, c.N, c.dim, d.V, c.softcap, scale).dh;
      for (let i = 0; i < g.length; i++) wantDh[i] += g[i];
    }
    const got = await readF32(gpu, loss, 0, 2);
    assertEquals(got[1], count);
    assert(Math.abs(got[0] - sum) <= TOL * sum, `accumulated loss ${got[0]} vs ${sum}`);
    closeToScale(await readF32(gpu, dh), wantDh, "accumulated dh");
  },
);

testReductions("lm_head CE at gemma-2-2b width (dim 2304), f16 table over 3 pieces", async () => {
  const gpu = await testGpu();
  await f16Only(gpu, async () => {
    const c: Case = {
      name: "dim 2304",
      N: 5,
      dim: 2304,
      pieces: [1001, 999, 1003],
      chunk: 1024,
      softcap: FINAL_SOFTCAP,
      ignored: [1],
      confident: [3],
    };
    const d = makeData(c, 21, "f16");
    const s: LmHeadCeShape = { N: c.N, dim: c.dim, V: d.V, tableType: "f16", softcap: c.softcap };
    const io = {
      h: upload(gpu, "h", d.h),
      table: uploadTable(gpu, d.table, c.dim, c.pieces, "f16"),
      targets: upload(gpu, "targets", d.targets),
      lse: createBuffer(gpu, "lse", c.N * 4),
      tokenLoss: createBuffer(gpu, "tokenLoss", c.N * 4),
      loss: createBuffer(gpu, "loss", 8),
      dh: createBuffer(gpu, "dh", c.N * c.dim * 4),
    };
    const rec = new Recorder(gpu);
    lmHeadCrossEntropy(rec, io, scratchFor(gpu, c.N, c.chunk), s, { gradScale: 1 / 4 });
    rec.submit();
    const logits = lmHeadLogits(d.h, d.table, c.N, c.dim, d.V, c.softcap);
    const ref = crossEntropyFwd(logits, d.targets, c.N, d.V);
    closeToScale(await readF32(gpu, io.lse, 0, c.N), ref.lse, "lse");
    closeToScale(await readF32(gpu, io.tokenLoss, 0, c.N), ref.tokenLoss, "tokenLoss", maxAbs(ref.lse));
    const want = lmHeadCeBwd(d.h, d.table, d.targets, c.N, c.dim, d.V, c.softcap, 1 / 4).dh;
    closeToScale(await readF32(gpu, io.dh), want, "dh");
  });
});

testReductions("lm_head CE forward matches transformers' goldens (tiny Gemma-2, f64 run)", async () => {
  const gpu = await testGpu();
  const dir = new URL("../../fixtures/golden/", import.meta.url);
  const fwd = (await readSafetensorsFile(new URL("forward_f64.safetensors", dir).pathname)).tensors;
  const model = (await readSafetensorsFile(new URL("tiny_gemma2/model.safetensors", dir).pathname)).tensors;
  const [B, T, dim] = fwd.get("hidden_states.4")!.shape;
  const V = model.get("model.embed_tokens.weight")!.shape[0];
  const N = B * T;
  const h = new Float32Array(toFloat64(fwd.get("hidden_states.4")!));
  const table = new Float32Array(toFloat64(model.get("model.embed_tokens.weight")!));
  const labels = toFloat64(fwd.get("labels")!);
  // The caller's shift: row (b, t) is scored against labels[b, t+1]; the last position of each row has none.
  const targets = new Int32Array(N).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) targets[b * T + t] = labels[b * T + t + 1];
  const io = {
    h: upload(gpu, "h", h),
    table: [{ buffer: upload(gpu, "E", table), rowStart: 0, rows: V }],
    targets: upload(gpu, "targets", targets),
    lse: createBuffer(gpu, "lse", N * 4),
    tokenLoss: createBuffer(gpu, "tokenLoss", N * 4),
    loss: createBuffer(gpu, "loss", 8),
    labelLogprob: createBuffer(gpu, "lp", N * 4),
    logits: createBuffer(gpu, "logits", N * V * 4),
  };
  const rec = new Recorder(gpu);
  lmHeadCeForward(rec, io, scratchFor(gpu, N, 128), { N, dim, V, tableType: "f32", softcap: FINAL_SOFTCAP });
  rec.submit();
  // Golden README tolerances for a float32 implementation vs the f64 run: logits atol 3e-4, loss rtol 1e-6.
  assertClose(await readF32(gpu, io.logits), toFloat64(fwd.get("logits")!), { abs: 3e-4 }, "golden logits");
  const loss = await readF32(gpu, io.loss, 0, 2);
  const want = toFloat64(fwd.get("loss")!)[0];
  const mask = toFloat64(fwd.get("label_mask")!);
  assertEquals(loss[1], mask.reduce((a, b) => a + b, 0), "counted tokens");
  const mean = loss[0] / loss[1];
  assert(Math.abs(mean - want) <= 1e-6 * want, `golden loss ${mean} vs ${want}`);
  const lp = await readF32(gpu, io.labelLogprob, 0, N);
  const gotLp = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) gotLp[b * (T - 1) + t] = lp[b * T + t];
  assertClose(gotLp, toFloat64(fwd.get("label_logprobs")!), { abs: 1e-4 }, "golden label_logprobs");
});

testReductions("lm_head CE validates the table split; scratch sizing for gemma-2-2b", async () => {
  const gpu = await testGpu();
  const E = upload(gpu, "E", new Float32Array(20 * 8));
  const base = {
    h: upload(gpu, "h", new Float32Array(3 * 8)),
    targets: upload(gpu, "t", new Int32Array(3)),
    lse: createBuffer(gpu, "lse", 12),
    tokenLoss: createBuffer(gpu, "tl", 12),
    loss: createBuffer(gpu, "loss", 8),
  };
  const s: LmHeadCeShape = { N: 3, dim: 8, V: 20, tableType: "f32", softcap: 30 };
  const scratch = scratchFor(gpu, 3, 64);
  const rec = new Recorder(gpu);
  const gap = [{ buffer: E, rowStart: 0, rows: 10 }, { buffer: E, rowStart: 11, rows: 9 }];
  assertThrows(() => lmHeadCeForward(rec, { ...base, table: gap }, scratch, s), RangeError, "contiguous");
  const short = [{ buffer: E, rowStart: 0, rows: 19 }];
  assertThrows(
    () => lmHeadCeForward(rec, { ...base, table: short }, scratch, s),
    RangeError,
    "cover 19 rows",
  );
  const small = [{ buffer: upload(gpu, "e", new Float32Array(8)), rowStart: 0, rows: 20 }];
  assertThrows(() => lmHeadCeForward(rec, { ...base, table: small }, scratch, s), RangeError, "holds");
  assertThrows(() =>
    lmHeadCeForward(
      rec,
      { ...base, table: [{ buffer: E, rowStart: 0, rows: 20 }] },
      scratchFor(gpu, 2, 64),
      s,
    )
  );
  rec.submit();

  // gemma-2-2b: 4 × 512 rows, 128 MiB bindings → 8192-wide chunks, 64 MiB of chunk logits.
  const MiB = 1 << 20;
  assertEquals(ceChunkFor(2048, 128 * MiB), 8192);
  assertEquals(ceChunkFor(8192, 128 * MiB), 4096);
  assertEquals(ceChunkFor(3000, 128 * MiB), 8192);
  assertEquals(ceChunkFor(5000, 128 * MiB), 6656);
  assertEquals(crossEntropyScratchBytes(2048, 8192), 64 * MiB + 3 * 2048 * 4);
  const pool = new BufferPool(null);
  acquireCrossEntropyScratch(pool, 2048, 8192);
  assert(pool.stats().peakBytes >= crossEntropyScratchBytes(2048, 8192), "pool counts the scratch");
});
