/**
 * kernels/lib/*.wgsl and the `// #include` mechanism of src/gpu/kernel.ts. reduce_{subgroup,workgroup}.wgsl:
 * the workgroup reductions, in both variants, against float64 sums and maxima, at workgroup sizes from one
 * subgroup to 256 invocations, with back-to-back calls (the scratch reuse the libraries' barriers protect).
 * row8_{subgroup,load}.wgsl are exercised bit for bit by the register-blocked kernels' tests
 * (tests/gpu/matmul_test.ts, tests/model/ops/linear_test.ts, both variants); here their selection. Also line
 * mapping, the cache key and the device probe.
 */
import assert from "node:assert/strict";
import {
  expandSource,
  getKernel,
  kernelKey,
  libraryVariants,
  reductionsFor,
  WgslError,
} from "../../src/gpu/kernel.ts";
import type { Gpu } from "../../src/gpu/device.ts";
import { createBuffer, upload } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import {
  chooseKernels,
  kernelChoice,
  kernelVariant,
  overrideKernels,
  settingsFromEnv,
} from "../../src/gpu/variants.ts";
import { UsageError } from "../../src/util/errors.ts";
import { assertClose, randomArray, REDUCTIONS, rng, testGpu, withReductions } from "../helpers/gpu.ts";

// Workgroup g reduces x[g·WG, (g+1)·WG) twice in a row (sum and max of x, then the sum of x² and the max of
// −x), and out holds, per invocation, what it received: all WG invocations must receive the same totals.
// `many` adds n ≤ 32 vectors: invocation i's acc[v] = x[(v·WG + i)] (over a workgroup's slice of n·WG).
const TEST_KERNEL = `
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
  const k = getKernel(gpu, {
    file: "test_reduce.wgsl",
    code: TEST_KERNEL,
    params: { n: "u32" },
    entry,
    constants: { WG },
  });
  rec.dispatch(k, [xb, out], { n }, [GROUPS, 1, 1]);
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

// row8: every invocation (lane) writes what it received, so each lane's copy is checked. Row r of X starts at
// r·ld; fetch1 doubles (a conversion applied once per element).
const ROW8_PARAMS = { K: "u32", count: "u32", ld: "u32" } as const;
const ROW8_KERNEL = `
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

struct V8 { lo: vec4f, hi: vec4f }

fn fetch1(i: u32) -> f32 {
  return 2.0 * X[i];
}

// #include row8

fn put(at: u32, v: V8) {
  for (var j = 0u; j < 4u; j++) {
    out[at + j] = v.lo[j];
    out[at + 4u + j] = v.hi[j];
  }
}

@compute @workgroup_size(8)
fn rows(@builtin(local_invocation_id) lid: vec3u, r8: Row8) {
  let rows = row_offsets(array<u32, 8>(0u, p.ld, 2u * p.ld, 3u * p.ld, 4u * p.ld, 5u * p.ld, 6u * p.ld, 7u * p.ld),
                         p.count, r8);
  for (var k = 0u; k < p.K; k++) { put((lid.x * p.K + k) * 8u, rows_at(rows, k)); }
}

@compute @workgroup_size(8)
fn row(@builtin(local_invocation_id) lid: vec3u, r8: Row8) {
  for (var k = 0u; k < p.K; k += 8u) { put(lid.x * p.K + k, fetch8(p.ld + k, r8)); }
}
`;

for (const variant of REDUCTIONS) {
  Deno.test(`row8 (${variant}): fetch8 and rows_at give every lane the same values as direct loads`, async () => {
    await withReductions(variant, async () => {
      const gpu = await testGpu();
      assert.equal(libraryVariants(gpu).row8, variant, "lavapipe's subgroups are 8 wide");
      const K = 24, ld = 40;
      const x = randomArray(8 * ld, rng(79), 5);
      const xb = upload(gpu, "x", x);
      for (const count of [1, 3, 4, 5, 8]) {
        const out = createBuffer(gpu, "out", 8 * K * 8 * 4);
        const rec = new Recorder(gpu);
        const k = getKernel(gpu, {
          file: "test_row8.wgsl",
          code: ROW8_KERNEL,
          params: ROW8_PARAMS,
          entry: "rows",
        });
        rec.dispatch(k, [xb, out], { K, count, ld }, [1, 1, 1]);
        rec.submit();
        const got = await readF32(gpu, out, 0, 8 * K * 8);
        for (let lane = 0; lane < 8; lane++) {
          for (let kk = 0; kk < K; kk++) {
            for (let m = 0; m < 8; m++) {
              const want = 2 * x[Math.min(m, count - 1) * ld + kk];
              assert.equal(
                got[(lane * K + kk) * 8 + m],
                want,
                `rows_at: count ${count} lane ${lane} k ${kk} m ${m}`,
              );
            }
          }
        }
        out.destroy();
      }
      const out = createBuffer(gpu, "out", 8 * K * 4);
      const rec = new Recorder(gpu);
      const k = getKernel(gpu, {
        file: "test_row8.wgsl",
        code: ROW8_KERNEL,
        params: ROW8_PARAMS,
        entry: "row",
      });
      rec.dispatch(k, [xb, out], { K, count: 1, ld }, [1, 1, 1]);
      rec.submit();
      const got = await readF32(gpu, out, 0, 8 * K);
      for (let lane = 0; lane < 8; lane++) {
        for (let kk = 0; kk < K; kk++) {
          assert.equal(got[lane * K + kk], 2 * x[ld + kk], `fetch8: lane ${lane} k ${kk}`);
        }
      }
      out.destroy();
      xb.destroy();
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

Deno.test("libraryVariants: row8 needs subgroups at least 8 wide, reduce any; fallback reductions turn both off", async () => {
  const real = await testGpu();
  // Hand-built devices resolve their variants on first use (MAIEUTIC_SUBGROUPS unset or 0 in the test run).
  const gpu = (sizes: { min: number; max: number } | null, subgroups = true) => {
    const g = { ...real, subgroups, subgroupSizes: sizes } as Gpu;
    overrideKernels(g, { reductions: subgroups ? "subgroup" : "workgroup" });
    return g;
  };
  assert.deepEqual(libraryVariants(gpu({ min: 8, max: 8 })), { reduce: "subgroup", row8: "subgroup" });
  assert.deepEqual(libraryVariants(gpu({ min: 32, max: 64 })), { reduce: "subgroup", row8: "subgroup" });
  assert.deepEqual(libraryVariants(gpu({ min: 4, max: 32 })), { reduce: "subgroup", row8: "workgroup" });
  assert.deepEqual(libraryVariants(gpu(null)), { reduce: "subgroup", row8: "workgroup" });
  assert.deepEqual(libraryVariants(gpu(null, false)), { reduce: "workgroup", row8: "workgroup" });
  const off = gpu({ min: 8, max: 8 });
  overrideKernels(off, { reductions: "workgroup" });
  assert.deepEqual(libraryVariants(off), { reduce: "workgroup", row8: "workgroup" });
  const kernel = "// #include row8\n// #include reduce\n";
  const both = expandSource({ file: "k.wgsl", code: kernel }, false, {
    reduce: "subgroup",
    row8: "workgroup",
  });
  assert.deepEqual(both.libraries.map((l) => l.file), ["lib/row8_load.wgsl", "lib/reduce_subgroup.wgsl"]);
  assert.ok(both.code.includes("fn rows_at(") && both.code.includes("fn wg_sum("));
  assert.equal(
    kernelKey({ file: "k.wgsl", code: kernel }, { reduce: "subgroup", row8: "workgroup" }),
    "k.wgsl#main{}<>[row8=workgroup,reduce=subgroup]",
  );
});

Deno.test("kernel variants: MAIEUTIC_SUBGROUPS / MAIEUTIC_KERNELS read once at open, overrides, and the cache key", async () => {
  const withSub = { subgroups: true, isSoftware: false };
  const without = { subgroups: false, isSoftware: true };
  assert.deepEqual(chooseKernels(withSub, {}), {
    family: "tiled",
    familyFrom: "adapter",
    reductions: "subgroup",
  });
  assert.deepEqual(chooseKernels(without, {}), {
    family: "regblock",
    familyFrom: "adapter",
    reductions: "workgroup",
  });
  assert.equal(chooseKernels(withSub, { subgroups: "0" }).reductions, "workgroup");
  assert.equal(chooseKernels(withSub, { subgroups: "1" }).reductions, "subgroup");
  assert.deepEqual(chooseKernels(withSub, { kernels: "regblock" }), {
    family: "regblock",
    familyFrom: "MAIEUTIC_KERNELS",
    reductions: "subgroup",
  });
  assert.throws(
    () => chooseKernels(without, { subgroups: "1" }),
    (e: Error) => e instanceof UsageError && e.message.includes("unset it (or set 0)"),
  );
  // The environment is not read per dispatch: a change after the device resolved its variants is ignored.
  const gpu = await testGpu();
  const before = kernelChoice(gpu);
  const prev = Deno.env.get("MAIEUTIC_KERNELS");
  try {
    Deno.env.set("MAIEUTIC_KERNELS", before.family === "tiled" ? "regblock" : "tiled");
    assert.deepEqual(kernelChoice(gpu), before);
    assert.equal(kernelVariant(gpu), before.family);
    Deno.env.set("MAIEUTIC_KERNELS", "fast");
    assert.throws(
      () => settingsFromEnv(),
      (e: Error) => e instanceof UsageError && /"tiled" or "regblock"/.test(e.message),
    );
  } finally {
    if (prev === undefined) Deno.env.delete("MAIEUTIC_KERNELS");
    else Deno.env.set("MAIEUTIC_KERNELS", prev);
  }
  // overrideKernels switches an open device until restored; a call's `kernels` option still wins.
  const restore = overrideKernels(gpu, {
    family: before.family === "tiled" ? "regblock" : "tiled",
    reductions: "workgroup",
  });
  assert.notEqual(kernelVariant(gpu), before.family);
  assert.equal(kernelVariant(gpu, before.family), before.family);
  assert.equal(reductionsFor(gpu), "workgroup");
  restore();
  assert.deepEqual(kernelChoice(gpu), before);
  if (!gpu.subgroups) assert.throws(() => overrideKernels(gpu, { reductions: "subgroup" }), UsageError);
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
