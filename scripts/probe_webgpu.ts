/**
 * `deno run -A scripts/probe_webgpu.ts`: is there a WebGPU adapter the kernels and tests can use? Opens the
 * device the way every command does (src/gpu/device.ts: Vulkan/Metal/DX12 before GL, software GL and
 * pathologically slow adapters refused) and also requires shader-f16 (the test suite runs the f16 kernels;
 * MAIEUTIC_F16=0 lifts that). Prints one line naming the adapter and backend; exit 0 usable, 1 not (the line
 * says why). scripts/setup_webgpu.sh installs lavapipe when this fails.
 */
import { f16FromEnv, getGpu } from "../src/gpu/device.ts";

try {
  const gpu = await getGpu();
  const name = `${gpu.info.description || gpu.info.vendor} via ${gpu.backend ?? "the default backend"}`;
  const f16 = gpu.device.features.has("shader-f16");
  const detail = `shader-f16 ${f16 ? "yes" : "no"}, subgroups ${gpu.subgroups ? "yes" : "no"}` +
    (gpu.calibration ? `, calibration ${gpu.calibration.gflops.toFixed(1)} GFLOP/s` : "");
  if (!f16 && f16FromEnv() !== "0") {
    console.log(`unusable: ${name} lacks shader-f16 (${detail}); MAIEUTIC_F16=0 runs the f32 kernels only`);
    Deno.exit(1);
  }
  console.log(`${name} (${detail})`);
  gpu.device.destroy();
  Deno.exit(0);
} catch (e) {
  console.log(`unusable: ${(e as Error).message}`);
  Deno.exit(1);
}
