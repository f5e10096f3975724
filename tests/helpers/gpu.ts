/**
 * Test helpers for kernels. `testGpu()` fails (never skips) when WebGPU is missing, with the install hint.
 */
import { getGpu, type Gpu, INSTALL_HINT } from "../../src/gpu/device.ts";
import { overrideKernels } from "../../src/gpu/variants.ts";
import { mulberry32 } from "../../src/util/random.ts";

export async function testGpu(): Promise<Gpu> {
  try {
    return await getGpu();
  } catch (e) {
    throw new Error(
      `WebGPU is unavailable, so kernel tests cannot run. ${INSTALL_HINT}\n(cause: ${(e as Error).message})`,
    );
  }
}

/**
 * Operand types to test on this device: f32, and f16 where the device has shader-f16. MAIEUTIC_F16=0 (and a
 * GL adapter) run the f32 kernels only; `f16Only` asserts there that the f16 path is refused clearly.
 */
export function computeTypes(gpu: Gpu): ("f32" | "f16")[] {
  return gpu.f16 ? ["f32", "f16"] : ["f32"];
}

/**
 * The body of an f16 test. With shader-f16 it runs; without (MAIEUTIC_F16=0, GL adapters) the same body must
 * fail with the refusal that names shader-f16, never compute garbage or hang, so the test still asserts.
 */
export async function f16Only(gpu: Gpu, body: () => Promise<void> | void): Promise<void> {
  if (gpu.f16) return await body();
  let error: unknown = null;
  try {
    await body();
  } catch (e) {
    error = e;
  }
  if (!(error instanceof Error) || !/shader-f16/.test(error.message)) {
    throw new Error(`without shader-f16 the f16 path must be refused naming it; got ${error}`);
  }
}

/** The two variants of `// #include reduce` kernels (kernels/lib/reduce_*.wgsl). */
export const REDUCTIONS = ["subgroup", "workgroup"] as const;
export type ReductionsVariant = (typeof REDUCTIONS)[number];

/**
 * Runs fn with the kernels' reductions switched to one variant on the test device (overrideKernels,
 * src/gpu/variants.ts; the kernel cache is keyed by variant). The subgroup variant fails (never skips) on a
 * device without the `subgroups` feature.
 */
export async function withReductions<T>(variant: ReductionsVariant, fn: () => Promise<T>): Promise<T> {
  const restore = overrideKernels(await testGpu(), { reductions: variant });
  try {
    return await fn();
  } finally {
    restore();
  }
}

/** Registers one Deno.test per reductions variant, named `<name> [<variant> reductions]`. */
export function testReductions(name: string, fn: () => Promise<void>): void {
  for (const variant of REDUCTIONS) {
    Deno.test(`${name} [${variant} reductions]`, () => withReductions(variant, fn));
  }
}

/**
 * testReductions when `both`, else one Deno.test in the device's default variant. The big kernel matrices
 * (every matmul layout, every NF4 path) run the fallback libraries on a representative subset only: each
 * variant is a separate pipeline, and a fresh CI machine compiles every pipeline cold on lavapipe.
 */
export function testReductionsIf(both: boolean, name: string, fn: () => Promise<void>): void {
  if (both) testReductions(name, fn);
  else Deno.test(name, fn);
}

/** Deterministic PRNG for test data: the project's mulberry32 (src/util/random.ts). */
export const rng: (seed: number) => () => number = mulberry32;

export function randomArray(n: number, rand: () => number, scale = 1): Float32Array<ArrayBuffer> {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

export interface Diff {
  maxAbs: number;
  /** max |a-b| / max |ref|: the error relative to the tensor's scale. */
  rel: number;
  worstIndex: number;
}

export function diff(actual: ArrayLike<number>, expected: ArrayLike<number>): Diff {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let maxAbs = 0;
  let refMax = 0;
  let worstIndex = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= maxAbs)) {
      maxAbs = Number.isNaN(d) ? Infinity : d;
      worstIndex = i;
    }
    refMax = Math.max(refMax, Math.abs(expected[i]));
  }
  return { maxAbs, rel: maxAbs / Math.max(refMax, 1e-30), worstIndex };
}

/** Asserts closeness and reports max abs / relative error in the failure message. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: { abs?: number; rel?: number },
  what: string,
): Diff {
  const d = diff(actual, expected);
  const okAbs = tol.abs === undefined || d.maxAbs <= tol.abs;
  const okRel = tol.rel === undefined || d.rel <= tol.rel;
  if (!okAbs || !okRel) {
    const i = d.worstIndex;
    throw new Error(
      `${what}: max abs ${d.maxAbs.toExponential(3)}, rel ${d.rel.toExponential(3)} exceeds ${
        JSON.stringify(tol)
      } ` +
        `(worst at ${i}: got ${actual[i]}, want ${expected[i]})`,
    );
  }
  return d;
}
