/**
 * Streaming safetensors reader over any ByteSource (local file, HTTP range, memory): the header is read and
 * validated first (every tensor's range must lie inside the source), then tensors are read one at a time,
 * each with exactly one read of its own bytes. The whole file is never held in memory.
 */
import { type Header, headerLength, parseHeader, SafetensorsError, type TensorInfo } from "./header.ts";
import { decodeTensor, type Tensor } from "./decode.ts";
import type { ByteSource } from "./source.ts";

export interface SafetensorsReader {
  readonly source: ByteSource;
  readonly header: Header;
  /** Size of the source in bytes. */
  readonly size: number;
  /** Tensor names in the order of their data in the file (the order streaming reads them). */
  names(): string[];
  info(name: string): TensorInfo;
  /** The raw little-endian bytes of one tensor. */
  readRaw(name: string): Promise<Uint8Array<ArrayBuffer>>;
  /** One decoded tensor (F16/BF16 widened to Float32Array). */
  readTensor(name: string): Promise<Tensor>;
  /**
   * Streams tensors in file order (or the order of `names`), decoded. At most `prefetch` reads run ahead of
   * the consumer (default 1), so memory stays at a few tensors while network and compute overlap.
   */
  tensors(opts?: { names?: string[]; prefetch?: number }): AsyncGenerator<[string, Tensor]>;
  close(): void;
}

/** Reads and validates the header of `source`. Throws SafetensorsError naming the source on any problem. */
export async function openSafetensors(source: ByteSource): Promise<SafetensorsReader> {
  const size = await source.size();
  if (size < 8) throw new SafetensorsError(`${source.name}: ${size} bytes, too short for a safetensors file`);
  const n = headerLength(await source.read(0, 8), source.name);
  if (8 + n > size) {
    throw new SafetensorsError(
      `${source.name}: header of ${n} bytes exceeds the file size ${size} (truncated?)`,
    );
  }
  const header = parseHeader(await source.read(8, n), source.name, size);
  return new Reader(source, header, size);
}

class Reader implements SafetensorsReader {
  constructor(readonly source: ByteSource, readonly header: Header, readonly size: number) {}

  names(): string[] {
    return Object.entries(this.header.tensors)
      .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0] || (a[0] < b[0] ? -1 : 1))
      .map(([k]) => k);
  }

  info(name: string): TensorInfo {
    const info = this.header.tensors[name];
    if (!info) throw new SafetensorsError(`${this.source.name}: no tensor named "${name}"`);
    return info;
  }

  readRaw(name: string): Promise<Uint8Array<ArrayBuffer>> {
    const [b, e] = this.info(name).data_offsets;
    return this.source.read(this.header.dataStart + b, e - b);
  }

  async readTensor(name: string): Promise<Tensor> {
    const info = this.info(name);
    const raw = await this.readRaw(name);
    return { dtype: info.dtype, shape: info.shape, data: decodeTensor(info.dtype, raw, true) };
  }

  async *tensors(opts: { names?: string[]; prefetch?: number } = {}): AsyncGenerator<[string, Tensor]> {
    const names = opts.names ?? this.names();
    for (const n of names) this.info(n);
    const depth = Math.max(0, opts.prefetch ?? 1);
    const pending: Promise<Uint8Array<ArrayBuffer>>[] = [];
    let next = 0;
    const fill = () => {
      while (next < names.length && pending.length <= depth) {
        const p = this.readRaw(names[next++]);
        p.catch(() => {}); // surfaced when awaited below; avoid an unhandled rejection meanwhile
        pending.push(p);
      }
    };
    for (let i = 0; i < names.length; i++) {
      fill();
      const raw = await pending.shift()!;
      fill();
      const info = this.header.tensors[names[i]];
      yield [names[i], { dtype: info.dtype, shape: info.shape, data: decodeTensor(info.dtype, raw, true) }];
    }
  }

  close(): void {
    this.source.close();
  }
}
