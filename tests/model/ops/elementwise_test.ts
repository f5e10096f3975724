import { axpy, castF16, copyF32, fill, scale } from "../../../src/model/ops/elementwise.ts";
import { createBuffer, upload } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readBuffer, readF32 } from "../../../src/gpu/readback.ts";
import { f16BitsToF32 } from "../../../src/util/half.ts";
import { expandSource } from "../../../src/gpu/kernel.ts";
import rmsnormFwdSrc from "../../../kernels/rmsnorm_fwd.wgsl" with { type: "text" };
import rmsnormBwdSrc from "../../../kernels/rmsnorm_bwd.wgsl" with { type: "text" };
import rmsnormDwSrc from "../../../kernels/rmsnorm_dw.wgsl" with { type: "text" };
import ropeSrc from "../../../kernels/rope.wgsl" with { type: "text" };
import gegluFwdSrc from "../../../kernels/geglu_fwd.wgsl" with { type: "text" };
import gegluBwdSrc from "../../../kernels/geglu_bwd.wgsl" with { type: "text" };
import embeddingSrc from "../../../kernels/embedding.wgsl" with { type: "text" };
import elementwiseSrc from "../../../kernels/elementwise.wgsl" with { type: "text" };
import { assertClose, randomArray, rng, testGpu } from "../../helpers/gpu.ts";

// Element counts: 1, 2, odd, around the 256-wide workgroup, gemma-2-2b rows (2304, 9216) times odd token counts.
const SIZES = [1, 2, 3, 255, 256, 257, 1000, 4099, 2304 * 7, 9216 * 3 + 1, 65537];

Deno.test(`axpy, scale, fill and copy vs float64 on ${SIZES.length} sizes`, async () => {
  const gpu = await testGpu();
  const rand = rng(51);
  const rec = new Recorder(gpu);
  const checks: (() => Promise<void>)[] = [];
  for (const n of SIZES) {
    const x = randomArray(n, rand, 3);
    const y = randomArray(n, rand, 2000);
    const alpha = rand() * 4 - 2;
    const yb = upload(gpu, "y", y);
    axpy(rec, upload(gpu, "x", x), yb, n, alpha);
    const sb = upload(gpu, "s", y);
    scale(rec, sb, n, alpha);
    // fill on a view: the values before the 256-byte offset and after n stay.
    const fb = upload(gpu, "f", new Float32Array(64 + n + 3).fill(5));
    fill(rec, { buffer: fb, offset: 256, size: n * 4 }, n, -0.375);
    const zb = upload(gpu, "z", y);
    fill(rec, zb, n);
    const cb = createBuffer(gpu, "c", (n + 2) * 4);
    copyF32(rec, yb, cb, n, 0, 2);
    checks.push(async () => {
      const axpyRef = Float64Array.from(y, (v, i) => v + alpha * x[i]);
      // One fused multiply-add per element: within f32 rounding of the result.
      assertClose(await readF32(gpu, yb, 0, n), axpyRef, { rel: 1e-6 }, `axpy n=${n}`);
      assertClose(
        await readF32(gpu, sb, 0, n),
        Float64Array.from(y, (v) => v * alpha),
        { rel: 1e-6 },
        `scale n=${n}`,
      );
      const f = await readF32(gpu, fb, 0, 64 + n + 3);
      const fRef = new Float32Array(64 + n + 3).fill(5).fill(-0.375, 64, 64 + n);
      assertClose(f, fRef, { abs: 0 }, `fill view n=${n}`);
      assertClose(await readF32(gpu, zb, 0, n), new Float32Array(n), { abs: 0 }, `fill zero n=${n}`);
      // copy of the axpy result, after it in queue order.
      assertClose(await readF32(gpu, cb, 8, n), axpyRef, { rel: 1e-6 }, `copy n=${n}`);
    });
  }
  rec.submit();
  for (const c of checks) await c();
});

Deno.test(`castF16 rounds to half within one ulp, saturates at ±65504, on ${SIZES.length} sizes`, async () => {
  const gpu = await testGpu();
  const rand = rng(52);
  const rec = new Recorder(gpu);
  const checks: (() => Promise<void>)[] = [];
  for (const n of SIZES) {
    const x = randomArray(n, rand, 100);
    // Special values where they fit: saturating, subnormal, tiny, exact, signed zero, largest finite half.
    const special = [70000, -1e9, 65504, 65519, 6e-6, 1e-8, -3e-5, 0.5, -0, 1 / 3, 1e-30, 2048.5];
    for (let i = 0; i < Math.min(n, special.length); i++) x[i] = special[i];
    const words = Math.ceil(n / 2);
    // One extra word after the output, which must stay untouched.
    const yb = upload(gpu, "y16", new Uint32Array(words + 1).fill(0xdeadbeef));
    castF16(rec, upload(gpu, "x", x), yb, n);
    checks.push(async () => {
      const raw = new Uint16Array(await readBuffer(gpu, yb, 0, (words + 1) * 4));
      for (let i = 0; i < n; i++) {
        const got = f16BitsToF32(raw[i]);
        const want = Math.max(-65504, Math.min(65504, x[i]));
        // WGSL lets the conversion round either way: allow one half ulp (2^-10 relative, 2^-24 subnormal).
        if (!(Math.abs(got - want) <= 2 ** -10 * Math.abs(want) + 2 ** -24)) {
          throw new Error(`cast n=${n} at ${i}: ${x[i]} -> ${got}`);
        }
      }
      if (n % 2 && raw[n] !== 0) throw new Error(`cast n=${n}: padding half is ${raw[n]}, want 0`);
      if (raw[2 * words] !== 0xbeef || raw[2 * words + 1] !== 0xdead) {
        throw new Error(`cast n=${n} wrote past its words`);
      }
    });
  }
  rec.submit();
  for (const c of checks) await c();
});

Deno.test("fill, scale and axpy over more workgroups than one grid dimension allows (folded grid)", async () => {
  const gpu = await testGpu();
  const n = gpu.limits.maxComputeWorkgroupsPerDimension * 256 + 300;
  const yb = createBuffer(gpu, "y", n * 4);
  const xb = createBuffer(gpu, "x", n * 4);
  const rec = new Recorder(gpu);
  fill(rec, { buffer: yb }, n, 3);
  fill(rec, { buffer: xb }, n, 0.25);
  scale(rec, yb, n, 2);
  axpy(rec, xb, yb, n, 4);
  rec.submit();
  const got = await readF32(gpu, yb, 0, n);
  for (let i = 0; i < n; i++) if (got[i] !== 7) throw new Error(`element ${i}: ${got[i]}, want 7`);
});

Deno.test("the f32 variants of these kernels need no shader-f16 (no half type in their source)", () => {
  const f32Variants: [string, string, Record<string, string>][] = [
    ["rmsnorm_fwd.wgsl", rmsnormFwdSrc, { Y_T: "f32" }],
    ["rmsnorm_bwd.wgsl", rmsnormBwdSrc, {}],
    ["rmsnorm_dw.wgsl", rmsnormDwSrc, {}],
    ["rope.wgsl", ropeSrc, {}],
    ["geglu_fwd.wgsl", gegluFwdSrc, { H_T: "f32" }],
    ["geglu_bwd.wgsl", gegluBwdSrc, { DG_T: "f32" }],
    ["embedding.wgsl", embeddingSrc, {}],
    ["elementwise.wgsl", elementwiseSrc, {}],
  ];
  for (const [file, code, types] of f32Variants) {
    // Throws "uses f16 but the adapter lacks shader-f16" if the word f16 appears anywhere, comments included.
    const { prologueLines } = expandSource({ file, code, types }, false);
    if (prologueLines !== 0) throw new Error(`${file}: f32 variant enables f16`);
  }
});
