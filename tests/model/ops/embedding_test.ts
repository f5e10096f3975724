import {
  embedding,
  type EmbeddingChunk,
  embeddingChunkRows,
  type TableFormat,
} from "../../../src/model/ops/embedding.ts";
import { embeddingFwd } from "../../../src/model/ref/embedding.ts";
import { createBuffer, upload } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readF32 } from "../../../src/gpu/readback.ts";
import { bf16BitsToF32, f32ToBf16Bits, fromF16Array, toF16Array } from "../../../src/util/half.ts";
import type { Gpu } from "../../../src/gpu/device.ts";
import { assertClose, randomArray, rng, testGpu } from "../../helpers/gpu.ts";

// [tokens, vocab, dim]: ragged dims (1, odd, primes, around the 32..256 workgroup sizes), gemma-2-2b's 2304 and 48
// as its scale, the tiny model's 64 and 8.
const SHAPES: [number, number, number][] = [
  [1, 3, 1],
  [7, 11, 3],
  [33, 101, 64],
  [5, 37, 2304],
  [129, 53, 13],
  [17, 29, 257],
  [2, 9, 1000],
  [64, 301, 31],
  [300, 7, 5],
  [11, 19, 2305],
  [40, 1001, 24],
];

/** The table as stored (encoded words) and as the kernel should read it (decoded f32). */
function makeTable(
  n: number,
  rand: () => number,
  format: TableFormat,
): { stored: Uint16Array | Float32Array; values: Float32Array } {
  const v = randomArray(n, rand, 0.1);
  if (format === "f32") return { stored: v, values: v };
  if (format === "f16") {
    const bits = toF16Array(v);
    return { stored: bits, values: fromF16Array(bits) };
  }
  const bits = new Uint16Array(n).map((_, i) => f32ToBf16Bits(v[i]));
  return { stored: bits, values: new Float32Array(n).map((_, i) => bf16BitsToF32(bits[i])) };
}

/** Uploads rows [rowStart, rowStart + rows) of the table as one chunk buffer. */
function chunkOf(
  gpu: Gpu,
  stored: Uint16Array | Float32Array,
  dim: number,
  rowStart: number,
  rows: number,
): EmbeddingChunk {
  return {
    buffer: upload(gpu, "embed-chunk", stored.slice(rowStart * dim, (rowStart + rows) * dim)),
    rowStart,
    rows,
  };
}

/** Splits vocab rows into `parts` chunks of odd sizes where possible. */
function oddSplit(vocab: number, parts: number): { rowStart: number; rows: number }[] {
  const out: { rowStart: number; rows: number }[] = [];
  let start = 0;
  for (let p = 0; p < parts && start < vocab; p++) {
    let rows = p === parts - 1 ? vocab - start : Math.max(1, Math.floor(vocab / parts));
    if (rows % 2 === 0 && p < parts - 1 && rows > 1) rows -= 1;
    out.push({ rowStart: start, rows });
    start += rows;
  }
  if (start < vocab) out[out.length - 1].rows += vocab - start;
  return out;
}

for (const format of ["f32", "f16", "bf16"] as const) {
  Deno.test(`embedding ${format} table split over >= 3 chunks vs float64 reference on ${SHAPES.length} shapes`, async () => {
    const gpu = await testGpu();
    const rand = rng(41 + format.length);
    const rec = new Recorder(gpu);
    const checks: (() => Promise<void>)[] = [];
    for (const [tokens, vocab, dim] of SHAPES) {
      const { stored, values } = makeTable(vocab * dim, rand, format);
      const ranges = oddSplit(vocab, Math.min(vocab, 3 + (dim % 3)));
      if (vocab >= 3 && ranges.length < 3) throw new Error("split into fewer than 3 chunks");
      // Ids cover every chunk boundary, then random ones.
      const ids = new Uint32Array(tokens).map(() => Math.floor(rand() * vocab));
      const edges = ranges.flatMap((r) => [r.rowStart, r.rowStart + r.rows - 1]);
      for (let i = 0; i < Math.min(tokens, edges.length); i++) ids[i] = edges[i];
      // Chunks are dispatched in shuffled order: each fills only its own tokens.
      const chunks = ranges.map((r) => chunkOf(gpu, stored, dim, r.rowStart, r.rows)).reverse();
      const out = createBuffer(gpu, "x", tokens * dim * 4);
      const scale = Math.sqrt(dim);
      embedding(rec, upload(gpu, "ids", ids), chunks, out, { tokens, dim, scale, format });
      checks.push(async () => {
        const want = embeddingFwd(ids, values, dim, Math.fround(scale));
        const what = `${format} tokens=${tokens} vocab=${vocab} dim=${dim} chunks=${chunks.length}`;
        // One f32 product per element: exact to f32 rounding.
        assertClose(await readF32(gpu, out, 0, tokens * dim), want, { rel: 1e-6 }, what);
      });
    }
    rec.submit();
    for (const c of checks) await c();
  });
}

Deno.test("embedding leaves tokens outside the given chunks untouched", async () => {
  const gpu = await testGpu();
  const rand = rng(45);
  const [vocab, dim] = [20, 6];
  const table = randomArray(vocab * dim, rand);
  const ids = new Uint32Array([0, 19, 7, 8, 13, 2]);
  const out = upload(gpu, "x", new Float32Array(ids.length * dim).fill(-7));
  const rec = new Recorder(gpu);
  // Only rows [7, 14) are present.
  embedding(rec, upload(gpu, "ids", ids), [chunkOf(gpu, table, dim, 7, 7)], out, {
    tokens: ids.length,
    dim,
    scale: 2,
    format: "f32",
  });
  rec.submit();
  const got = await readF32(gpu, out, 0, ids.length * dim);
  const full = embeddingFwd(ids, table, dim, 2);
  for (let n = 0; n < ids.length; n++) {
    for (let j = 0; j < dim; j++) {
      const want = ids[n] >= 7 && ids[n] < 14 ? full[n * dim + j] : -7;
      if (Math.abs(got[n * dim + j] - want) > 1e-6) {
        throw new Error(`token ${n} col ${j}: ${got[n * dim + j]} != ${want}`);
      }
    }
  }
});

Deno.test("embeddingChunkRows keeps gemma-2-2b's 256000 x 2304 table within the binding limit", () => {
  for (const format of ["f32", "f16", "bf16"] as const) {
    for (const limit of [128 * 2 ** 20, 2 ** 30, 2 ** 31 - 4]) {
      const ranges = embeddingChunkRows(256000, 2304, format, limit);
      let next = 0;
      for (const r of ranges) {
        if (r.rowStart !== next || r.rows < 1) throw new Error(`gap or empty chunk at ${r.rowStart}`);
        const bytes = Math.ceil((r.rows * 2304 * (format === "f32" ? 4 : 2)) / 16) * 16;
        if (bytes > limit) throw new Error(`${format}: chunk of ${bytes} bytes > ${limit}`);
        next += r.rows;
      }
      if (next !== 256000) throw new Error(`chunks cover ${next} rows`);
    }
  }
  // 128 MiB and f16: 1.18 GB in 9 chunks.
  const n = embeddingChunkRows(256000, 2304, "f16", 128 * 2 ** 20).length;
  if (n !== 9) throw new Error(`expected 9 chunks, got ${n}`);
});

Deno.test("embedding with chunks from embeddingChunkRows and more tokens than one grid dimension allows", async () => {
  const gpu = await testGpu();
  const rand = rng(46);
  const [vocab, dim] = [1001, 3];
  const tokens = gpu.limits.maxComputeWorkgroupsPerDimension + 9;
  const { stored, values } = makeTable(vocab * dim, rand, "f16");
  // A binding limit small enough to force several chunks (odd row counts: 341 rows of 6 bytes).
  const ranges = embeddingChunkRows(vocab, dim, "f16", 2062);
  if (ranges.length < 3) throw new Error(`only ${ranges.length} chunks`);
  const ids = new Uint32Array(tokens).map(() => Math.floor(rand() * vocab));
  const out = createBuffer(gpu, "x", tokens * dim * 4);
  const rec = new Recorder(gpu);
  embedding(
    rec,
    upload(gpu, "ids", ids),
    ranges.map((r) => chunkOf(gpu, stored, dim, r.rowStart, r.rows)),
    out,
    {
      tokens,
      dim,
      scale: 48,
      format: "f16",
    },
  );
  rec.submit();
  assertClose(
    await readF32(gpu, out, 0, tokens * dim),
    embeddingFwd(ids, values, dim, 48),
    { rel: 1e-6 },
    "folded",
  );
});
