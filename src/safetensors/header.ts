/**
 * safetensors header: 8-byte little-endian header length, then a JSON object mapping tensor names to
 * {dtype, shape, data_offsets: [begin, end]} (offsets relative to the byte after the header), plus an
 * optional "__metadata__" string map. Every offset is validated against the file size.
 */
import { z } from "zod";

export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  U8: 1,
  I8: 1,
  BOOL: 1,
} as const;
export type Dtype = keyof typeof DTYPE_BYTES;

export const TensorInfoSchema = z.object({
  dtype: z.enum(Object.keys(DTYPE_BYTES) as [Dtype, ...Dtype[]]),
  shape: z.array(z.number().int().min(0)),
  data_offsets: z.tuple([z.number().int().min(0), z.number().int().min(0)]),
});
export type TensorInfo = z.infer<typeof TensorInfoSchema>;

export interface Header {
  /** Byte offset of the data section (8 + header length). */
  dataStart: number;
  tensors: Record<string, TensorInfo>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

/** Length of the JSON header from the first 8 bytes. */
export function headerLength(first8: Uint8Array, file: string): number {
  if (first8.byteLength < 8) {
    throw new SafetensorsError(`${file}: shorter than 8 bytes, not a safetensors file`);
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > 100_000_000n) {
    throw new SafetensorsError(`${file}: header length ${n} is implausible (corrupt file?)`);
  }
  return Number(n);
}

/** Parses and validates the header JSON. `fileSize` (when known) bounds every tensor's data range. */
export function parseHeader(json: Uint8Array, file: string, fileSize?: number): Header {
  let obj: unknown;
  try {
    obj = JSON.parse(new TextDecoder().decode(json));
  } catch (e) {
    throw new SafetensorsError(`${file}: header is not valid JSON (${(e as Error).message})`);
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) {
    throw new SafetensorsError(`${file}: header is not a JSON object`);
  }
  const dataStart = 8 + json.byteLength;
  const tensors: Record<string, TensorInfo> = {};
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(obj as Record<string, unknown>)) {
    if (name === "__metadata__") {
      const m = z.record(z.string(), z.string()).safeParse(v);
      if (!m.success) throw new SafetensorsError(`${file}: "__metadata__" must map strings to strings`);
      metadata = m.data;
      continue;
    }
    const r = TensorInfoSchema.safeParse(v);
    if (!r.success) throw new SafetensorsError(`${file}: tensor "${name}": ${r.error.issues[0].message}`);
    const t = r.data;
    const [b, e] = t.data_offsets;
    const want = t.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[t.dtype];
    if (e < b || e - b !== want) {
      throw new SafetensorsError(
        `${file}: tensor "${name}" ${t.dtype}${
          JSON.stringify(t.shape)
        } needs ${want} bytes but its offsets [${b}, ${e}] span ${e - b}`,
      );
    }
    if (fileSize !== undefined && dataStart + e > fileSize) {
      throw new SafetensorsError(
        `${file}: tensor "${name}" ends at byte ${
          dataStart + e
        } but the file has ${fileSize} bytes (truncated or corrupt)`,
      );
    }
    tensors[name] = t;
  }
  // Tensors may not share bytes (the Rust safetensors library rejects overlaps too).
  const spans = Object.entries(tensors).map(([n, t]) => [n, t.data_offsets[0], t.data_offsets[1]] as const)
    .filter(([, b, e]) => e > b)
    .sort((a, b) => a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][1] < spans[i - 1][2]) {
      throw new SafetensorsError(
        `${file}: tensors "${spans[i - 1][0]}" and "${spans[i][0]}" overlap (corrupt header)`,
      );
    }
  }
  return { dataStart, tensors, metadata };
}

/** The end of the data section: the largest tensor end offset, as an absolute file position. */
export function dataEnd(header: Header): number {
  let end = 0;
  for (const t of Object.values(header.tensors)) end = Math.max(end, t.data_offsets[1]);
  return header.dataStart + end;
}
