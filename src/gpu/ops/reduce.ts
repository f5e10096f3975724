/** Host side of kernels/reduce_rows.wgsl: per-row sum or sum of squares. */
import source from "../../../kernels/reduce_rows.wgsl" with { type: "text" };
import { getKernel } from "../kernel.ts";
import type { Binding, Recorder } from "../recorder.ts";

export function reduceRows(
  rec: Recorder,
  x: Binding,
  out: Binding,
  rows: number,
  cols: number,
  mode: "sum" | "sumsq",
): void {
  const k = getKernel(rec.gpu, {
    file: "reduce_rows.wgsl",
    code: source,
    constants: { SQUARE: mode === "sumsq" ? 1 : 0 },
  });
  rec.dispatch(k, [x, out], [rows, cols], rows);
}
