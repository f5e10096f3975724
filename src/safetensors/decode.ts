/** Decoding raw little-endian tensor bytes into typed arrays (F16/BF16 widen to Float32Array). */
import { bf16BitsToF32, f16BitsToF32 } from "../util/half.ts";
import type { Dtype } from "./header.ts";

export type TensorData =
  | Float32Array<ArrayBuffer>
  | Float64Array<ArrayBuffer>
  | BigInt64Array<ArrayBuffer>
  | Int32Array<ArrayBuffer>
  | Uint8Array<ArrayBuffer>
  | Int8Array<ArrayBuffer>;

export interface Tensor {
  dtype: Dtype;
  shape: number[];
  /** F16 and BF16 are widened to Float32Array; other dtypes keep their own array type. */
  data: TensorData;
}

/**
 * Copies `bytes` (any alignment) into a typed array of the dtype. With `owned`, bytes that span their whole
 * ArrayBuffer are reused without a copy (the caller gives them up).
 */
export function decodeTensor(dtype: Dtype, bytes: Uint8Array, owned = false): TensorData {
  let copy: Uint8Array<ArrayBuffer>;
  if (
    owned && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength &&
    bytes.buffer instanceof ArrayBuffer
  ) {
    copy = bytes as Uint8Array<ArrayBuffer>;
  } else {
    copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
  }
  const buf = copy.buffer;
  switch (dtype) {
    case "F32":
      return new Float32Array(buf);
    case "F64":
      return new Float64Array(buf);
    case "I64":
      return new BigInt64Array(buf);
    case "I32":
      return new Int32Array(buf);
    case "U8":
    case "BOOL":
      return copy;
    case "I8":
      return new Int8Array(buf);
    case "F16":
    case "BF16": {
      const h = new Uint16Array(buf);
      const out = new Float32Array(h.length);
      const f = dtype === "F16" ? f16BitsToF32 : bf16BitsToF32;
      for (let i = 0; i < h.length; i++) out[i] = f(h[i]);
      return out;
    }
  }
}

/** Numbers of any tensor as a Float64Array (I64 via Number()). */
export function toFloat64(t: Tensor): Float64Array {
  const out = new Float64Array(t.data.length);
  for (let i = 0; i < t.data.length; i++) out[i] = Number(t.data[i]);
  return out;
}
