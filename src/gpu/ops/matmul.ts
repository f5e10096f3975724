/**
 * Host side of the matrix product C = alpha · op(A)·op(B)ᵀ + beta · C, f32 accumulation, optional f16
 * operands. The model uses three layouts: x·Wᵀ (forward, "NT"), dY·W (input gradient, transB), and
 * dYᵀ·X (weight gradient, transA + transB).
 *
 * Kernels (same Params and semantics, chosen here by adapter and shape; docs/ARCHITECTURE.md#performance):
 *   - "tiled" family (GPUs): kernels/matmul.wgsl (workgroup-memory tiles), and kernels/matvec.wgsl for M ≤ 8
 *     with B stored N×K (decode: the LM head over a vocab chunk, dense projections of a few rows), which splits
 *     K over a workgroup instead of computing a 16-row tile for one row;
 *   - "regblock" family (CPU adapters, gpu.isSoftware): kernels/matmul_regblock.wgsl (registers only, no
 *     barriers: on lavapipe the barriers of the tiled kernel cost ~6× its arithmetic, BENCHMARKS.md), with
 *     TM = min(M, 8) rows per workgroup so small M computes no padding rows.
 * The family is the device's (src/gpu/variants.ts: by adapter, or MAIEUTIC_KERNELS=tiled|regblock read when the
 * device opened) unless the wrapper option `kernels` forces one (tests); SELECT.matmul picks the kernel.
 */
import source from "../../../kernels/matmul.wgsl" with { type: "text" };
import regblockSource from "../../../kernels/matmul_regblock.wgsl" with { type: "text" };
import matvecSource from "../../../kernels/matvec.wgsl" with { type: "text" };
import type { Gpu } from "../device.ts";
import { defineKernel, getKernel, type Kernel, type KernelParams } from "../kernel.ts";
import { type Binding, foldGrid, type Recorder } from "../recorder.ts";
import { type KernelVariant, kernelVariant, SELECT } from "../variants.ts";

export { KERNEL_VARIANTS, kernelsFromEnv, type KernelVariant, kernelVariant, SMALL_M } from "../variants.ts";

export type Elem = "f32" | "f16";

/** The Params of all three kernels (same semantics; see MatmulShape). */
const MATMUL_PARAMS = {
  M: "u32",
  N: "u32",
  K: "u32",
  lda: "u32",
  ldb: "u32",
  ldc: "u32",
  alpha: "f32",
  beta: "f32",
  sa: "u32",
  sb: "u32",
  sc: "u32",
  offA: "u32",
  offB: "u32",
  offC: "u32",
} as const;
const MATMUL = defineKernel({ file: "matmul.wgsl", code: source, params: MATMUL_PARAMS });
const MATMUL_REGBLOCK = defineKernel({
  file: "matmul_regblock.wgsl",
  code: regblockSource,
  params: MATMUL_PARAMS,
});
const MATVEC = defineKernel({ file: "matvec.wgsl", code: matvecSource, params: MATMUL_PARAMS });
const TILE = 64;

/** Invocations per workgroup of the register-blocked kernels (lavapipe's SIMD width at 256 bits), 8 columns each. */
export const REGBLOCK_WG = 8;

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  /** A stored K×M instead of M×K. */
  transA?: boolean;
  /** B stored K×N instead of N×K. */
  transB?: boolean;
  alpha?: number;
  /** Accumulate into C (beta = 1) or overwrite (beta = 0, default; C is then not read). */
  beta?: number;
  batch?: number;
  lda?: number;
  ldb?: number;
  ldc?: number;
  /** Batch strides in elements. */
  sa?: number;
  sb?: number;
  sc?: number;
  /** Element offsets of the views. */
  offA?: number;
  offB?: number;
  offC?: number;
  aType?: Elem;
  bType?: Elem;
  cType?: Elem;
  /** Kernel family (default: the device's, src/gpu/variants.ts); tests force both. */
  kernels?: KernelVariant;
}

/** Rows per invocation: the tile is 16·TM rows tall, so small M (decode, short batches) wastes little. */
export function matmulRowsPerThread(M: number): number {
  return M <= 16 ? 1 : M <= 32 ? 2 : 4;
}

export function matmulKernel(
  gpu: Gpu,
  s: Pick<MatmulShape, "transA" | "transB" | "aType" | "bType" | "cType"> & { M?: number },
): Kernel<typeof MATMUL_PARAMS> {
  return getKernel(gpu, {
    ...MATMUL,
    constants: { TRANS_A: s.transA ? 1 : 0, TRANS_B: s.transB ? 1 : 0, TM: matmulRowsPerThread(s.M ?? 64) },
    types: { A_T: s.aType ?? "f32", B_T: s.bType ?? "f32", C_T: s.cType ?? "f32" },
  });
}

export function matmulParams(s: MatmulShape): KernelParams<typeof MATMUL> {
  const lda = s.lda ?? (s.transA ? s.M : s.K);
  const ldb = s.ldb ?? (s.transB ? s.N : s.K);
  const ldc = s.ldc ?? s.N;
  return {
    M: s.M,
    N: s.N,
    K: s.K,
    lda,
    ldb,
    ldc,
    alpha: s.alpha ?? 1,
    beta: s.beta ?? 0,
    sa: s.sa ?? 0,
    sb: s.sb ?? 0,
    sc: s.sc ?? 0,
    offA: s.offA ?? 0,
    offB: s.offB ?? 0,
    offC: s.offC ?? 0,
  };
}

/** Which kernel `matmul` records for a shape. */
export function matmulPath(gpu: Gpu, s: MatmulShape): "tiled" | "matvec" | "regblock" {
  return SELECT.matmul(kernelVariant(gpu, s.kernels), s);
}

export function matmul(rec: Recorder, A: Binding, B: Binding, C: Binding, s: MatmulShape): void {
  const { gpu } = rec;
  const batch = s.batch ?? 1;
  const types = { A_T: s.aType ?? "f32", B_T: s.bType ?? "f32", C_T: s.cType ?? "f32" };
  const path = matmulPath(gpu, s);
  if (path === "regblock") {
    const TM = Math.max(1, Math.min(s.M, 8));
    const k = getKernel(gpu, {
      ...MATMUL_REGBLOCK,
      constants: { TRANS_A: s.transA ? 1 : 0, TRANS_B: s.transB ? 1 : 0, TM, WG: REGBLOCK_WG },
      types,
    });
    const grid = [Math.ceil(s.N / (8 * REGBLOCK_WG)), Math.ceil(s.M / TM), batch] as const;
    rec.dispatch(k, [A, B, C], matmulParams(s), grid);
    return;
  }
  if (path === "matvec") {
    const k = getKernel(gpu, {
      ...MATVEC,
      constants: { TRANS_A: s.transA ? 1 : 0, MR: s.M },
      types,
    });
    // Column blocks of 4 over a 1-D grid folded into x/y; the batch in z.
    const [x, y] = foldGrid(Math.ceil(s.N / 4), gpu.limits.maxComputeWorkgroupsPerDimension);
    rec.dispatch(k, [A, B, C], matmulParams(s), [x, y, batch]);
    return;
  }
  const k = matmulKernel(gpu, s);
  const rows = 16 * matmulRowsPerThread(s.M);
  rec.dispatch(k, [A, B, C], matmulParams(s), [Math.ceil(s.N / TILE), Math.ceil(s.M / rows), batch]);
}

/** Useful work in FLOP for benchmarks. */
export function matmulFlops(s: MatmulShape): number {
  return 2 * s.M * s.N * s.K * (s.batch ?? 1);
}
