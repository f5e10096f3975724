/**
 * Is this adapter usable? Two checks when the device opens (getGpu), each refusing with the fix instead of
 * letting a run crawl for hours:
 *   - a software OpenGL adapter (llvmpipe through wgpu's GL backend: what a fresh Debian machine without a
 *     Vulkan ICD gives Deno) is refused outright: the same CPU runs our kernels far faster through lavapipe;
 *   - a calibration dispatch (kernels/calibrate.wgsl: a fixed number of f32 FMAs) that runs absurdly slowly
 *     refuses any other adapter.
 * MAIEUTIC_ALLOW_SLOW_ADAPTER=1 opens it anyway (the kernels are correct there, only slow).
 */
import calibrateSource from "../../kernels/calibrate.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { defineKernel, getKernel } from "./kernel.ts";
import { Recorder } from "./recorder.ts";
import { readF32 } from "./readback.ts";

/** Invocations × iterations × (16 FMAs + 1 mix) × 4 lanes × 2 flops ≈ 0.14 GFLOP, 128 barriers each. */
const N = 16384;
const ITERS = 64;
export const CALIBRATION_FLOP = N * ITERS * 17 * 4 * 2;

/**
 * Below this the adapter is refused: lavapipe on one core of this project's CI machines measures well above
 * 1 GFLOP/s here; an adapter under 0.05 GFLOP/s would take days for the tiny try-out's minutes.
 */
export const MIN_CALIBRATION_GFLOPS = 0.05;

export class SlowAdapterError extends Error {
  override name = "SlowAdapterError";
}

export const SLOW_ADAPTER_FIX = "Install a Vulkan driver: without a GPU, the software one " +
  "(`sudo apt-get install -y mesa-vulkan-drivers libvulkan1`; Debian bookworm: `-t bookworm-backports`, ~5x " +
  "faster); on a GPU VM, the vendor's driver with its Vulkan ICD. Or set MAIEUTIC_ALLOW_SLOW_ADAPTER=1 to run " +
  "on this adapter anyway.";

export function allowSlowFromEnv(): boolean {
  try {
    const v = Deno.env.get("MAIEUTIC_ALLOW_SLOW_ADAPTER");
    return v !== undefined && v !== "" && v !== "0";
  } catch {
    return false;
  }
}

/** Why an adapter is refused before any timing, or null (pure). */
export function refusalReason(
  a: { backend: string | null; isSoftware: boolean; description: string },
): string | null {
  if (a.backend === "gl" && a.isSoftware) {
    return `The WebGPU adapter is ${a.description || "a software renderer"} through OpenGL: a software ` +
      "OpenGL adapter runs compute hundreds of times slower than the same CPU through Vulkan (lavapipe).";
  }
  return null;
}

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

/**
 * CPU reference (float64) of kernels/calibrate.wgsl: every workgroup of 64 lanes in lockstep, the neighbour
 * mix read after the barrier. Lanes at or past `n` still run (they feed their neighbours) but write nothing.
 */
export function calibrationRef(n: number, iters: number): Float64Array {
  const groups = Math.ceil(n / 64);
  const out = new Float64Array(n);
  const m = [0.999, 0.998, 0.997, 0.996], c = [1e-3, 2e-3, 3e-3, 4e-3];
  for (let g = 0; g < groups; g++) {
    let a = Array.from({ length: 64 }, (_, li) => [(g * 64 + li) * 1e-6, 0.25, 0.5, 0.75]);
    for (let k = 0; k < iters; k++) {
      for (const v of a) for (let j = 0; j < 16; j++) for (let q = 0; q < 4; q++) v[q] = v[q] * m[q] + c[q];
      a = a.map((v, li) => v.map((x, q) => 0.5 * (x + a[(li + 1) % 64][q])));
    }
    for (let li = 0; li < 64 && g * 64 + li < n; li++) out[g * 64 + li] = a[li].reduce((s, x) => s + x, 0);
  }
  return out;
}

/** Runs the calibration dispatch (once warm, once timed); GFLOP/s by the wall clock. */
export async function calibrate(gpu: Gpu): Promise<{ gflops: number; ms: number }> {
  const out = gpu.device.createBuffer({
    label: "calibrate",
    size: N * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  try {
    const run = async (iters: number) => {
      const r = new Recorder(gpu, { label: "calibrate" });
      recordCalibration(r, out, iters, N);
      r.submit();
      return await readF32(gpu, out, 0, 1);
    };
    await run(1); // compiles the pipeline and pays the first submit
    const t0 = performance.now();
    const v = await run(ITERS);
    const ms = performance.now() - t0;
    if (!Number.isFinite(v[0])) throw new Error(`calibration kernel wrote ${v[0]}`);
    return { gflops: CALIBRATION_FLOP / (ms * 1e6), ms };
  } finally {
    out.destroy();
  }
}
