/**
 * Is this adapter usable? Two checks when the device opens (getGpu), each refusing with the fix instead of
 * letting a run crawl for hours:
 *   - a software OpenGL adapter (llvmpipe through wgpu's GL backend: what a fresh Debian machine without a
 *     Vulkan ICD gives Deno) is refused outright. Measured: plain arithmetic runs there as fast as on
 *     lavapipe, but its driver blocks the thread for minutes compiling our kernels (a forced try-out had not
 *     reached its first step after 150 s), which no timing or watchdog in this thread can catch;
 *   - a calibration dispatch (kernels/calibrate.wgsl through src/gpu/ops/calibrate.ts: f32 FMAs with
 *     workgroup barriers) that runs absurdly slowly refuses any other adapter.
 * MAIEUTIC_ALLOW_SLOW_ADAPTER=1 opens it anyway (the kernels are correct there, only slow).
 */
import type { Gpu } from "./device.ts";
import { recordCalibration } from "./ops/calibrate.ts";
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
    return `The WebGPU adapter is ${a.description || "a software renderer"} through OpenGL: it has no ` +
      "shader-f16 or subgroups, and its driver stalls for minutes compiling our kernels, where the same CPU " +
      "through Vulkan (lavapipe) trains the try-out in under a minute.";
  }
  return null;
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
