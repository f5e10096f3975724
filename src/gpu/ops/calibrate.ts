/**
 * Host side of kernels/calibrate.wgsl: a fixed number of f32 FMAs per invocation with a neighbour mix across
 * each workgroup, timed when the device opens to refuse an adapter that crawls (src/gpu/calibrate.ts). CPU
 * reference: src/gpu/ops/calibrate_ref.ts.
 */
import calibrateSource from "../../../kernels/calibrate.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../kernel.ts";
import type { Recorder } from "../recorder.ts";

const CALIBRATE = defineKernel({
  file: "calibrate.wgsl",
  code: calibrateSource,
  params: { iters: "u32", n: "u32" },
});

/** Records kernels/calibrate.wgsl over `n` invocations (rounded up to whole workgroups of 64) into `out`. */
export function recordCalibration(rec: Recorder, out: GPUBuffer, iters: number, n: number): void {
  const kernel = getKernel(rec.gpu, CALIBRATE);
  rec.dispatch(kernel, [out], { iters, n }, Math.ceil(n / 64));
}
