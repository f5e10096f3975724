import { KERNEL_VARIANTS, matmul, matmulPath, type MatmulShape } from "../../src/gpu/ops/matmul.ts";
import { matmulRef } from "../../src/gpu/ops/matmul_ref.ts";
import { upload } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { fromF16Array, toF16Array } from "../../src/util/half.ts";
import {
  assertClose,
  f16Only,
  randomArray,
  rng,
  testGpu,
  testReductions,
  testReductionsIf,
} from "../helpers/gpu.ts";

// Ragged shapes: not multiples of the 64×64×16 tile, 1, primes, and a few tile multiples.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 3],
  [5, 1, 9],
  [17, 13, 11],
  [31, 67, 29],
  [64, 64, 16],
  [65, 63, 17],
  [2, 130, 64],
  [97, 101, 103],
  [128, 5, 256],
  [3, 250, 100],
  [70, 33, 129],
  [13, 200, 1],
  [127, 129, 31],
  [61, 2, 300],
  [33, 97, 48],
  [100, 100, 100],
  [7, 300, 23],
  [256, 64, 96],
  [1, 513, 65],
  [41, 43, 47],
];

const VARIANTS: { name: string; transA: boolean; transB: boolean }[] = [
  { name: "NT (x·Wᵀ)", transA: false, transB: false },
  { name: "NN (dY·W)", transA: false, transB: true },
  { name: "TN (dYᵀ·X)", transA: true, transB: true },
  { name: "TT", transA: true, transB: false },
];

// Every test runs against both kernel families (forced through the wrapper's `kernels` option): "tiled"
// (matmul.wgsl, and matvec.wgsl for M ≤ 8 with B stored N×K) and "regblock" (matmul_regblock.wgsl, TM = min(M, 8)).
for (const kernels of KERNEL_VARIANTS) {
  for (const elem of ["f32", "f16"] as const) {
    for (const v of VARIANTS) {
      const name =
        `matmul [${kernels}] ${v.name} ${elem} operands vs float64 reference on ${SHAPES.length} shapes`;
      // matmul_regblock.wgsl reads op(A) through kernels/lib/row8_*.wgsl: both variants for the f32 layouts.
      testReductionsIf(kernels === "regblock" && elem === "f32", name, async () => {
        const gpu = await testGpu();
        if (elem === "f16") return await f16Only(gpu, body);
        await body();
        async function body() {
          const rand = rng(1234 + (v.transA ? 1 : 0) + (v.transB ? 2 : 0));
          const pending: Promise<void>[] = [];
          const rec = new Recorder(gpu);
          for (const [M, N, K] of SHAPES) {
            let A = randomArray(M * K, rand);
            let B = randomArray(N * K, rand);
            const C0 = randomArray(M * N, rand);
            const beta = (M + N) % 2 ? 1 : 0;
            const s: MatmulShape = {
              M,
              N,
              K,
              transA: v.transA,
              transB: v.transB,
              alpha: 0.5,
              beta,
              aType: elem,
              bType: elem,
              kernels,
            };
            // The reference sees the operands as the GPU does: rounded to f16 on the f16 path.
            if (elem === "f16") {
              A = fromF16Array(toF16Array(A));
              B = fromF16Array(toF16Array(B));
            }
            const bufA = upload(gpu, "A", elem === "f16" ? toF16Array(A) : A);
            const bufB = upload(gpu, "B", elem === "f16" ? toF16Array(B) : B);
            const bufC = upload(gpu, "C", C0);
            matmul(rec, bufA, bufB, bufC, s);
            const want = matmulRef(A, B, C0, s);
            pending.push((async () => {
              await Promise.resolve();
              const got = await readF32(gpu, bufC, 0, M * N);
              assertClose(
                got,
                want,
                { rel: elem === "f32" ? 1e-5 : 2e-3 },
                `${v.name} ${elem} M=${M} N=${N} K=${K}`,
              );
              bufA.destroy();
              bufB.destroy();
              bufC.destroy();
            })());
          }
          rec.submit();
          await Promise.all(pending);
        }
      });
    }
  }

  Deno.test(`matmul [${kernels}] batched with strides and offsets`, async () => {
    const gpu = await testGpu();
    const rand = rng(99);
    const [M, N, K, batch] = [19, 23, 37, 3];
    const s: MatmulShape = {
      M,
      N,
      K,
      batch,
      sa: M * K + 5,
      sb: N * K + 3,
      sc: M * N + 7,
      offA: 2,
      offB: 1,
      offC: 4,
      kernels,
    };
    const A = randomArray(2 + batch * (M * K + 5), rand);
    const B = randomArray(1 + batch * (N * K + 3), rand);
    const C = randomArray(4 + batch * (M * N + 7), rand);
    const [a, b, c] = [upload(gpu, "A", A), upload(gpu, "B", B), upload(gpu, "C", C)];
    const rec = new Recorder(gpu);
    matmul(rec, a, b, c, s);
    rec.submit();
    const got = await readF32(gpu, c, 0, C.length);
    assertClose(got, matmulRef(A, B, C, s), { rel: 1e-5 }, "batched");
  });

  const smallM =
    `matmul [${kernels}] small M (decode rows) batched with strides, offsets, ld and transposed A`;
  // matvec.wgsl adds its partial sums with kernels/lib/reduce_*.wgsl; regblock reads rows through row8.
  testReductions(smallM, async () => {
    const gpu = await testGpu();
    const rand = rng(100);
    const rec = new Recorder(gpu);
    const checks: (() => Promise<void>)[] = [];
    // M ≤ 8 with B stored N×K takes matvec.wgsl in the tiled family; TM = M rows per workgroup in regblock.
    for (
      const [M, N, K, transA, bType] of [
        [1, 37, 29, false, "f32"],
        [3, 70, 130, true, "f32"],
        [8, 65, 64, false, "f16"],
        [5, 9, 300, true, "f16"],
        [2, 257, 7, false, "f32"],
      ] as const
    ) {
      // Without shader-f16 (MAIEUTIC_F16=0, GL adapters) the f16 rows are refused naming it.
      if (bType === "f16" && !gpu.f16) {
        await f16Only(
          gpu,
          () =>
            matmul(
              rec,
              upload(gpu, "B16", new Uint16Array(8)),
              upload(gpu, "B16", new Uint16Array(8)),
              upload(gpu, "C16", new Float32Array(4)),
              { M, N: 1, K: 1, bType, kernels },
            ),
        );
        continue;
      }
      const batch = 2;
      const lda = (transA ? M : K) + 3;
      const ldb = K + 2;
      const ldc = N + 1;
      const s: MatmulShape = {
        M,
        N,
        K,
        transA,
        batch,
        lda,
        ldb,
        ldc,
        sa: lda * (transA ? K : M) + 5,
        sb: ldb * N + 3,
        sc: ldc * M + 7,
        offA: 2,
        offB: 1,
        offC: 4,
        alpha: 0.75,
        beta: M % 2,
        bType,
        kernels,
      };
      const A = randomArray(2 + batch * s.sa!, rand);
      let B = randomArray(1 + batch * s.sb!, rand);
      if (bType === "f16") B = fromF16Array(toF16Array(B));
      const C = randomArray(4 + batch * s.sc!, rand);
      const [a, b, c] = [
        upload(gpu, "A", A),
        upload(gpu, "B", bType === "f16" ? toF16Array(B) : B),
        upload(gpu, "C", C),
      ];
      matmul(rec, a, b, c, s);
      const want = matmulRef(A, B, C, s);
      const path = matmulPath(gpu, s);
      checks.push(async () => {
        const got = await readF32(gpu, c, 0, C.length);
        assertClose(
          got,
          want,
          { rel: 1e-5 },
          `${path} M=${M} N=${N} K=${K}${transA ? " transA" : ""} ${bType}`,
        );
      });
    }
    rec.submit();
    for (const check of checks) await check();
  });

  Deno.test(`matmul [${kernels}] at 2304×9216 scale (K = 2304) is correct`, async () => {
    const gpu = await testGpu();
    const rand = rng(7);
    // M rows of activations against the full 9216×2304 gate_proj-shaped weight (checked on sampled rows).
    const [M, N, K] = [3, 9216, 2304];
    const A = randomArray(M * K, rand);
    const B = randomArray(N * K, rand, 0.05);
    const [a, b, c] = [upload(gpu, "A", A), upload(gpu, "B", B), upload(gpu, "C", new Float32Array(M * N))];
    const rec = new Recorder(gpu);
    matmul(rec, a, b, c, { M, N, K, kernels });
    rec.submit();
    const got = await readF32(gpu, c, 0, M * N);
    assertClose(got, matmulRef(A, B, null, { M, N, K }), { rel: 1e-5 }, "2304x9216");
  });
}
