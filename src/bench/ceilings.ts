/**
 * The machine's measured limits for `maieutic bench` (docs/ARCHITECTURE.md#performance: kernels are reported against them):
 * a streaming copy (kernels/bench/bench_copy.wgsl) for memory bandwidth and an FMA loop (kernels/bench/bench_fma.wgsl) for
 * arithmetic throughput. Each kernel figure is then given as a fraction of these two.
 */
import copySource from "../../kernels/bench/bench_copy.wgsl" with { type: "text" };
import fmaSource from "../../kernels/bench/bench_fma.wgsl" with { type: "text" };
import { createBuffer } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { defineKernel, getKernel } from "../gpu/kernel.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { GpuTimer } from "./timing.ts";

export interface Ceilings {
  /** Streaming copy: bytes read + written per second, in GB/s (1e9). */
  copy_gbps: number;
  copy_bytes: number;
  copy_ms: number;
  /** f32 FMA loop, GFLOP/s (an FMA counts 2). */
  fma_gflops: number;
  fma_flop: number;
  fma_ms: number;
}

const WG = 256;
const ITEMS = 4;

const BENCH_COPY = defineKernel({ file: "bench/bench_copy.wgsl", code: copySource, params: { n: "u32" } });
const BENCH_FMA = defineKernel({
  file: "bench/bench_fma.wgsl",
  code: fmaSource,
  params: { n: "u32", iters: "u32", a: "f32", b: "f32" },
});

/** dst = src over n vec4<f32> (kernels/bench/bench_copy.wgsl). */
export function recordCopy(rec: Recorder, src: GPUBuffer, dst: GPUBuffer, n: number): void {
  const k = getKernel(rec.gpu, { ...BENCH_COPY, constants: { WG, ITEMS } });
  rec.dispatch(k, [src, dst], { n }, Math.ceil(n / (WG * ITEMS)));
}

/** `invocations` FMA-loop invocations of `iters` iterations each (kernels/bench/bench_fma.wgsl); out[i] their sums. */
export function recordFma(
  rec: Recorder,
  out: GPUBuffer,
  invocations: number,
  iters: number,
  a = 0.999,
  b = 0.001,
): void {
  const k = getKernel(rec.gpu, { ...BENCH_FMA, constants: { WG } });
  rec.dispatch(k, [out], { n: invocations, iters, a, b }, Math.ceil(invocations / WG));
}

/** FLOP of recordFma: 8 vec4 FMA chains per iteration. */
export function fmaFlop(invocations: number, iters: number): number {
  return invocations * iters * 8 * 4 * 2;
}

/** Measures both ceilings. `copyBytes` is the size of each of the two buffers (capped to one binding). */
export async function measureCeilings(
  gpu: Gpu,
  timer: GpuTimer,
  o: { copyBytes?: number; fmaInvocations?: number; fmaIters?: number; minMs?: number } = {},
): Promise<Ceilings> {
  const bytes = Math.min(o.copyBytes ?? 64 * 2 ** 20, gpu.limits.maxStorageBufferBindingSize);
  const n = Math.floor(bytes / 16);
  const src = createBuffer(gpu, "bench.copy.src", n * 16);
  const dst = createBuffer(gpu, "bench.copy.dst", n * 16);
  const tc = await timer.time(
    (rec) => recordCopy(rec, src, dst, n),
    { minMs: o.minMs ?? 200, label: "bench-copy" },
  );
  src.destroy();
  dst.destroy();

  const inv = o.fmaInvocations ?? 32768;
  const iters = o.fmaIters ?? 512;
  const out = createBuffer(gpu, "bench.fma.out", inv * 4);
  const flop = fmaFlop(inv, iters);
  const tf = await timer.time(
    (rec) => recordFma(rec, out, inv, iters),
    { minMs: o.minMs ?? 200, label: "bench-fma" },
  );
  out.destroy();
  return {
    copy_gbps: (2 * n * 16) / (tc.ms * 1e6),
    copy_bytes: 2 * n * 16,
    copy_ms: tc.ms,
    fma_gflops: flop / (tf.ms * 1e6),
    fma_flop: flop,
    fma_ms: tf.ms,
  };
}
