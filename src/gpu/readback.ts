/**
 * Readbacks. Each awaited readback costs >= 11 ms on lavapipe: call these for logged scalars and tests,
 * never per kernel in a hot loop.
 */
import { type Gpu, waitGpu } from "./device.ts";
import { checkKernels } from "./kernel.ts";

export async function readBuffer(
  gpu: Gpu,
  src: GPUBuffer,
  offset = 0,
  size = src.size - offset,
): Promise<ArrayBuffer> {
  await checkKernels(gpu);
  const aligned = Math.ceil(size / 4) * 4;
  const staging = gpu.device.createBuffer({
    label: "readback",
    size: aligned,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = gpu.device.createCommandEncoder();
  enc.copyBufferToBuffer(src, offset, staging, 0, aligned);
  gpu.device.queue.submit([enc.finish()]);
  await waitGpu(gpu, staging.mapAsync(GPUMapMode.READ), "a readback");
  const out = staging.getMappedRange().slice(0, size);
  staging.unmap();
  staging.destroy();
  return out;
}

export async function readF32(
  gpu: Gpu,
  src: GPUBuffer,
  offset = 0,
  count?: number,
): Promise<Float32Array<ArrayBuffer>> {
  const n = count ?? (src.size - offset) / 4;
  return new Float32Array(await readBuffer(gpu, src, offset, n * 4));
}

export async function readU32(
  gpu: Gpu,
  src: GPUBuffer,
  offset = 0,
  count?: number,
): Promise<Uint32Array<ArrayBuffer>> {
  const n = count ?? (src.size - offset) / 4;
  return new Uint32Array(await readBuffer(gpu, src, offset, n * 4));
}

/** Waits for all submitted work (for wall-clock timing when timestamp queries are absent). */
export function idle(gpu: Gpu): Promise<undefined> {
  return waitGpu(gpu, gpu.device.queue.onSubmittedWorkDone(), "the submitted work");
}
