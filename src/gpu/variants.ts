/**
 * Kernel variants, resolved once per device (docs/ARCHITECTURE.md#performance). Two choices are made for a
 * device and every op reads them:
 *  - the family of the matmul-class kernels: "tiled" (workgroup-memory tiles, for GPUs) or "regblock"
 *    (register blocks without barriers, `*_regblock.wgsl`, for CPU adapters: gpu.isSoftware);
 *    MAIEUTIC_KERNELS=tiled|regblock forces one;
 *  - the reductions of the `// #include` libraries that come in two texts (src/gpu/kernel.ts): subgroup
 *    operations when the device has them, else the fallbacks; MAIEUTIC_SUBGROUPS=0 forces the fallbacks, =1
 *    requires subgroups.
 * The environment is read when getGpu opens the device (resolveKernels), not per dispatch. Tests and the bench
 * switch variants on an open device with overrideKernels; a wrapper's `kernels` option forces the family of one
 * call (tests run both). SELECT is the one table that maps an op and its shape to the kernel it records.
 */
import { UsageError } from "../util/errors.ts";
import { type Gpu, subgroupsFromEnv } from "./device.ts";

/** Kernel families: workgroup-memory tiles (GPUs) or register blocks without barriers (CPU adapters). */
export type KernelVariant = "tiled" | "regblock";
export const KERNEL_VARIANTS: readonly KernelVariant[] = ["tiled", "regblock"];

/** Whether the `// #include` libraries use subgroup operations ("subgroup") or their fallback ("workgroup"). */
export type Reductions = "subgroup" | "workgroup";

/** Rows at or below which the small-M kernels (matvec.wgsl, nf4_matvec.wgsl; regblock with TM = M) are used. */
export const SMALL_M = 8;

/** What a device's kernels use, and where the family came from. */
export interface KernelChoice {
  family: KernelVariant;
  familyFrom: "MAIEUTIC_KERNELS" | "adapter" | "override";
  reductions: Reductions;
}

/** The settings the environment gives (undefined: choose by the device). */
export interface KernelSettings {
  kernels?: KernelVariant;
  subgroups?: "0" | "1";
}

/** MAIEUTIC_KERNELS, validated; undefined when unset (or when the environment cannot be read). */
export function kernelsFromEnv(): KernelVariant | undefined {
  let v: string | undefined;
  try {
    v = Deno.env.get("MAIEUTIC_KERNELS");
  } catch {
    return undefined; // no --allow-env: choose by adapter
  }
  if (!v) return undefined;
  if (v === "tiled" || v === "regblock") return v;
  throw new UsageError(
    `MAIEUTIC_KERNELS=${v} is not a kernel family: set it to "tiled" or "regblock", or unset it to choose by adapter`,
  );
}

/** MAIEUTIC_KERNELS and MAIEUTIC_SUBGROUPS as they are now. */
export function settingsFromEnv(): KernelSettings {
  return { kernels: kernelsFromEnv(), subgroups: subgroupsFromEnv() };
}

/** The choice for a device under some settings (pure). Requiring subgroups on a device without them throws. */
export function chooseKernels(gpu: Pick<Gpu, "isSoftware" | "subgroups">, s: KernelSettings): KernelChoice {
  if (s.subgroups === "1" && !gpu.subgroups) {
    throw new UsageError(
      "MAIEUTIC_SUBGROUPS=1 but this device has no `subgroups` feature: unset it (or set 0) to use " +
        "the kernels' fallbacks (no subgroup operations)",
    );
  }
  return {
    family: s.kernels ?? (gpu.isSoftware ? "regblock" : "tiled"),
    familyFrom: s.kernels ? "MAIEUTIC_KERNELS" : "adapter",
    reductions: s.subgroups !== "0" && gpu.subgroups ? "subgroup" : "workgroup",
  };
}

const choices = new WeakMap<Gpu, KernelChoice>();

/** Resolves the device's kernel variants from the environment; getGpu calls it when it opens the device. */
export function resolveKernels(gpu: Gpu): Gpu {
  choices.set(gpu, chooseKernels(gpu, settingsFromEnv()));
  return gpu;
}

/** The device's kernel variants (resolved at open; a Gpu built by hand, as in tests, resolves on first use). */
export function kernelChoice(gpu: Gpu): KernelChoice {
  let c = choices.get(gpu);
  if (!c) choices.set(gpu, c = chooseKernels(gpu, settingsFromEnv()));
  return c;
}

/**
 * Switches an open device's variants (tests run both reductions; the bench times both) until the returned
 * function restores them. Kernels are cached per variant, so nothing compiled before is reused wrongly.
 * Subgroup reductions on a device without subgroups throw, as MAIEUTIC_SUBGROUPS=1 would.
 */
export function overrideKernels(
  gpu: Gpu,
  o: { family?: KernelVariant; reductions?: Reductions },
): () => void {
  const prev = kernelChoice(gpu);
  if (o.reductions === "subgroup" && !gpu.subgroups) {
    throw new UsageError("subgroup reductions requested but this device has no `subgroups` feature");
  }
  choices.set(gpu, {
    family: o.family ?? prev.family,
    familyFrom: o.family ? "override" : prev.familyFrom,
    reductions: o.reductions ?? prev.reductions,
  });
  return () => choices.set(gpu, prev);
}

/** The kernel family of a dispatch: the call's own `forced` (tests), else the device's. */
export function kernelVariant(gpu: Gpu, forced?: KernelVariant): KernelVariant {
  return forced ?? kernelChoice(gpu).family;
}

/** The kernel each op records, by its shape and the family (one place for every op with variants). */
export const SELECT = {
  /** src/gpu/ops/matmul.ts: matmul.wgsl, matvec.wgsl (few rows, B stored N×K), matmul_regblock.wgsl. */
  matmul: (family: KernelVariant, s: { M: number; transB?: boolean }): "tiled" | "matvec" | "regblock" =>
    family === "regblock" ? "regblock" : s.M >= 1 && s.M <= SMALL_M && !s.transB ? "matvec" : "tiled",
  /** src/model/ops/linear.ts forward: nf4_matmul.wgsl, nf4_matvec.wgsl (decode), nf4_matmul_regblock.wgsl. */
  nf4Forward: (family: KernelVariant, s: { tokens: number }): "tiled" | "matvec" | "regblock" =>
    family === "regblock" ? "regblock" : s.tokens >= 1 && s.tokens <= SMALL_M ? "matvec" : "tiled",
  /** src/model/ops/linear.ts input gradient: nf4_matmul_dx.wgsl or nf4_matmul_dx_regblock.wgsl. */
  nf4InputGrad: (family: KernelVariant): "tiled" | "regblock" => family,
} as const;
