/**
 * Uniform parameter blocks. Kernels declare `struct Params { ... }` with 4-byte scalar fields only
 * (u32 / i32 / f32), so the host layout is just consecutive 4-byte words in declaration order.
 */
export type ParamValue = number | { f32: number } | { i32: number };

/** Encodes params: plain numbers are u32, `{f32: x}` floats, `{i32: x}` signed ints. */
export function encodeParams(values: readonly ParamValue[]): Uint8Array<ArrayBuffer> {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((values.length * 4) / 16) * 16));
  const dv = new DataView(buf);
  values.forEach((v, i) => {
    if (typeof v === "number") {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new RangeError(`param ${i}: u32 expected, got ${v}`);
      }
      dv.setUint32(i * 4, v, true);
    } else if ("f32" in v) dv.setFloat32(i * 4, v.f32, true);
    else dv.setInt32(i * 4, v.i32, true);
  });
  return new Uint8Array(buf);
}

export const f32 = (x: number): ParamValue => ({ f32: x });
export const i32 = (x: number): ParamValue => ({ i32: x });
