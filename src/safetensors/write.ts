/**
 * Writing safetensors files that Python's `safetensors` (and so PEFT / transformers) reads: 8-byte LE header
 * length, JSON header (`__metadata__` first, string values only), padded with spaces to a multiple of 8,
 * then the tensors' bytes contiguous in header order with no gaps (the Rust loader checks this).
 *
 * `writeSafetensors` writes a whole file atomically (src/util/atomic.ts). `createSafetensorsWriter` streams
 * tensors of a layout declared up front into a temp file that is renamed into place only by `finish()`, so
 * a crash or abort never leaves a half-written file under the final name.
 */
import { basename, dirname } from "node:path";
import { removeStaleTemps, tempPattern, writeFileAtomic } from "../util/atomic.ts";
import { f32ToBf16Bits, f32ToF16Bits } from "../util/half.ts";
import { type Dtype, DTYPE_BYTES, SafetensorsError } from "./header.ts";

export type WriteData =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Int8Array
  | Uint16Array
  | number[];

/**
 * One tensor to write. `data` is converted to `dtype`: F16/BF16 from Float32Array/number[] round to
 * nearest even, or take a Uint16Array of raw bits; I64 takes a BigInt64Array or integers; a Uint8Array
 * whose length is the byte size is written as raw bytes for any dtype.
 */
export interface WriteTensor {
  dtype: Dtype;
  shape: number[];
  data: WriteData;
}

export interface TensorSpec {
  dtype: Dtype;
  shape: number[];
}

export type TensorMap = Map<string, WriteTensor> | Record<string, WriteTensor>;

function entries<T>(m: Map<string, T> | Record<string, T>): [string, T][] {
  return m instanceof Map ? [...m.entries()] : Object.entries(m);
}

function numel(shape: number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

export function byteSize(spec: TensorSpec): number {
  return numel(spec.shape) * DTYPE_BYTES[spec.dtype];
}

/** The header bytes (length prefix + padded JSON) for tensors laid out contiguously in the given order. */
export function encodeHeader(specs: [string, TensorSpec][], metadata?: Record<string, string>): Uint8Array {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new SafetensorsError(`metadata "${k}" must be a string`);
    }
    obj.__metadata__ = metadata;
  }
  let off = 0;
  for (const [name, s] of specs) {
    if (name === "__metadata__") throw new SafetensorsError(`"__metadata__" is not a valid tensor name`);
    if (name in obj) throw new SafetensorsError(`duplicate tensor name "${name}"`);
    if (!(s.dtype in DTYPE_BYTES)) throw new SafetensorsError(`tensor "${name}": unknown dtype ${s.dtype}`);
    const n = byteSize(s);
    obj[name] = { dtype: s.dtype, shape: s.shape, data_offsets: [off, off + n] };
    off += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(obj));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** The little-endian bytes of one tensor in its dtype (see WriteTensor for accepted data). */
export function tensorBytes(name: string, t: WriteTensor): Uint8Array {
  const n = numel(t.shape);
  const want = n * DTYPE_BYTES[t.dtype];
  const d = t.data;
  if (d instanceof Uint8Array && d.byteLength === want && (t.dtype !== "U8" || d.length === n)) {
    return d;
  }
  if (d.length !== n) {
    throw new SafetensorsError(
      `tensor "${name}": shape ${JSON.stringify(t.shape)} has ${n} elements, data ${d.length}`,
    );
  }
  const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (t.dtype) {
    case "F32":
      return d instanceof Float32Array ? bytesOf(d) : bytesOf(Float32Array.from(d as ArrayLike<number>));
    case "F64":
      return d instanceof Float64Array ? bytesOf(d) : bytesOf(Float64Array.from(d as ArrayLike<number>));
    case "I32":
      return d instanceof Int32Array ? bytesOf(d) : bytesOf(Int32Array.from(d as ArrayLike<number>));
    case "I64": {
      if (d instanceof BigInt64Array) return bytesOf(d);
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt(Math.trunc(Number((d as ArrayLike<number>)[i])));
      return bytesOf(out);
    }
    case "U8":
    case "BOOL":
      return Uint8Array.from(d as ArrayLike<number>);
    case "I8":
      return bytesOf(d instanceof Int8Array ? d : Int8Array.from(d as ArrayLike<number>));
    case "F16":
    case "BF16": {
      if (d instanceof Uint16Array) return bytesOf(d);
      const conv = t.dtype === "F16" ? f32ToF16Bits : f32ToBf16Bits;
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = conv(Number((d as ArrayLike<number>)[i]));
      return bytesOf(out);
    }
  }
}

/** The whole file in memory. */
export function encodeSafetensors(
  tensors: TensorMap,
  metadata?: Record<string, string>,
): Uint8Array<ArrayBuffer> {
  const list = entries(tensors);
  const header = encodeHeader(list.map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]), metadata);
  const bodies = list.map(([k, t]) => tensorBytes(k, t));
  const total = header.byteLength + bodies.reduce((a, b) => a + b.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(header, 0);
  let off = header.byteLength;
  for (const b of bodies) {
    out.set(b, off);
    off += b.byteLength;
  }
  return out;
}

/** Writes a safetensors file atomically (temp + rename). */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export interface SafetensorsStreamWriter {
  readonly path: string;
  /** Total bytes the finished file will have. */
  readonly totalBytes: number;
  /** Writes the next tensor's bytes; tensors must come in the declared order. */
  write(name: string, data: WriteData): Promise<void>;
  /** Flushes, fsyncs and renames the temp file to `path`. Throws if a declared tensor is missing. */
  finish(): Promise<void>;
  /** Removes the temp file (safe to call after finish or twice). */
  abort(): Promise<void>;
}

/** Streams a file whose layout (names, dtypes, shapes, order) is declared up front. */
export async function createSafetensorsWriter(
  path: string,
  specs: [string, TensorSpec][],
  metadata?: Record<string, string>,
): Promise<SafetensorsStreamWriter> {
  const header = encodeHeader(specs, metadata);
  await Deno.mkdir(dirname(path), { recursive: true });
  // A writer killed mid-file (Ctrl-C during a quantization, SIGKILL) left its temp: gigabytes for a model.
  await removeStaleTemps(dirname(path), tempPattern(basename(path)));
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const file = await Deno.open(tmp, { write: true, createNew: true });
  let closed = false;
  let done = false;
  let next = 0;
  const close = () => {
    if (!closed) {
      closed = true;
      file.close();
    }
  };
  const writeAll = async (bytes: Uint8Array) => {
    let off = 0;
    while (off < bytes.byteLength) off += await file.write(bytes.subarray(off));
  };
  try {
    await writeAll(header);
  } catch (e) {
    close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  const totalBytes = header.byteLength + specs.reduce((a, [, s]) => a + byteSize(s), 0);
  return {
    path,
    totalBytes,
    async write(name, data) {
      if (done || closed) throw new SafetensorsError(`${path}: write after finish/abort`);
      const spec = specs[next];
      if (!spec || spec[0] !== name) {
        throw new SafetensorsError(`${path}: expected tensor "${spec?.[0] ?? "(none)"}" next, got "${name}"`);
      }
      const bytes = tensorBytes(name, { ...spec[1], data });
      if (bytes.byteLength !== byteSize(spec[1])) {
        throw new SafetensorsError(
          `${path}: tensor "${name}" has ${bytes.byteLength} bytes, want ${byteSize(spec[1])}`,
        );
      }
      await writeAll(bytes);
      next++;
    },
    async finish() {
      if (done) return;
      if (next !== specs.length) {
        throw new SafetensorsError(`${path}: finish() after ${next} of ${specs.length} tensors`);
      }
      await file.sync();
      close();
      await Deno.rename(tmp, path);
      done = true;
    },
    async abort() {
      close();
      if (!done) await Deno.remove(tmp).catch(() => {});
      done = true;
    },
  };
}
