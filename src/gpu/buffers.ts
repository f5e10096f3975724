/**
 * GPU buffers: labelled creation, uploads, and the BufferPool that every engine allocation goes through.
 * The pool counts live and peak bytes per kind; in plan mode (no device) it only counts, so the memory plan
 * for real shapes (`bench --plan`) comes from the same allocation sequence the engine runs.
 */
import type { Gpu } from "./device.ts";

export const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export function createBuffer(gpu: Gpu, label: string, size: number, usage = STORAGE): GPUBuffer {
  const aligned = Math.max(16, Math.ceil(size / 16) * 16);
  if (aligned > gpu.limits.maxBufferSize) {
    throw new RangeError(
      `buffer "${label}" of ${aligned} bytes exceeds maxBufferSize ${gpu.limits.maxBufferSize}`,
    );
  }
  return gpu.device.createBuffer({ label, size: aligned, usage });
}

/** A buffer initialised with `data` (padded to 16 bytes). */
export function upload(gpu: Gpu, label: string, data: ArrayBufferView, usage = STORAGE): GPUBuffer {
  const buf = createBuffer(gpu, label, data.byteLength, usage);
  let bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4) {
    // writeBuffer needs a multiple of 4 bytes: pad a copy.
    const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
    padded.set(bytes);
    bytes = padded;
  }
  gpu.device.queue.writeBuffer(buf, 0, bytes);
  return buf;
}

/** Size classes: 2^k * {1, 1.25, 1.5, 1.75} so pooled buffers waste at most 25%. */
export function sizeClass(size: number): number {
  const s = Math.max(256, size);
  const p = 2 ** Math.floor(Math.log2(s));
  for (const f of [1, 1.25, 1.5, 1.75, 2]) if (p * f >= s) return p * f;
  return 2 * p;
}

export interface PoolStats {
  liveBytes: number;
  peakBytes: number;
  /** Bytes currently held per kind (weights, lora, optimizer, activations, ...). */
  byKind: Record<string, number>;
  /** Per kind, the bytes held at the moment of the overall peak. */
  atPeak: Record<string, number>;
}

interface Entry {
  kind: string;
  size: number;
}

/** Buffers held by the engine. `gpu === null` is plan mode: nothing is allocated, only counted. */
export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private meta = new Map<GPUBuffer, Entry>();
  private live = 0;
  private peak = 0;
  private byKind: Record<string, number> = {};
  private atPeak: Record<string, number> = {};
  private planId = 0;

  constructor(readonly gpu: Gpu | null) {}

  private account(kind: string, delta: number): void {
    this.live += delta;
    this.byKind[kind] = (this.byKind[kind] ?? 0) + delta;
    if (this.live > this.peak) {
      this.peak = this.live;
      this.atPeak = { ...this.byKind };
    }
  }

  private make(label: string, size: number): GPUBuffer {
    if (this.gpu) return createBuffer(this.gpu, label, size);
    return { label: `${label}#${this.planId++}`, size } as unknown as GPUBuffer;
  }

  /** A buffer that lives as long as the model (weights, LoRA, optimizer state): exact size. */
  persistent(label: string, kind: string, size: number): GPUBuffer {
    const buf = this.make(label, size);
    this.meta.set(buf, { kind, size: Math.ceil(size / 16) * 16 });
    this.account(kind, Math.ceil(size / 16) * 16);
    return buf;
  }

  /** A transient buffer from the size-class free list. Give it back with release(). */
  acquire(label: string, kind: string, size: number): GPUBuffer {
    const cls = sizeClass(size);
    const buf = this.free.get(cls)?.pop() ?? this.make(label, cls);
    this.meta.set(buf, { kind, size: cls });
    this.account(kind, cls);
    return buf;
  }

  release(buf: GPUBuffer): void {
    const e = this.meta.get(buf);
    if (!e) throw new Error(`release of a buffer the pool does not hold (${buf.label})`);
    this.meta.delete(buf);
    this.account(e.kind, -e.size);
    const list = this.free.get(e.size) ?? [];
    list.push(buf);
    this.free.set(e.size, list);
  }

  /** Frees a persistent buffer for good. */
  destroy(buf: GPUBuffer): void {
    const e = this.meta.get(buf);
    if (e) {
      this.meta.delete(buf);
      this.account(e.kind, -e.size);
    }
    if (this.gpu) buf.destroy();
  }

  stats(): PoolStats {
    return {
      liveBytes: this.live,
      peakBytes: this.peak,
      byKind: { ...this.byKind },
      atPeak: { ...this.atPeak },
    };
  }

  /** Bytes sitting in free lists (allocated on the device but not in use). */
  cachedBytes(): number {
    let n = 0;
    for (const [cls, l] of this.free) n += cls * l.length;
    return n;
  }
}
