/** Host side of kernels/reduce_rows.wgsl: per-row sum or sum of squares. */
import source from "../../../kernels/reduce_rows.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../kernel.ts";
import type { Binding, Recorder } from "../recorder.ts";

const REDUCE_ROWS = defineKernel({
  file: "reduce_rows.wgsl",
  code: source,
  params: { rows: "u32", cols: "u32" },
});

export function reduceRows(
  rec: Recorder,
  x: Binding,
  out: Binding,
  rows: number,
  cols: number,
  mode: "sum" | "sumsq",
): void {
  const k = getKernel(rec.gpu, {
    ...REDUCE_ROWS,
    constants: { SQUARE: mode === "sumsq" ? 1 : 0 },
  });
  rec.dispatch(k, [x, out], { rows, cols }, rows);
}
