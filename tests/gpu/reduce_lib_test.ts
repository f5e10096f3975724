/**
 * kernels/lib/reduce_{subgroup,workgroup}.wgsl: the workgroup reductions that `// #include reduce` kernels
 * share, in both variants, against float64 sums and maxima, at workgroup sizes from one subgroup to 256
 * invocations, with back-to-back calls (the scratch reuse the libraries' barriers protect). Also the include
 * mechanism of src/gpu/kernel.ts (line mapping, variant choice, the cache key) and the device probe.
 */
import assert from "node:assert/strict";
import { expandSource, getKernel, kernelKey, reductionsFor, WgslError } from "../../src/gpu/kernel.ts";
import type { Gpu } from "../../src/gpu/device.ts";
import { createBuffer, upload } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { assertClose, randomArray, REDUCTIONS, rng, testGpu, withReductions } from "../helpers/gpu.ts";

// Workgroup g reduces x[g·WG, (g+1)·WG) twice in a row (sum and max of x, then the sum of x² and the max of
// −x), and out holds, per invocation, what it received: all WG invocations must receive the same totals.
// `many` adds n ≤ 32 vectors: invocation i's acc[v] = x[(v·WG + i)] (over a workgroup's slice of n·WG).
const TEST_KERNEL = `
struct Params { n: u32 }
override WG: u32 = 64u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// #include reduce

@compute @workgroup_size(WG)
fn one(@builtin(workgroup_id) wg: vec3u, lanes: Lanes) {
  let v = x[wg.x * WG + lanes.li] * f32(p.n); // n = 1 (the Params block must be used)
  let s = wg_sum(v, lanes);
  let m = wg_max(v, lanes);
  let s2 = wg_sum(v * v, lanes);
  let m2 = wg_max(-v, lanes);
  let o = (wg.x * WG + lanes.li) * 4u;
  out[o] = s;
  out[o + 1u] = m;
  out[o + 2u] = s2;
  out[o + 3u] = m2;
}

@compute @workgroup_size(WG)
fn many(@builtin(workgroup_id) wg: vec3u, lanes: Lanes) {
  var acc: array<f32, 32>;
  for (var v = 0u; v < p.n; v++) { acc[v] = x[wg.x * p.n * WG + v * WG + lanes.li]; }
  let first = wg_sum_n(&acc, p.n, lanes);
  for (var v = 0u; v < p.n; v++) { acc[v] = 2.0 * acc[v]; }
  let second = wg_sum_n(&acc, p.n, lanes);
  out[(wg.x * WG + lanes.li) * 2u] = first;
  out[(wg.x * WG + lanes.li) * 2u + 1u] = second;
}
`;

const WGS = [8, 32, 64, 256];
const GROUPS = 3;

/** Runs one entry of TEST_KERNEL on GROUPS workgroups of WG and reads `perInvocation` floats per invocation. */
async function runTestKernel(
  gpu: Gpu,
  entry: "one" | "many",
  WG: number,
  n: number,
  x: Float32Array<ArrayBuffer>,
  perInvocation: number,
): Promise<Float32Array> {
  const xb = upload(gpu, "x", x);
  const out = createBuffer(gpu, "out", GROUPS * WG * perInvocation * 4);
  const rec = new Recorder(gpu);
  const k = getKernel(gpu, { file: "test_reduce.wgsl", code: TEST_KERNEL, entry, constants: { WG } });
  rec.dispatch(k, [xb, out], [n], [GROUPS, 1, 1]);
  rec.submit();
  try {
    return await readF32(gpu, out, 0, GROUPS * WG * perInvocation);
  } finally {
    xb.destroy();
    out.destroy();
  }
}

for (const variant of REDUCTIONS) {
  Deno.test(`wg_sum and wg_max (${variant}) vs float64 at WG = ${WGS.join(", ")}, calls back to back`, async () => {
    await withReductions(variant, async () => {
      const gpu = await testGpu();
      const rand = rng(77);
      for (const WG of WGS) {
        const x = randomArray(GROUPS * WG, rand, 3);
        const got = await runTestKernel(gpu, "one", WG, 1, x, 4);
        for (let g = 0; g < GROUPS; g++) {
          let s = 0, s2 = 0, m = -Infinity, m2 = -Infinity;
          for (let i = 0; i < WG; i++) {
            const v = x[g * WG + i];
            s += v;
            s2 += v * v;
            m = Math.max(m, v);
            m2 = Math.max(m2, -v);
          }
          for (let i = 0; i < WG; i++) {
            const o = (g * WG + i) * 4;
            const at = `WG ${WG}, group ${g}, invocation ${i}`;
            assertClose([got[o], got[o + 2]], [s, s2], { abs: 1e-5 * WG * 9 }, `${at}: sums`);
            assert.deepEqual(got[o + 1], m, `${at}: max`);
            assert.deepEqual(got[o + 3], m2, `${at}: max of -x`);
          }
        }
      }
    });
  });

  Deno.test(`wg_sum_n (${variant}) vs float64 for n = 1, 5, 32 at WG = ${WGS.join(", ")}`, async () => {
    await withReductions(variant, async () => {
      const gpu = await testGpu();
      const rand = rng(78);
      for (const WG of WGS) {
        for (const n of [1, 5, 32]) {
          const x = randomArray(GROUPS * n * WG, rand, 2);
          const got = await runTestKernel(gpu, "many", WG, n, x, 2);
          for (let g = 0; g < GROUPS; g++) {
            for (let i = 0; i < WG; i++) {
              let want = 0;
              if (i < n) { for (let j = 0; j < WG; j++) want += x[g * n * WG + i * WG + j]; }
              const o = (g * WG + i) * 2;
              assertClose(
                [got[o], got[o + 1]],
                [want, 2 * want],
                { abs: 1e-5 * WG * 4 },
                `WG ${WG}, n ${n}, group ${g}, invocation ${i}`,
              );
            }
          }
        }
      }
    });
  });
}

Deno.test("`// #include reduce` appends the variant's library after the kernel; errors keep the kernel's lines", async () => {
  const kernel = "// a kernel\n// #include reduce\n@compute @workgroup_size(WG) fn main(lanes: Lanes) {}\n";
  for (const variant of REDUCTIONS) {
    const { code, libraries } = expandSource({ file: "k.wgsl", code: kernel }, false, variant);
    assert(code.startsWith(kernel), "the kernel's own lines come first, unchanged");
    assert.deepEqual(libraries, [{ file: `lib/reduce_${variant}.wgsl`, firstLine: 4 }]);
    assert.ok(code.includes("fn wg_sum_n("), `${code}`);
    assert.deepEqual(code.includes("subgroupAdd("), variant === "subgroup");
  }
  assert.throws(
    () => expandSource({ file: "k.wgsl", code: "// #include nothing\n" }, false, "workgroup"),
    (e: Error) =>
      e instanceof WgslError && e.message === 'kernels/k.wgsl: unknown library "// #include nothing"',
  );
  // A broken kernel that includes the library: the compiler's line is the kernel file's own.
  const gpu = await testGpu();
  const { checkKernels } = await import("../../src/gpu/kernel.ts");
  const broken = "override WG: u32 = 64u;\n// #include reduce\n\n@compute @workgroup_size(WG)\n" +
    "fn main(lanes: Lanes) { let a: f32 = no_such_name; }\n";
  getKernel(gpu, { file: "broken_reduce.wgsl", code: broken });
  let message = "";
  try {
    await checkKernels(gpu);
  } catch (e) {
    message = (e as Error).message;
  }
  assert.ok(message.includes("kernels/broken_reduce.wgsl:5:"), `${message}`);
});

Deno.test("reductionsFor: MAIEUTIC_SUBGROUPS=0 / 1 / unset, and the cache key names the variant", async () => {
  await testGpu(); // opened before the environment changes
  const withSub = { subgroups: true } as Gpu;
  const without = { subgroups: false } as Gpu;
  const prev = Deno.env.get("MAIEUTIC_SUBGROUPS");
  try {
    Deno.env.delete("MAIEUTIC_SUBGROUPS");
    assert.deepEqual(reductionsFor(withSub), "subgroup");
    assert.deepEqual(reductionsFor(without), "workgroup");
    Deno.env.set("MAIEUTIC_SUBGROUPS", "0");
    assert.deepEqual(reductionsFor(withSub), "workgroup");
    Deno.env.set("MAIEUTIC_SUBGROUPS", "1");
    assert.deepEqual(reductionsFor(withSub), "subgroup");
    assert.throws(
      () => reductionsFor(without),
      (e: Error) => e instanceof WgslError && e.message.includes("unset it (or set 0)"),
    );
    Deno.env.set("MAIEUTIC_SUBGROUPS", "yes");
    assert.throws(
      () => reductionsFor(withSub),
      (e: Error) => e instanceof Error && e.message.includes("set it to 0"),
    );
  } finally {
    if (prev === undefined) Deno.env.delete("MAIEUTIC_SUBGROUPS");
    else Deno.env.set("MAIEUTIC_SUBGROUPS", prev);
  }
  const spec = { file: "k.wgsl", code: "// #include reduce\n" };
  assert(kernelKey(spec, "subgroup") !== kernelKey(spec, "workgroup"));
  assert.deepEqual(
    kernelKey({ file: "k.wgsl", code: "" }, "subgroup"),
    kernelKey({ file: "k.wgsl", code: "" }),
  );
});

Deno.test("the device has `subgroups` whenever the adapter grants it (Deno does not list it in adapter.features)", async () => {
  const gpu = await testGpu();
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("no adapter");
  let grantable = false;
  try {
    const d = await adapter.requestDevice({ requiredFeatures: ["subgroups" as GPUFeatureName] });
    grantable = d.features.has("subgroups" as GPUFeatureName);
    d.destroy();
  } catch {
    grantable = false;
  }
  if (Deno.env.get("MAIEUTIC_SUBGROUPS") !== "0") assert.deepEqual(gpu.subgroups, grantable);
  if (gpu.subgroups) {
    assert(gpu.subgroupSizes === null || gpu.subgroupSizes.min >= 1, "subgroup sizes are positive");
  }
});
