/**
 * Host side of kernels/matmul.wgsl: C = alpha · op(A)·op(B)ᵀ + beta · C, f32 accumulation, optional f16
 * operands. The model uses three layouts: x·Wᵀ (forward, "NT"), dY·W (input gradient, transB), and
 * dYᵀ·X (weight gradient, transA + transB).
 */
import source from "../../../kernels/matmul.wgsl" with { type: "text" };
import type { Gpu } from "../device.ts";
import { getKernel, type Kernel } from "../kernel.ts";
import { f32, type ParamValue } from "../params.ts";
import type { Binding, Recorder } from "../recorder.ts";

export type Elem = "f32" | "f16";
const TILE = 64;

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
}

/** Rows per invocation: the tile is 16·TM rows tall, so small M (decode, short batches) wastes little. */
export function matmulRowsPerThread(M: number): number {
  return M <= 16 ? 1 : M <= 32 ? 2 : 4;
}

export function matmulKernel(
  gpu: Gpu,
  s: Pick<MatmulShape, "transA" | "transB" | "aType" | "bType" | "cType"> & { M?: number },
): Kernel {
  return getKernel(gpu, {
    file: "matmul.wgsl",
    code: source,
    constants: { TRANS_A: s.transA ? 1 : 0, TRANS_B: s.transB ? 1 : 0, TM: matmulRowsPerThread(s.M ?? 64) },
    types: { A_T: s.aType ?? "f32", B_T: s.bType ?? "f32", C_T: s.cType ?? "f32" },
  });
}

export function matmulParams(s: MatmulShape): ParamValue[] {
  const lda = s.lda ?? (s.transA ? s.M : s.K);
  const ldb = s.ldb ?? (s.transB ? s.N : s.K);
  const ldc = s.ldc ?? s.N;
  return [
    s.M,
    s.N,
    s.K,
    lda,
    ldb,
    ldc,
    f32(s.alpha ?? 1),
    f32(s.beta ?? 0),
    s.sa ?? 0,
    s.sb ?? 0,
    s.sc ?? 0,
    s.offA ?? 0,
    s.offB ?? 0,
    s.offC ?? 0,
  ];
}

export function matmul(rec: Recorder, A: Binding, B: Binding, C: Binding, s: MatmulShape): void {
  const k = matmulKernel(rec.gpu, s);
  const rows = 16 * matmulRowsPerThread(s.M);
  rec.dispatch(k, [A, B, C], matmulParams(s), [Math.ceil(s.N / TILE), Math.ceil(s.M / rows), s.batch ?? 1]);
}

/** Useful work in FLOP for benchmarks. */
export function matmulFlops(s: MatmulShape): number {
  return 2 * s.M * s.N * s.K * (s.batch ?? 1);
}
