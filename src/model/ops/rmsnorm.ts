/**
 * Host side of Gemma-2 RMSNorm (kernels/rmsnorm_fwd.wgsl, rmsnorm_bwd.wgsl, rmsnorm_dw.wgsl).
 * transformers `modeling_gemma2.py` Gemma2RMSNorm: `y = x · rsqrt(mean(x²) + eps) · (1 + w)`, all in f32.
 * Activations are row-major `[rows, dim]` f32 (rows = tokens); `w` is `[dim]` f32; `rstd` is `[rows]` f32,
 * written by the forward and read by the backward.
 */
import fwdSource from "../../../kernels/rmsnorm_fwd.wgsl" with { type: "text" };
import bwdSource from "../../../kernels/rmsnorm_bwd.wgsl" with { type: "text" };
import dwSource from "../../../kernels/rmsnorm_dw.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

const RMSNORM_FWD = defineKernel({
  file: "rmsnorm_fwd.wgsl",
  code: fwdSource,
  params: { rows: "u32", dim: "u32", eps: "f32" },
});
const RMSNORM_BWD = defineKernel({
  file: "rmsnorm_bwd.wgsl",
  code: bwdSource,
  params: { rows: "u32", dim: "u32" },
});
const RMSNORM_DW = defineKernel({
  file: "rmsnorm_dw.wgsl",
  code: dwSource,
  params: { rows: "u32", dim: "u32", rowsPerChunk: "u32", chunks: "u32" },
});

export interface RmsNormShape {
  rows: number;
  dim: number;
}

export interface RmsNormFwdOptions extends RmsNormShape {
  /** Gemma-2 uses 1e-6 (config.rms_norm_eps). */
  eps: number;
  /**
   * Fused residual add: `y += norm(x)` (Gemma-2's `h = h + post_norm(attn(...))`). Needs an f32 `y`.
   * Default false: `y = norm(x)`.
   */
  residual?: boolean;
  /**
   * Element type of `y`. "f16" writes a half copy for a half-precision matmul operand, saturated to ±65504
   * (never Inf); it needs `shader-f16`. Default "f32".
   */
  yType?: "f32" | "f16";
}

/** Workgroup size for one row of `dim` values: a power of two in [32, 256]. */
export function rowWorkgroup(dim: number): number {
  let wg = 32;
  while (wg < 256 && wg < dim) wg *= 2;
  return wg;
}

/**
 * Forward: `y = x · rstd · (1 + w)` (or `y += ...` with `residual`), `rstd[r] = 1/sqrt(mean_j x[r,j]² + eps)`.
 * `x` and `y` must be different buffers (ranges).
 */
export function rmsnorm(
  rec: Recorder,
  x: Binding,
  w: Binding,
  y: Binding,
  rstd: Binding,
  s: RmsNormFwdOptions,
): void {
  const yType = s.yType ?? "f32";
  if (s.residual && yType !== "f32") throw new Error("rmsnorm: the fused residual add needs an f32 y");
  const k = getKernel(rec.gpu, {
    ...RMSNORM_FWD,
    constants: {
      WG: rowWorkgroup(s.dim),
      RESIDUAL: s.residual ? 1 : 0,
      SATURATE: yType === "f16" ? 1 : 0,
    },
    types: { Y_T: yType },
  });
  rec.dispatch(k, [x, w, y, rstd], { rows: s.rows, dim: s.dim, eps: s.eps }, s.rows);
}

/**
 * Backward for the input: `dx = rstd · (g − xhat · mean(g · xhat))` with `g = dy · (1 + w)`, `xhat = x · rstd`.
 * `accumulate` adds into `dx` (for the input norms, whose gradient joins the residual-stream gradient).
 * `dy` must not alias `dx`.
 */
export function rmsnormBackward(
  rec: Recorder,
  dy: Binding,
  x: Binding,
  w: Binding,
  rstd: Binding,
  dx: Binding,
  s: RmsNormShape & { accumulate?: boolean },
): void {
  const k = getKernel(rec.gpu, {
    ...RMSNORM_BWD,
    constants: { WG: rowWorkgroup(s.dim), ACCUMULATE: s.accumulate ? 1 : 0 },
  });
  rec.dispatch(k, [dy, x, w, rstd, dx], { rows: s.rows, dim: s.dim }, s.rows);
}

/** Rows summed per workgroup in the first pass of the weight gradient. */
export const DW_ROWS_PER_CHUNK = 128;
const DW_WG = 64;

/** Bytes of the scratch buffer rmsnormWeightGrad needs: one f32 partial per (row chunk, column). */
export function rmsnormWeightGradScratchBytes(rows: number, dim: number): number {
  return Math.max(1, Math.ceil(rows / DW_ROWS_PER_CHUNK)) * dim * 4;
}

/**
 * Weight gradient (optional: the engine does not train norms): `dw[j] (+)= Σ_r dy[r,j] · x[r,j] · rstd[r]`.
 * Two deterministic passes through `scratch` (rmsnormWeightGradScratchBytes(rows, dim) bytes).
 * `accumulate` adds into `dw` (gradient accumulation), otherwise it is overwritten.
 */
export function rmsnormWeightGrad(
  rec: Recorder,
  dy: Binding,
  x: Binding,
  rstd: Binding,
  dw: Binding,
  scratch: Binding,
  s: RmsNormShape & { accumulate?: boolean },
): void {
  const chunks = Math.max(1, Math.ceil(s.rows / DW_ROWS_PER_CHUNK));
  const cols = Math.ceil(s.dim / DW_WG);
  const max = rec.gpu.limits.maxComputeWorkgroupsPerDimension;
  if (chunks > max || cols > max) throw new RangeError(`rmsnormWeightGrad: ${s.rows}x${s.dim} is too large`);
  const params = { rows: s.rows, dim: s.dim, rowsPerChunk: DW_ROWS_PER_CHUNK, chunks };
  const constants = { WG: DW_WG, ACCUMULATE: s.accumulate ? 1 : 0 };
  const partial = getKernel(rec.gpu, {
    ...RMSNORM_DW,
    entry: "partial",
    constants,
  });
  rec.dispatch(partial, [dy, x, rstd, scratch], params, [cols, chunks, 1]);
  const total = getKernel(rec.gpu, { ...RMSNORM_DW, entry: "total", constants });
  rec.dispatch(total, [scratch, dw], params, [cols, 1, 1]);
}
