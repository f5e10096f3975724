/**
 * Records many kernel dispatches into one command buffer (docs/ARCHITECTURE.md#performance: a whole step in few command buffers,
 * no awaits in hot paths). Uniform parameters go into a per-recorder arena of 256-byte slots that is written
 * with one queue.writeBuffer per chunk at submit time; queue order makes the write land before the
 * dispatches that read it, and makes the chunks reusable by the next recorder.
 */
import type { Gpu } from "./device.ts";
import type { Kernel } from "./kernel.ts";
import { encodeParams, type ParamSchema, type ParamsOf } from "./params.ts";

export type Binding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

const SLOT = 256;
const CHUNK = 64 * 1024;
/** Dispatches per timestamp query set (2 queries each; WebGPU caps a query set at 4096 queries). */
const PROFILED_PER_SET = 2048;
const freeChunks = new WeakMap<GPUDevice, GPUBuffer[]>();

export interface KernelTiming {
  name: string;
  ns: number;
}

/** Splits a 1-D workgroup count over x and y so no dimension exceeds the device limit. */
export function foldGrid(count: number, maxPerDim: number): [number, number, number] {
  if (count <= maxPerDim) return [Math.max(1, count), 1, 1];
  const y = Math.ceil(count / maxPerDim);
  if (y > maxPerDim) throw new RangeError(`grid of ${count} workgroups exceeds ${maxPerDim}^2`);
  return [Math.ceil(count / y), y, 1];
}

export class Recorder {
  readonly encoder: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | undefined;
  private chunks: { buffer: GPUBuffer; data: Uint8Array<ArrayBuffer>; used: number }[] = [];
  private readonly profile: boolean;
  private readonly maxProfiled: number;
  /** Created as the profiled dispatches fill them (PROFILED_PER_SET each). */
  private querySets: GPUQuerySet[] = [];
  private queryNames: string[] = [];
  private passProfiled = false;
  private resolveBuffer: GPUBuffer | undefined;
  private submitted = false;
  private readonly label: string;
  /** Distinct kernels dispatched (the first few), for the watchdog's message. */
  private readonly kernelNames: string[] = [];
  dispatchCount = 0;

  /**
   * `profile` (with timestamp-query): every dispatch gets its own compute pass with a begin and an end
   * timestamp, up to `maxProfiled` dispatches (default 2048; later ones run unprofiled); `timings()` reads them.
   */
  constructor(readonly gpu: Gpu, opts: { label?: string; profile?: boolean; maxProfiled?: number } = {}) {
    this.encoder = gpu.device.createCommandEncoder({ label: opts.label });
    this.label = opts.label ?? "";
    this.profile = Boolean(opts.profile && gpu.timestamps);
    this.maxProfiled = opts.maxProfiled ?? PROFILED_PER_SET;
  }

  private paramSlot(bytes: Uint8Array<ArrayBuffer>): { buffer: GPUBuffer; offset: number; size: number } {
    let chunk = this.chunks[this.chunks.length - 1];
    if (!chunk || chunk.used + SLOT > CHUNK) {
      const pool = freeChunks.get(this.gpu.device) ?? [];
      freeChunks.set(this.gpu.device, pool);
      const buffer = pool.pop() ??
        this.gpu.device.createBuffer({
          label: "params-arena",
          size: CHUNK,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        });
      chunk = { buffer, data: new Uint8Array(CHUNK), used: 0 };
      this.chunks.push(chunk);
    }
    chunk.data.set(bytes, chunk.used);
    const offset = chunk.used;
    chunk.used += SLOT;
    return { buffer: chunk.buffer, offset, size: bytes.byteLength };
  }

  private computePass(name: string): GPUComputePassEncoder {
    if (this.profile && this.queryNames.length < this.maxProfiled) {
      this.endPass();
      const i = this.queryNames.length;
      const local = i % PROFILED_PER_SET;
      if (local === 0) {
        this.querySets.push(
          this.gpu.device.createQuerySet({ type: "timestamp", count: 2 * PROFILED_PER_SET }),
        );
      }
      this.queryNames.push(name);
      this.passProfiled = true;
      this.pass = this.encoder.beginComputePass({
        timestampWrites: {
          querySet: this.querySets[this.querySets.length - 1],
          beginningOfPassWriteIndex: 2 * local,
          endOfPassWriteIndex: 2 * local + 1,
        },
      });
      return this.pass;
    }
    // Past maxProfiled: the profiled pass is closed (its end timestamp must not cover later dispatches).
    if (this.passProfiled) this.endPass();
    return this.pass ??= this.encoder.beginComputePass();
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = undefined;
    this.passProfiled = false;
  }

  /**
   * One dispatch. `bindings` fill binding 1, 2, ... (null leaves a number out). `params` are the kernel's
   * Params by name, checked against its declaration (src/gpu/params.ts), or null for a kernel without. `groups`
   * is a workgroup count: a number (1-D, folded over x/y when above the limit) or an explicit [x, y, z].
   */
  dispatch<S extends ParamSchema>(
    kernel: Kernel<S>,
    bindings: readonly (Binding | null)[],
    params: ParamsOf<S> | null,
    groups: number | readonly [number, number?, number?],
  ): void {
    if (this.submitted) throw new Error("Recorder already submitted");
    const entries: GPUBindGroupEntry[] = [];
    let b = 0;
    if (kernel.params) {
      if (!params) {
        throw new RangeError(`${kernel.where}: kernel has a Params block but no params were given`);
      }
      const bytes = encodeParams(kernel.where, kernel.params, params);
      if (bytes.byteLength > SLOT) {
        throw new RangeError(`params block of ${bytes.byteLength} bytes > ${SLOT}`);
      }
      entries.push({ binding: b++, resource: this.paramSlot(bytes) });
    } else {
      if (params) throw new RangeError(`${kernel.where}: kernel has no Params block but params were given`);
      b = 1;
    }
    // null skips a binding number: auto layouts drop bindings an entry point does not use.
    for (const bind of bindings) {
      if (bind !== null) {
        entries.push({ binding: b, resource: bind instanceof GPUBuffer ? { buffer: bind } : bind });
      }
      b++;
    }
    const bindGroup = this.gpu.device.createBindGroup({
      layout: kernel.pipeline.getBindGroupLayout(0),
      entries,
    });
    const max = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    const [x, y, z] = typeof groups === "number"
      ? foldGrid(groups, max)
      : [groups[0], groups[1] ?? 1, groups[2] ?? 1];
    if (x > max || y > max || z > max) {
      throw new RangeError(`${kernel.name}: grid ${x}x${y}x${z} exceeds ${max}`);
    }
    if (x === 0 || y === 0 || z === 0) return;
    const pass = this.computePass(kernel.name);
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatchCount++;
    if (this.kernelNames.length < 12 && !this.kernelNames.includes(kernel.name)) {
      this.kernelNames.push(kernel.name);
    }
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass();
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  clear(buffer: GPUBuffer, offset = 0, size?: number): void {
    this.endPass();
    this.encoder.clearBuffer(buffer, offset, size);
  }

  /** Writes the parameter arena and submits. Returns immediately (no await). */
  submit(): void {
    if (this.submitted) throw new Error("Recorder already submitted");
    this.endPass();
    if (this.queryNames.length) {
      const n = this.queryNames.length;
      this.resolveBuffer = this.gpu.device.createBuffer({
        label: "timestamps",
        size: n * 16,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      // Set s holds dispatches [s·PER_SET, ...): resolved at byte s·PER_SET·16, a multiple of 256 as required.
      this.querySets.forEach((set, s) => {
        const count = Math.min(PROFILED_PER_SET, n - s * PROFILED_PER_SET);
        this.encoder.resolveQuerySet(set, 0, 2 * count, this.resolveBuffer!, s * PROFILED_PER_SET * 16);
      });
    }
    const { queue } = this.gpu.device;
    for (const c of this.chunks) queue.writeBuffer(c.buffer, 0, c.data, 0, c.used);
    queue.submit([this.encoder.finish()]);
    this.submitted = true;
    this.gpu.activity.label = this.label;
    this.gpu.activity.kernels = this.kernelNames;
    const pool = freeChunks.get(this.gpu.device) ?? [];
    for (const c of this.chunks) pool.push(c.buffer);
    freeChunks.set(this.gpu.device, pool);
    this.chunks = [];
  }

  /** GPU time of each profiled dispatch (needs profile: true and timestamp-query). Awaits the GPU. */
  async timings(): Promise<KernelTiming[]> {
    if (!this.submitted) this.submit();
    if (!this.resolveBuffer) return [];
    const { readBuffer } = await import("./readback.ts");
    const raw = await readBuffer(this.gpu, this.resolveBuffer, 0, this.resolveBuffer.size);
    const t = new BigUint64Array(raw);
    this.resolveBuffer.destroy();
    for (const set of this.querySets) set.destroy();
    return this.queryNames.map((name, i) => ({ name, ns: Number(t[2 * i + 1] - t[2 * i]) }));
  }
}
