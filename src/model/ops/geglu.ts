/**
 * Host side of kernels/geglu_fwd.wgsl and geglu_bwd.wgsl: Gemma-2's MLP activation
 * `h = gelu_tanh(gate) · up` (transformers `modeling_gemma2.py` Gemma2MLP, torch gelu approximate="tanh").
 *
 * Layout: `gate`, `up` and `h` are `[rows, cols]` views (rows = tokens, cols = intermediate_size) with their own
 * row stride (`ld*`, elements, default cols) and element offset (`off*`, default 0). So either
 * - two dense buffers: geglu(rec, gate, up, h, {rows, cols}), or
 * - one `[rows, 2·cols]` buffer holding [gate | up] per row, bound twice:
 *   geglu(rec, gu, gu, h, {rows, cols, ldGate: 2*cols, ldUp: 2*cols, offUp: cols}).
 * gate/up are f32; h (and dgate/dup) f32 or f16 (saturated to ±65504, for half-precision matmul operands).
 */
import fwdSource from "../../../kernels/geglu_fwd.wgsl" with { type: "text" };
import bwdSource from "../../../kernels/geglu_bwd.wgsl" with { type: "text" };
import { defineKernel, getKernel, type KernelParams } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

const GEGLU_FWD = defineKernel({
  file: "geglu_fwd.wgsl",
  code: fwdSource,
  params: {
    rows: "u32",
    cols: "u32",
    ldg: "u32",
    ldu: "u32",
    ldh: "u32",
    offG: "u32",
    offU: "u32",
    offH: "u32",
  },
});
const GEGLU_BWD = defineKernel({
  file: "geglu_bwd.wgsl",
  code: bwdSource,
  params: {
    rows: "u32",
    cols: "u32",
    ldg: "u32",
    ldu: "u32",
    ldd: "u32",
    offG: "u32",
    offU: "u32",
    offDG: "u32",
    offDU: "u32",
  },
});

export interface GegluInputs {
  rows: number;
  cols: number;
  ldGate?: number;
  ldUp?: number;
  offGate?: number;
  offUp?: number;
}

const WG = 256;

function groups(s: GegluInputs): number {
  return Math.ceil((s.rows * s.cols) / WG);
}

/** Forward: `h = gelu_tanh(gate) · up`. h must not overlap gate or up. */
export function geglu(
  rec: Recorder,
  gate: Binding,
  up: Binding,
  h: Binding,
  s: GegluInputs & { ldH?: number; offH?: number; hType?: "f32" | "f16" },
): void {
  const hType = s.hType ?? "f32";
  const k = getKernel(rec.gpu, {
    ...GEGLU_FWD,
    constants: { WG, SATURATE: hType === "f16" ? 1 : 0 },
    types: { H_T: hType },
  });
  const params = {
    rows: s.rows,
    cols: s.cols,
    ldg: s.ldGate ?? s.cols,
    ldu: s.ldUp ?? s.cols,
    ldh: s.ldH ?? s.cols,
    offG: s.offGate ?? 0,
    offU: s.offUp ?? 0,
    offH: s.offH ?? 0,
  };
  rec.dispatch(k, [gate, up, h], params, groups(s));
}

function bwdParams(
  s: GegluInputs & { ldOut?: number; offDGate?: number; offDUp?: number },
): KernelParams<typeof GEGLU_BWD> {
  return {
    rows: s.rows,
    cols: s.cols,
    ldg: s.ldGate ?? s.cols,
    ldu: s.ldUp ?? s.cols,
    ldd: s.ldOut ?? s.cols,
    offG: s.offGate ?? 0,
    offU: s.offUp ?? 0,
    offDG: s.offDGate ?? 0,
    offDU: s.offDUp ?? 0,
  };
}

/**
 * Backward: `dgate = dh · up · gelu_tanh'(gate)`, `dup = dh · gelu_tanh(gate)`. `dh` is dense `[rows, cols]`
 * f32; dgate/dup share the row stride `ldOut` (default cols) with offsets `offDGate`/`offDUp` (so they can be the
 * two halves of one `[rows, 2·cols]` buffer bound twice) and type `dType` (default f32).
 */
export function gegluBackward(
  rec: Recorder,
  dh: Binding,
  gate: Binding,
  up: Binding,
  dgate: Binding,
  dup: Binding,
  s: GegluInputs & { ldOut?: number; offDGate?: number; offDUp?: number; dType?: "f32" | "f16" },
): void {
  const dType = s.dType ?? "f32";
  const k = getKernel(rec.gpu, {
    ...GEGLU_BWD,
    entry: "main",
    constants: { WG, SATURATE: dType === "f16" ? 1 : 0 },
    types: { DG_T: dType },
  });
  rec.dispatch(k, [dh, gate, up, dgate, dup], bwdParams(s), groups(s));
}

/**
 * Backward in place: gate ← dgate, up ← dup (f32, same views), saving two `[rows, cols]` buffers.
 * `dh` must be a different buffer from gate/up.
 */
export function gegluBackwardInPlace(
  rec: Recorder,
  dh: Binding,
  gate: Binding,
  up: Binding,
  s: GegluInputs,
): void {
  const k = getKernel(rec.gpu, {
    ...GEGLU_BWD,
    entry: "inplace",
    constants: { WG },
    types: { DG_T: "f32" },
  });
  rec.dispatch(k, [dh, gate, up], bwdParams(s), groups(s));
}
