/**
 * Row argmax of logits (kernels/argmax.wgsl), for greedy decoding: 4 bytes per row to read back instead of the
 * row. CPU reference: src/model/ref/argmax.ts.
 */
import argmaxSource from "../../../kernels/argmax.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

const ARGMAX = defineKernel({
  file: "argmax.wgsl",
  code: argmaxSource,
  params: { rows: "u32", V: "u32" },
});

const ARGMAX_WG = 256;

/** ids[r] = argmax of logits row r ([rows, V] f32), the smallest index on ties (kernels/argmax.wgsl). */
export function argmaxRows(
  rec: Recorder,
  logits: Binding,
  ids: Binding,
  s: { rows: number; V: number },
): void {
  const k = getKernel(rec.gpu, { ...ARGMAX, constants: { WG: ARGMAX_WG } });
  rec.dispatch(k, [logits, ids], { rows: s.rows, V: s.V }, s.rows);
}
