import { reduceRows } from "../../src/gpu/ops/reduce.ts";
import { upload } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { assertClose, randomArray, rng, testGpu, testReductions } from "../helpers/gpu.ts";

function reduceRef(x: ArrayLike<number>, rows: number, cols: number, sq: boolean): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += sq ? x[r * cols + c] ** 2 : x[r * cols + c];
    out[r] = s;
  }
  return out;
}

for (const mode of ["sum", "sumsq"] as const) {
  testReductions(`reduce_rows ${mode} vs float64 reference on ragged shapes`, async () => {
    const gpu = await testGpu();
    const rand = rng(mode === "sum" ? 5 : 6);
    for (
      const [rows, cols] of [[1, 1], [1, 257], [3, 255], [17, 1000], [64, 64], [5, 2304], [129, 3], [2, 9217]]
    ) {
      const x = randomArray(rows * cols, rand);
      const xb = upload(gpu, "x", x);
      const ob = upload(gpu, "out", new Float32Array(rows));
      const rec = new Recorder(gpu);
      reduceRows(rec, xb, ob, rows, cols, mode);
      rec.submit();
      const got = await readF32(gpu, ob, 0, rows);
      // Sums of mixed-sign terms: judge against the scale of the summed magnitudes.
      const scale = reduceRef(x.map(Math.abs), rows, cols, mode === "sumsq");
      const want = reduceRef(x, rows, cols, mode === "sumsq");
      for (let r = 0; r < rows; r++) {
        if (Math.abs(got[r] - want[r]) > 1e-6 * scale[r] + 1e-7) {
          throw new Error(`${mode} ${rows}x${cols} row ${r}: got ${got[r]}, want ${want[r]}`);
        }
      }
      assertClose(got, want, { abs: 1e-3 * Math.max(1, ...scale) }, `${mode} ${rows}x${cols}`);
    }
  });
}

testReductions("reduce_rows over more rows than one grid dimension allows", async () => {
  const gpu = await testGpu();
  const rows = gpu.limits.maxComputeWorkgroupsPerDimension + 3;
  const cols = 2;
  const x = new Float32Array(rows * cols).map((_, i) => (i % 7) - 3);
  const xb = upload(gpu, "x", x);
  const ob = upload(gpu, "out", new Float32Array(rows));
  const rec = new Recorder(gpu);
  reduceRows(rec, xb, ob, rows, cols, "sum");
  rec.submit();
  const got = await readF32(gpu, ob, 0, rows);
  assertClose(got, reduceRef(x, rows, cols, false), { abs: 0 }, "folded grid");
});
