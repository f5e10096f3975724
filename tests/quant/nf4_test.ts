import assert from "node:assert/strict";
import { readSafetensorsFile } from "../../src/safetensors/read_file.ts";
import type { Tensor } from "../../src/safetensors/decode.ts";
import {
  blockAbsmax,
  dequantizeAbsmax,
  dequantizeNf4,
  DYNAMIC_MAP,
  NF4_CODE,
  nf4Codes,
  type Nf4Tensor,
  quantizeDynamicValue,
  quantizeNf4,
  quantizeNf4Value,
  unpackNibbles,
  validateNf4,
} from "../../src/quant/nf4.ts";
import { f32ToBf16Bits } from "../../src/util/half.ts";

const GOLDEN = new URL("../fixtures/golden/", import.meta.url);
const MATRICES = ["gate_proj_l0", "odd_100x170", "tiny_7x13"];

const golden = await readSafetensorsFile(new URL("nf4.safetensors", GOLDEN).pathname);
const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", GOLDEN)));

function g(name: string): Tensor {
  const t = golden.tensors.get(name);
  if (!t) throw new Error(`golden tensor ${name} missing`);
  return t;
}

/** Bitwise equality of two float arrays (so -0 vs 0 and NaN payloads count). */
function assertBitsEqual(actual: Float32Array, expected: Float32Array, what: string) {
  assert.deepEqual(actual.length, expected.length, `${what}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      if (first < 0) first = i;
      bad++;
    }
  }
  assert(
    bad === 0,
    `${what}: ${bad} of ${a.length} differ, first at ${first}: ${actual[first]} vs ${expected[first]}`,
  );
}

function assertBytesEqual(actual: Uint8Array, expected: Uint8Array, what: string) {
  assert.deepEqual(actual.length, expected.length, `${what}: length`);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      if (first < 0) first = i;
      bad++;
    }
  }
  assert(
    bad === 0,
    `${what}: ${bad} of ${actual.length} differ, first at ${first}: ${actual[first]} vs ${expected[first]}`,
  );
}

Deno.test("nf4: tables equal the manifest", () => {
  assert.deepEqual(NF4_CODE.length, 16);
  assert.deepEqual(DYNAMIC_MAP.length, 256);
  assertBitsEqual(NF4_CODE, new Float32Array(manifest.nf4.nf4_code_16), "NF4_CODE");
  assertBitsEqual(DYNAMIC_MAP, new Float32Array(manifest.nf4.dynamic_map_256), "DYNAMIC_MAP");
  for (let i = 1; i < 256; i++) assert(DYNAMIC_MAP[i] > DYNAMIC_MAP[i - 1], "map sorted");
});

for (const m of MATRICES) {
  Deno.test(`nf4: ${m} bit-exact with bitsandbytes (codes, packed, absmax, double quant, dequant)`, () => {
    const w = g(`${m}.weight`);
    const info = manifest.nf4.matrices[m];
    assert.deepEqual(w.shape, info.shape);
    const wf = w.data as Float32Array;
    // raw absmax and unpacked codes
    assertBitsEqual(blockAbsmax(wf), g(`${m}.absmax`).data as Float32Array, `${m}.absmax`);
    assertBytesEqual(nf4Codes(wf, blockAbsmax(wf)), g(`${m}.codes`).data as Uint8Array, `${m}.codes`);

    const t = quantizeNf4(wf, w.shape);
    validateNf4(t, m);
    assert.deepEqual(t.n, info.numel);
    assert.deepEqual(t.packed.length, info.packed_bytes);
    assertBytesEqual(t.packed, g(`${m}.packed`).data as Uint8Array, `${m}.packed`);
    assertBytesEqual(t.qabsmax, g(`${m}.qabsmax`).data as Uint8Array, `${m}.qabsmax`);
    assertBitsEqual(t.absmax2, g(`${m}.absmax2`).data as Float32Array, `${m}.absmax2`);
    assert.deepEqual(t.offset, (g(`${m}.offset`).data as Float32Array)[0], `${m}.offset`);
    assertBitsEqual(
      dequantizeAbsmax(t),
      g(`${m}.absmax_dequant`).data as Float32Array,
      `${m}.absmax_dequant`,
    );
    const dq = dequantizeNf4(t);
    assertBitsEqual(dq, g(`${m}.dequant`).data as Float32Array, `${m}.dequant`);
    // bf16 storage of the dequant is the RNE of the float32 product
    const bf = g(`${m}.dequant_bf16`).data as Float32Array;
    const rounded = new Float32Array(dq.length);
    const u = new Uint32Array(rounded.buffer);
    for (let i = 0; i < dq.length; i++) u[i] = f32ToBf16Bits(dq[i]) << 16;
    assertBitsEqual(rounded, bf, `${m}.dequant_bf16`);
    // unpacking gives the golden codes back; the odd tail pads with code 7
    assertBytesEqual(unpackNibbles(t.packed, t.n), g(`${m}.codes`).data as Uint8Array, `${m}.unpack`);
    if (t.n % 2) {
      assert.deepEqual(t.packed[t.packed.length - 1] & 15, 7, "odd padding nibble is code 7 (0.0)");
    }
  });
}

Deno.test("nf4: no-double-quant dequant matches golden (NF4 * raw absmax)", () => {
  for (const m of MATRICES) {
    const wf = g(`${m}.weight`).data as Float32Array;
    const absmax = blockAbsmax(wf);
    const codes = nf4Codes(wf, absmax);
    const out = new Float32Array(wf.length);
    for (let i = 0; i < wf.length; i++) out[i] = NF4_CODE[codes[i]] * absmax[Math.floor(i / 64)];
    assertBitsEqual(
      out,
      g(`${m}.dequant_no_double_quant`).data as Float32Array,
      `${m}.dequant_no_double_quant`,
    );
  }
});

Deno.test("nf4: decision tree uses strict > at float32 midpoints; NaN gives code 0", () => {
  // exactly on a threshold goes to the lower code
  assert.deepEqual(quantizeNf4Value(Math.fround(0.03979014977812767)), 7);
  assert.deepEqual(quantizeNf4Value(Math.fround(0.8614784181118011)), 14);
  assert.deepEqual(quantizeNf4Value(1), 15);
  assert.deepEqual(quantizeNf4Value(-1), 0);
  assert.deepEqual(quantizeNf4Value(0), 7);
  assert.deepEqual(quantizeNf4Value(NaN), 0);
  // every code value maps to itself
  for (let c = 0; c < 16; c++) assert.deepEqual(quantizeNf4Value(NF4_CODE[c]), c);
  // all-zero block: 0 * (1/0) = NaN -> code 0 (bnb behaviour, dequantises to -0.0)
  const t = quantizeNf4(new Float32Array(64), [64]);
  assert.deepEqual(t.packed[0], 0);
});

Deno.test("nf4: dynamic binary search maps every table entry to itself", () => {
  for (let i = 0; i < 256; i++) assert.deepEqual(quantizeDynamicValue(DYNAMIC_MAP[i]), i, `entry ${i}`);
  assert.deepEqual(quantizeDynamicValue(1), 255);
  assert.deepEqual(quantizeDynamicValue(-1), 0);
});

Deno.test("nf4: dequant -> requant is stable (codes unchanged, values fixed point)", () => {
  for (const m of MATRICES) {
    const w = g(`${m}.weight`);
    const t1 = quantizeNf4(w.data as Float32Array, w.shape);
    const d1 = dequantizeNf4(t1);
    const t2 = quantizeNf4(d1, w.shape);
    const d2 = dequantizeNf4(t2);
    // The per-block absmax of d1 is |±1 * absmax_used|, so the codes survive requantization.
    assertBytesEqual(t2.packed, t1.packed, `${m}: requant packed`);
    let maxAbs = 0;
    let ref = 0;
    for (let i = 0; i < d1.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(d2[i] - d1[i]));
      ref = Math.max(ref, Math.abs(d1[i]));
    }
    // Only the double-quantized absmax may move by a step of the 8-bit map.
    assert(maxAbs <= ref * 0.02, `${m}: requant drift ${maxAbs} vs scale ${ref}`);
  }
});

Deno.test("nf4: shape mismatch is rejected and validateNf4 catches inconsistent tensors", () => {
  assert.throws(() => quantizeNf4(new Float32Array(10), [3, 3]), /9 elements/);
  const t = quantizeNf4(new Float32Array(130).fill(0.5), [10, 13]);
  const bad: Nf4Tensor = { ...t, packed: t.packed.subarray(0, 10) };
  assert.throws(() => validateNf4(bad, "x"), /packed has 10 bytes/);
});
