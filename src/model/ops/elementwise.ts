/**
 * Host side of kernels/elementwise.wgsl: the small elementwise steps between the big kernels, over `n`
 * contiguous f32 values (bindings may be views at 256-byte-aligned offsets).
 */
import source from "../../../kernels/elementwise.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

const ELEMENTWISE = defineKernel({
  file: "elementwise.wgsl",
  code: source,
  params: { n: "u32", alpha: "f32" },
});

const WG = 256;

function kernel(rec: Recorder, entry: string) {
  return getKernel(rec.gpu, { ...ELEMENTWISE, entry, constants: { WG } });
}

/** `y += alpha · x` (residual adds, gradient accumulation). x must not alias y. */
export function axpy(rec: Recorder, x: Binding, y: Binding, n: number, alpha = 1): void {
  if (n > 0) rec.dispatch(kernel(rec, "axpy"), [x, y], { n, alpha }, Math.ceil(n / WG));
}

/** `y *= alpha`. */
export function scale(rec: Recorder, y: Binding, n: number, alpha: number): void {
  if (n > 0) rec.dispatch(kernel(rec, "scale"), [y], { n, alpha }, Math.ceil(n / WG));
}

/** `y = value` for n f32 values (zero goes through the encoder's clearBuffer when y is a whole buffer). */
export function fill(rec: Recorder, y: Binding, n: number, value = 0): void {
  if (n <= 0) return;
  if (value === 0 && y instanceof GPUBuffer) {
    rec.clear(y, 0, n * 4);
    return;
  }
  rec.dispatch(kernel(rec, "fill"), [y], { n, alpha: value }, Math.ceil(n / WG));
}

/**
 * `y = half(x)`: n f32 values to IEEE half, saturated to ±65504 (never Inf). `y` holds ceil(n/2) 32-bit words
 * (two halves each, low half first): for odd n the half after the last one is written as 0.
 * Works without shader-f16 (pack2x16float).
 */
export function castF16(rec: Recorder, x: Binding, y: Binding, n: number): void {
  if (n > 0) {
    rec.dispatch(kernel(rec, "cast_half"), [x, y], { n, alpha: 0 }, Math.ceil(Math.ceil(n / 2) / WG));
  }
}

/** `dst = src` for n f32 values at element offsets (a copy on the encoder, no kernel). */
export function copyF32(
  rec: Recorder,
  src: GPUBuffer,
  dst: GPUBuffer,
  n: number,
  srcOffset = 0,
  dstOffset = 0,
): void {
  if (n > 0) rec.copy(src, srcOffset * 4, dst, dstOffset * 4, n * 4);
}
