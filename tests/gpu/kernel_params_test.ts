// Kernel parameters as typed data (src/gpu/params.ts, src/gpu/kernel.ts, src/gpu/recorder.ts): the WGSL struct is
// generated from the TypeScript declaration, compiler errors keep the kernel file's own line numbers, and a
// dispatch with a missing, unknown or mistyped field fails naming the kernel and the field.
import assert from "node:assert/strict";
import { createBuffer } from "../../src/gpu/buffers.ts";
import { checkKernels, defineKernel, expandSource, getKernel, WgslError } from "../../src/gpu/kernel.ts";
import { encodeParams, paramsStruct } from "../../src/gpu/params.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { testGpu } from "../helpers/gpu.ts";

const SCHEMA = { n: "u32", shift: "i32", scale: "f32" } as const;

// out[i] = (f32(i) + f32(shift)) * scale for i < n.
const KERNEL = `@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < p.n) { out[gid.x] = (f32(gid.x) + f32(p.shift)) * p.scale; }
}
`;

Deno.test("params: the WGSL struct is generated from the declaration, in its order, on one line", () => {
  assert.equal(paramsStruct(SCHEMA), "struct Params { n: u32, shift: i32, scale: f32 }");
  const { code, prologueLines } = expandSource({ file: "k.wgsl", code: KERNEL, params: SCHEMA }, false);
  assert.equal(prologueLines, 1);
  assert.equal(code, "struct Params { n: u32, shift: i32, scale: f32 }\n" + KERNEL);
  const bytes = encodeParams("kernels/k.wgsl", SCHEMA, { scale: 0.5, n: 7, shift: -3 });
  assert.equal(bytes.byteLength, 16);
  const dv = new DataView(bytes.buffer);
  assert.deepEqual([dv.getUint32(0, true), dv.getInt32(4, true), dv.getFloat32(8, true)], [7, -3, 0.5]);
  assert.throws(
    () => defineKernel({ file: "old.wgsl", code: "struct Params { n: u32 }\n" + KERNEL, params: SCHEMA }),
    (e: Error) => e instanceof WgslError && /kernels\/old\.wgsl declares struct Params/.test(e.message),
  );
});

Deno.test("params: a missing, unknown or mistyped field throws naming the kernel and the field", () => {
  const where = "kernels/k.wgsl";
  const bad: [Record<string, number>, RegExp][] = [
    [{ n: 1, shift: 0 }, /^kernels\/k\.wgsl: param "scale" \(f32\) missing$/],
    [
      { n: 1, shift: 0, scale: 1, extra: 2 },
      /^kernels\/k\.wgsl: unknown param "extra" \(its Params: n, shift, scale\)$/,
    ],
    [{ n: -1, shift: 0, scale: 1 }, /param "n": a u32 in \[0, 2\^32\) expected, got -1/],
    [{ n: 1.5, shift: 0, scale: 1 }, /param "n": an integer \(u32\) expected, got 1\.5/],
    [{ n: 2 ** 32, shift: 0, scale: 1 }, /param "n": a u32/],
    [{ n: 1, shift: 0.5, scale: 1 }, /param "shift": an integer \(i32\) expected/],
    [{ n: 1, shift: 2 ** 31, scale: 1 }, /param "shift": an i32 expected/],
    [{ n: 1, shift: 0, scale: NaN }, /param "scale": a finite f32 expected, got NaN/],
    [{ n: 1, shift: 0, scale: 1e39 }, /param "scale": a finite f32 expected/],
  ];
  for (const [values, want] of bad) {
    assert.throws(
      () => encodeParams(where, SCHEMA, values),
      (e: Error) => e instanceof RangeError && want.test(e.message),
    );
  }
});

Deno.test("params: a dispatch encodes named fields and checks them; compiler errors keep the kernel's lines", async () => {
  const gpu = await testGpu();
  const spec = defineKernel({ file: "params_test.wgsl", code: KERNEL, params: SCHEMA });
  const out = createBuffer(gpu, "out", 8 * 4);
  const rec = new Recorder(gpu);
  const k = getKernel(gpu, spec);
  assert.throws(
    // @ts-expect-error: the checked field is missing from the type too
    () => rec.dispatch(k, [out], { n: 8, shift: 2 }, 1),
    /kernels\/params_test\.wgsl: param "scale" \(f32\) missing/,
  );
  assert.throws(
    () => rec.dispatch(k, [out], null, 1),
    /kernels\/params_test\.wgsl: kernel has a Params block/,
  );
  rec.dispatch(k, [out], { n: 8, shift: -2, scale: 0.5 }, 1);
  rec.submit();
  assert.deepEqual(Array.from(await readF32(gpu, out, 0, 8)), [-1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5]);

  // A uniform block without a declaration, and a declaration without a uniform block.
  assert.throws(
    () => getKernel(gpu, { file: "undeclared.wgsl", code: KERNEL }),
    /kernels\/undeclared\.wgsl has a uniform Params block but its spec declares no params/,
  );
  // Line 6 of the kernel file, below the generated struct the host prepends.
  const broken = KERNEL.replace("out[gid.x] = ", "out[gid.x] = no_such_name + ");
  getKernel(gpu, { file: "broken_params.wgsl", code: broken, params: SCHEMA });
  let message = "";
  try {
    await checkKernels(gpu);
  } catch (e) {
    message = (e as Error).message;
  }
  assert.match(message, /kernels\/broken_params\.wgsl:6:/);
});
