/**
 * NF4 + double quant: CPU reference of bitsandbytes 0.50.1 (CUDA path), bit for bit with
 * tests/fixtures/golden/nf4.safetensors (golden README §NF4). Every step emulates float32 arithmetic with
 * Math.fround (a product or quotient of two float32 values computed in float64 and rounded once is the
 * correctly rounded float32 result).
 *
 * Layout (read as-is by the NF4 matmul kernel; produced identically by kernels/nf4_quantize.wgsl):
 * - the weight is flattened row-major and cut into blocks of 64 (a block may cross rows);
 * - `packed[k] = code[2k] << 4 | code[2k+1]`: the first element is in the high nibble (bnb
 *   `kQuantizeBlockwise`); an odd count pads the last low nibble with the code of 0.0, which is 7;
 * - `qabsmax[b]` is the 8-bit code of `absmax[b] - offset` in the signed dynamic map, scaled per 256 absmax
 *   by `absmax2[j]` (bnb `quantize_4bit(compress_statistics=True)` → `quantize_blockwise(absmax - offset,
 *   blocksize=256)`);
 * - dequant: `absmax_used = f32(f32(map[qabsmax[b]] * absmax2[b >> 2]) + offset)`,
 *   `w = f32(NF4[code] * absmax_used)` (bnb `dequantize_4bit`).
 */
import { DYNAMIC_MAP, NF4_CODE } from "./nf4_tables.ts";

export { DYNAMIC_MAP, NF4_CODE };

/** Elements per NF4 block (bnb `blocksize=64`). */
export const NF4_BLOCK = 64;
/** absmax values per double-quant block (bnb `quantize_blockwise(..., blocksize=256)`). */
export const DQ_BLOCK = 256;

export interface Nf4Tensor {
  /** Shape of the original weight (row-major). */
  shape: number[];
  /** Number of elements (product of shape). */
  n: number;
  /** ceil(n / 2) bytes, high nibble first. */
  packed: Uint8Array<ArrayBuffer>;
  /** One byte per 64-block: code of (absmax - offset) in DYNAMIC_MAP. */
  qabsmax: Uint8Array<ArrayBuffer>;
  /** One float32 per 256 64-blocks: max |absmax - offset| over those blocks. */
  absmax2: Float32Array<ArrayBuffer>;
  /** float32 mean of the raw absmax (added back after the dynamic dequant). */
  offset: number;
}

const f = Math.fround;

// dQuantizeNF4 thresholds: float32 literals (the `f` suffix in bnb's kernels.cu), midpoints between codes.
const T = new Float32Array([
  0.03979014977812767,
  0.3893125355243683,
  0.6427869200706482,
  0.8614784181118011,
  0.5016634166240692,
  0.2035212516784668,
  0.2920137718319893,
  0.1202552504837513,
  -0.33967943489551544,
  -0.13791173323988914,
  -0.045525018125772476,
  -0.23460740596055984,
  -0.6106329262256622,
  -0.4599952697753906,
  -0.8480964004993439,
]);

/**
 * bnb `dQuantizeNF4`: the decision tree with strict `>` against float32 midpoints. `x` must already be a
 * float32 value. NaN fails every comparison and ends at code 0.
 */
export function quantizeNf4Value(x: number): number {
  if (x > T[0]) {
    if (x > T[1]) {
      if (x > T[2]) return x > T[3] ? 0b1111 : 0b1110;
      return x > T[4] ? 0b1101 : 0b1100;
    }
    if (x > T[5]) return x > T[6] ? 0b1011 : 0b1010;
    return x > T[7] ? 0b1001 : 0b1000;
  }
  if (x > T[8]) {
    if (x > T[9]) return x > T[10] ? 0b0111 : 0b0110;
    return x > T[11] ? 0b0101 : 0b0100;
  }
  if (x > T[12]) return x > T[13] ? 0b0011 : 0b0010;
  return x > T[14] ? 0b0001 : 0b0000;
}

/**
 * bnb `dQuantize<0>` (deterministic): a 7-step binary search in the sorted 256-entry map starting at pivot
 * 127, then a midpoint test against the last visited neighbours. `x` must be a float32 value.
 */
export function quantizeDynamicValue(x: number, map: Float32Array = DYNAMIC_MAP): number {
  let pivot = 127;
  let upperPivot = 255;
  let lowerPivot = 0;
  let lower = -1;
  let upper = 1;
  let val = map[pivot];
  for (let i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lowerPivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upperPivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = map[pivot];
  }
  if (upperPivot === 255) upper = map[upperPivot];
  if (lowerPivot === 0) lower = map[lowerPivot];
  if (x > val) {
    const mid = f(f(upper + val) * 0.5);
    return x > mid ? upperPivot : pivot;
  }
  const mid = f(f(lower + val) * 0.5);
  return x < mid ? lowerPivot : pivot;
}

/** Raw per-64-block absmax (max |x| over the block's valid elements), float32. */
export function blockAbsmax(w: Float32Array): Float32Array<ArrayBuffer> {
  const nb = Math.ceil(w.length / NF4_BLOCK);
  const absmax = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    const end = Math.min(w.length, (b + 1) * NF4_BLOCK);
    let m = 0;
    for (let i = b * NF4_BLOCK; i < end; i++) {
      const a = Math.abs(w[i]);
      if (a > m) m = a;
    }
    absmax[b] = m;
  }
  return absmax;
}

/** The double-quant offset: mean of the raw absmax in float64, rounded to float32 (as the goldens). */
export function absmaxOffset(absmax: Float32Array): number {
  let s = 0;
  for (let i = 0; i < absmax.length; i++) s += absmax[i];
  return f(s / absmax.length);
}

/**
 * 4-bit codes (one per byte, unpacked) of `w` given its raw absmax: bnb multiplies by f32(1/absmax).
 * An all-zero block gives 0 * inf = NaN in bnb, hence code 0 for all its elements; that case is spelled
 * out here (and in the kernel) because WGSL does not guarantee NaN propagation.
 */
export function nf4Codes(w: Float32Array, absmax: Float32Array): Uint8Array<ArrayBuffer> {
  const codes = new Uint8Array(w.length);
  for (let b = 0; b < absmax.length; b++) {
    const end = Math.min(w.length, (b + 1) * NF4_BLOCK);
    if (absmax[b] === 0) continue; // codes stay 0
    const r = f(1 / absmax[b]);
    for (let i = b * NF4_BLOCK; i < end; i++) codes[i] = quantizeNf4Value(f(w[i] * r));
  }
  return codes;
}

/**
 * Packs codes two per byte, first in the high nibble. An odd count pads the last low nibble with `padCode`:
 * bnb quantizes the missing element as 0.0, i.e. code 7, or code 0 when the last block is all zeros.
 */
export function packNibbles(codes: Uint8Array, padCode = 7): Uint8Array<ArrayBuffer> {
  const n = codes.length;
  const packed = new Uint8Array((n + 1) >> 1);
  for (let k = 0; k < packed.length; k++) {
    const lo = 2 * k + 1 < n ? codes[2 * k + 1] : padCode;
    packed[k] = (codes[2 * k] << 4) | lo;
  }
  return packed;
}

/** Unpacks `n` codes from packed nibbles (high nibble first). */
export function unpackNibbles(packed: Uint8Array, n: number): Uint8Array<ArrayBuffer> {
  const codes = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const byte = packed[i >> 1];
    codes[i] = i & 1 ? byte & 15 : byte >> 4;
  }
  return codes;
}

/**
 * Double quant of the raw absmax: `quantize_blockwise(absmax - offset, code=DYNAMIC_MAP, blocksize=256)`.
 * `offset` defaults to {@link absmaxOffset}; the GPU path passes the same value so both agree exactly.
 */
export function doubleQuantize(
  absmax: Float32Array,
  offset = absmaxOffset(absmax),
): { qabsmax: Uint8Array<ArrayBuffer>; absmax2: Float32Array<ArrayBuffer>; offset: number } {
  const nb = absmax.length;
  const c = new Float32Array(nb);
  for (let i = 0; i < nb; i++) c[i] = absmax[i] - offset; // stored as float32: f32(a - offset)
  const nb2 = Math.ceil(nb / DQ_BLOCK);
  const absmax2 = new Float32Array(nb2);
  const qabsmax = new Uint8Array(nb);
  for (let j = 0; j < nb2; j++) {
    const end = Math.min(nb, (j + 1) * DQ_BLOCK);
    let m = 0;
    for (let i = j * DQ_BLOCK; i < end; i++) m = Math.max(m, Math.abs(c[i]));
    absmax2[j] = m;
    const r = f(1 / absmax2[j]);
    for (let i = j * DQ_BLOCK; i < end; i++) qabsmax[i] = quantizeDynamicValue(f(c[i] * r));
  }
  return { qabsmax, absmax2, offset };
}

/** NF4 + double quant of a float32 weight (bnb `quantize_4bit(w, blocksize=64, quant_type="nf4",
 * compress_statistics=True)`). `shape` is kept for the consumer; its product must equal `w.length`. */
export function quantizeNf4(w: Float32Array, shape: number[], offset?: number): Nf4Tensor {
  const n = shape.reduce((a, d) => a * d, 1);
  if (n !== w.length) {
    throw new Error(`quantizeNf4: shape ${JSON.stringify(shape)} has ${n} elements, data ${w.length}`);
  }
  if (n === 0) throw new Error("quantizeNf4: empty tensor");
  const absmax = blockAbsmax(w);
  const packed = packNibbles(nf4Codes(w, absmax), absmax[absmax.length - 1] === 0 ? 0 : 7);
  const dq = doubleQuantize(absmax, offset);
  return { shape: [...shape], n, packed, qabsmax: dq.qabsmax, absmax2: dq.absmax2, offset: dq.offset };
}

/** The absmax actually used at dequant time (README step 4): f32(f32(map[q] * absmax2) + offset). */
export function dequantizeAbsmax(t: Nf4Tensor): Float32Array<ArrayBuffer> {
  const out = new Float32Array(t.qabsmax.length);
  for (let b = 0; b < out.length; b++) {
    out[b] = f(DYNAMIC_MAP[t.qabsmax[b]] * t.absmax2[Math.floor(b / DQ_BLOCK)]) + t.offset;
  }
  return out;
}

/** Dequantized weight in float32 (bnb `dequantize_4bit` with a float32 output), row-major, `t.n` values. */
export function dequantizeNf4(t: Nf4Tensor): Float32Array<ArrayBuffer> {
  const absmax = dequantizeAbsmax(t);
  const out = new Float32Array(t.n);
  for (let i = 0; i < t.n; i++) {
    const byte = t.packed[i >> 1];
    const code = i & 1 ? byte & 15 : byte >> 4;
    out[i] = NF4_CODE[code] * absmax[Math.floor(i / NF4_BLOCK)];
  }
  return out;
}

/** Bytes an Nf4Tensor occupies (packed + qabsmax + absmax2 + offset). */
export function nf4ByteSize(t: Nf4Tensor): number {
  return t.packed.byteLength + t.qabsmax.byteLength + t.absmax2.byteLength + 4;
}

/** Checks the internal consistency of an Nf4Tensor (e.g. one read back from a cache file). */
export function validateNf4(t: Nf4Tensor, what: string): void {
  const n = t.shape.reduce((a, d) => a * d, 1);
  const nb = Math.ceil(n / NF4_BLOCK);
  const problems: string[] = [];
  if (n !== t.n) problems.push(`n ${t.n} != product of shape ${n}`);
  if (t.packed.length !== (n + 1) >> 1) {
    problems.push(`packed has ${t.packed.length} bytes, want ${(n + 1) >> 1}`);
  }
  if (t.qabsmax.length !== nb) problems.push(`qabsmax has ${t.qabsmax.length} entries, want ${nb}`);
  if (t.absmax2.length !== Math.ceil(nb / DQ_BLOCK)) {
    problems.push(`absmax2 has ${t.absmax2.length} entries, want ${Math.ceil(nb / DQ_BLOCK)}`);
  }
  if (!Number.isFinite(t.offset)) problems.push(`offset ${t.offset} is not finite`);
  if (problems.length) throw new Error(`${what}: inconsistent NF4 tensor: ${problems.join("; ")}`);
}
