import {
  rmsnorm,
  rmsnormBackward,
  rmsnormWeightGrad,
  rmsnormWeightGradScratchBytes,
} from "../../../src/model/ops/rmsnorm.ts";
import { rmsnormBwd, rmsnormFwd } from "../../../src/model/ref/rmsnorm.ts";
import { createBuffer, upload } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readBuffer, readF32 } from "../../../src/gpu/readback.ts";
import { fromF16Array } from "../../../src/util/half.ts";
import { assertClose, f16Only, randomArray, rng, testGpu, testReductions } from "../../helpers/gpu.ts";

const EPS = 1e-6;

// Ragged [rows, dim]: 1, primes, not multiples of any workgroup size (32..256), Gemma-2's 2304 and 9216.
const SHAPES: [number, number][] = [
  [1, 1],
  [3, 7],
  [1, 2304],
  [17, 64],
  [5, 257],
  [13, 2304],
  [2, 4099],
  [129, 13],
  [64, 31],
  [7, 1000],
  [11, 255],
  [300, 24],
  [2, 9216],
  [131, 3],
];

/** Random Gemma-like norm weights (the model multiplies by 1 + w). */
function weights(dim: number, rand: () => number): Float32Array<ArrayBuffer> {
  return randomArray(dim, rand, 0.8);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** max over elements of rstd·(|g| + |xhat·mean(g·xhat)|): the size of the terms dx is the difference of. */
function rmsnormDxTermScale(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  rstd: ArrayLike<number>,
  rows: number,
  dim: number,
): number {
  let s = 0;
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < dim; j++) m += dy[r * dim + j] * (1 + w[j]) * x[r * dim + j] * rstd[r];
    m /= dim;
    for (let j = 0; j < dim; j++) {
      const g = Math.abs(dy[r * dim + j] * (1 + w[j]));
      s = Math.max(s, rstd[r] * (g + Math.abs(x[r * dim + j] * rstd[r] * m)));
    }
  }
  return s;
}

/** Fails when any value is NaN or ±Inf. */
function assertFinite(a: ArrayLike<number>, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new Error(`${what}: non-finite value ${a[i]} at ${i}`);
  }
}

testReductions(
  `rmsnorm forward (plain and fused residual) vs float64 reference on ${SHAPES.length} shapes`,
  async () => {
    const gpu = await testGpu();
    const rand = rng(11);
    const rec = new Recorder(gpu);
    const checks: (() => Promise<void>)[] = [];
    for (const [rows, dim] of SHAPES) {
      for (const residual of [false, true]) {
        const x = randomArray(rows * dim, rand, 3);
        const w = weights(dim, rand);
        const y0 = randomArray(rows * dim, rand, 2);
        const xb = upload(gpu, "x", x);
        const wb = upload(gpu, "w", w);
        const yb = upload(gpu, "y", residual ? y0 : new Float32Array(rows * dim).fill(NaN));
        const rb = createBuffer(gpu, "rstd", rows * 4);
        rmsnorm(rec, xb, wb, yb, rb, { rows, dim, eps: EPS, residual });
        checks.push(async () => {
          const want = rmsnormFwd(x, w, rows, dim, EPS);
          if (residual) { for (let i = 0; i < want.y.length; i++) want.y[i] += y0[i]; }
          const what = `${residual ? "residual " : ""}rows=${rows} dim=${dim}`;
          assertClose(await readF32(gpu, yb, 0, rows * dim), want.y, { rel: 1e-5 }, `y ${what}`);
          // rstd per row, relative to itself.
          const rstd = await readF32(gpu, rb, 0, rows);
          for (let r = 0; r < rows; r++) {
            if (Math.abs(rstd[r] - want.rstd[r]) > 1e-6 * want.rstd[r]) {
              throw new Error(`rstd ${what} row ${r}: got ${rstd[r]}, want ${want.rstd[r]}`);
            }
          }
        });
      }
    }
    rec.submit();
    for (const c of checks) await c();
  },
);

testReductions(
  "rmsnorm forward with an f16 output vs float64 reference, saturating instead of Inf",
  async () => {
    const gpu = await testGpu();
    await f16Only(gpu, async () => {
      const rand = rng(12);
      const rec = new Recorder(gpu);
      const checks: (() => Promise<void>)[] = [];
      for (const [rows, dim] of SHAPES) {
        const x = randomArray(rows * dim, rand, 1000);
        const w = weights(dim, rand);
        const yb = createBuffer(gpu, "y16", rows * dim * 2);
        rmsnorm(rec, upload(gpu, "x", x), upload(gpu, "w", w), yb, createBuffer(gpu, "rstd", rows * 4), {
          rows,
          dim,
          eps: EPS,
          yType: "f16",
        });
        checks.push(async () => {
          const got = fromF16Array(new Uint16Array(await readBuffer(gpu, yb, 0, rows * dim * 2)));
          const want = rmsnormFwd(x, w, rows, dim, EPS).y;
          // Half rounding: 2^-11 relative to each value, so ≤ 2^-11 of the tensor's max.
          assertClose(got, want, { rel: 5e-4 }, `f16 y rows=${rows} dim=${dim}`);
        });
      }
      // (1 + w) = 3e4 on a row of equal values: y = 3e4 · 1 fits, 3e5 would overflow half and must saturate.
      const dim = 37;
      const x = new Float32Array(dim).fill(2500);
      const w = new Float32Array(dim).map((_, j) => (j % 2 ? 3e4 : 3e5) - 1);
      const yb = createBuffer(gpu, "y16", dim * 2);
      rmsnorm(rec, upload(gpu, "x", x), upload(gpu, "w", w), yb, createBuffer(gpu, "rstd", 4), {
        rows: 1,
        dim,
        eps: EPS,
        yType: "f16",
      });
      rec.submit();
      for (const c of checks) await c();
      const got = fromF16Array(new Uint16Array(await readBuffer(gpu, yb, 0, dim * 2)));
      for (let j = 0; j < dim; j++) {
        const want = j % 2 ? 3e4 : 65504;
        if (Math.abs(got[j] - want) > 16) throw new Error(`saturation at ${j}: got ${got[j]}, want ${want}`);
      }
    });
  },
);

testReductions(
  `rmsnorm backward dx (plain and accumulating) and dw vs float64 reference on ${SHAPES.length} shapes`,
  async () => {
    const gpu = await testGpu();
    const rand = rng(13);
    const rec = new Recorder(gpu);
    const checks: (() => Promise<void>)[] = [];
    for (const [rows, dim] of SHAPES) {
      const accumulate = (rows + dim) % 2 === 1;
      const x = randomArray(rows * dim, rand, 2);
      const w = weights(dim, rand);
      const dy = randomArray(rows * dim, rand, 0.5);
      const dx0 = randomArray(rows * dim, rand, 1);
      const dw0 = randomArray(dim, rand, 1);
      const xb = upload(gpu, "x", x);
      const wb = upload(gpu, "w", w);
      const dyb = upload(gpu, "dy", dy);
      const rb = createBuffer(gpu, "rstd", rows * 4);
      const dxb = upload(gpu, "dx", accumulate ? dx0 : new Float32Array(rows * dim).fill(NaN));
      const dwb = upload(gpu, "dw", accumulate ? dw0 : new Float32Array(dim).fill(NaN));
      const scratch = createBuffer(gpu, "scratch", rmsnormWeightGradScratchBytes(rows, dim));
      // The backward reads the forward's own rstd, as the engine does.
      rmsnorm(rec, xb, wb, createBuffer(gpu, "y", rows * dim * 4), rb, { rows, dim, eps: EPS });
      rmsnormBackward(rec, dyb, xb, wb, rb, dxb, { rows, dim, accumulate });
      rmsnormWeightGrad(rec, dyb, xb, rb, dwb, scratch, { rows, dim, accumulate });
      checks.push(async () => {
        const { rstd } = rmsnormFwd(x, w, rows, dim, EPS);
        const want = rmsnormBwd(dy, x, w, rstd, rows, dim);
        if (accumulate) {
          for (let i = 0; i < want.dx.length; i++) want.dx[i] += dx0[i];
          for (let i = 0; i < dim; i++) want.dw[i] += dw0[i];
        }
        const what = `${accumulate ? "accumulate " : ""}rows=${rows} dim=${dim}`;
        // dx = rstd·(g − xhat·mean(g·xhat)) is a difference: judge it against the larger of its own max and
        // its terms' max (for dim = 1 it is pure cancellation: xhat = ±1 and the true dx is ~eps/|x|³).
        const dx = await readF32(gpu, dxb, 0, rows * dim);
        const base = accumulate ? dx.map((v, i) => v - dx0[i]) : dx;
        const ref = accumulate ? want.dx.map((v, i) => v - dx0[i]) : want.dx;
        const terms = rmsnormDxTermScale(dy, x, w, rstd, rows, dim);
        assertClose(dx, want.dx, { abs: 1e-5 * Math.max(terms, maxAbs(want.dx)) }, `dx ${what}`);
        assertClose(base, ref, { abs: 1e-5 * Math.max(terms, maxAbs(ref)) }, `dx increment ${what}`);
        // dw sums `rows` mixed-sign terms: judge it against the sum of their magnitudes.
        const scale = new Float64Array(dim);
        for (let r = 0; r < rows; r++) {
          for (let j = 0; j < dim; j++) scale[j] += Math.abs(dy[r * dim + j] * x[r * dim + j] * rstd[r]);
        }
        const dw = await readF32(gpu, dwb, 0, dim);
        for (let j = 0; j < dim; j++) {
          const tol = 1e-5 * (scale[j] + (accumulate ? Math.abs(dw0[j]) : 0)) + 1e-7;
          if (!(Math.abs(dw[j] - want.dw[j]) <= tol)) {
            throw new Error(`dw ${what} col ${j}: got ${dw[j]}, want ${want.dw[j]}`);
          }
        }
      });
    }
    rec.submit();
    for (const c of checks) await c();
  },
);

testReductions(
  "rmsnorm forward and backward on Gemma-2 residual-stream magnitudes stay finite and accurate",
  async () => {
    const gpu = await testGpu();
    const rand = rng(14);
    const [rows, dim] = [9, 2304];
    // Residual values in the thousands with a few outlier features near 6e4 (Gemma-2's massive activations),
    // one all-zero row (rstd = 1/sqrt(eps)), and norm weights up to (1 + w) ≈ 20.
    const x = randomArray(rows * dim, rand, 3000);
    for (let r = 0; r < rows; r++) for (const j of [7, 1000, 2303]) x[r * dim + j] = (r % 2 ? -1 : 1) * 6e4;
    x.fill(0, 4 * dim, 5 * dim);
    const w = randomArray(dim, rand, 20);
    const dy = randomArray(rows * dim, rand, 1e-3);
    const h0 = randomArray(rows * dim, rand, 5000);
    const [xb, wb, dyb] = [upload(gpu, "x", x), upload(gpu, "w", w), upload(gpu, "dy", dy)];
    const yb = createBuffer(gpu, "y", rows * dim * 4);
    const hb = upload(gpu, "h", h0);
    const rb = createBuffer(gpu, "rstd", rows * 4);
    const dxb = createBuffer(gpu, "dx", rows * dim * 4);
    const rec = new Recorder(gpu);
    rmsnorm(rec, xb, wb, yb, rb, { rows, dim, eps: EPS });
    rmsnorm(rec, xb, wb, hb, createBuffer(gpu, "rstd2", rows * 4), { rows, dim, eps: EPS, residual: true });
    rmsnormBackward(rec, dyb, xb, wb, rb, dxb, { rows, dim });
    rec.submit();
    const want = rmsnormFwd(x, w, rows, dim, EPS);
    const y = await readF32(gpu, yb, 0, rows * dim);
    const h = await readF32(gpu, hb, 0, rows * dim);
    const dx = await readF32(gpu, dxb, 0, rows * dim);
    assertFinite(y, "y");
    assertFinite(h, "h");
    assertFinite(dx, "dx");
    assertClose(y, want.y, { rel: 1e-5 }, "y at residual magnitudes");
    assertClose(h, want.y.map((v, i) => v + h0[i]), { rel: 1e-5 }, "h += norm(x) at residual magnitudes");
    assertClose(
      dx,
      rmsnormBwd(dy, x, w, want.rstd, rows, dim).dx,
      { rel: 1e-5 },
      "dx at residual magnitudes",
    );
  },
);

testReductions("rmsnorm over more rows than one grid dimension allows (folded grid)", async () => {
  const gpu = await testGpu();
  const rows = gpu.limits.maxComputeWorkgroupsPerDimension + 5;
  const dim = 3;
  const rand = rng(15);
  const x = randomArray(rows * dim, rand, 2);
  const w = weights(dim, rand);
  const dy = randomArray(rows * dim, rand, 1);
  const xb = upload(gpu, "x", x);
  const wb = upload(gpu, "w", w);
  const yb = createBuffer(gpu, "y", rows * dim * 4);
  const rb = createBuffer(gpu, "rstd", rows * 4);
  const dxb = createBuffer(gpu, "dx", rows * dim * 4);
  const rec = new Recorder(gpu);
  rmsnorm(rec, xb, wb, yb, rb, { rows, dim, eps: EPS });
  rmsnormBackward(rec, upload(gpu, "dy", dy), xb, wb, rb, dxb, { rows, dim });
  rec.submit();
  const want = rmsnormFwd(x, w, rows, dim, EPS);
  assertClose(await readF32(gpu, yb, 0, rows * dim), want.y, { rel: 1e-5 }, "folded y");
  assertClose(
    await readF32(gpu, dxb, 0, rows * dim),
    rmsnormBwd(dy, x, w, want.rstd, rows, dim).dx,
    { rel: 1e-5 },
    "folded dx",
  );
});
