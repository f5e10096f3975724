/**
 * Subgroup operations against their fallbacks (kernels/lib/*_subgroup.wgsl vs reduce_workgroup.wgsl /
 * row8_load.wgsl) on the benchmark's kernel cases that use them: each case timed under both, on the same
 * buffers, back to back. The variant is switched on the open device with overrideKernels (src/gpu/variants.ts;
 * the kernel cache is keyed by variant), as MAIEUTIC_SUBGROUPS=1 or 0 would choose it at open, and restored
 * afterwards.
 */
import type { Gpu } from "../gpu/device.ts";
import { libraryVariants, type Reductions } from "../gpu/kernel.ts";
import { overrideKernels } from "../gpu/variants.ts";
import type { KernelCase } from "./kernels.ts";
import type { Clock, GpuTimer } from "./timing.ts";

export interface SubgroupsCase {
  name: string;
  shape: string;
  subgroup_ms: number;
  fallback_ms: number;
  /** fallback_ms / subgroup_ms */
  speedup: number;
  /** The clock of both figures (src/bench/timing.ts). */
  clock: Clock;
}

export interface SubgroupsComparison {
  /** The variant of each `// #include` library the engine uses on this device. */
  in_use: Record<string, Reductions>;
  subgroup_sizes: { min: number; max: number } | null;
  /** Null when the device has no subgroups (nothing to compare). */
  cases: SubgroupsCase[] | null;
}

export async function compareSubgroups(
  gpu: Gpu,
  timer: GpuTimer,
  cases: KernelCase[],
  o: { minMs?: number; onCase?: (c: SubgroupsCase) => void } = {},
): Promise<SubgroupsComparison> {
  const in_use = libraryVariants(gpu);
  if (!gpu.subgroups) return { in_use, subgroup_sizes: gpu.subgroupSizes, cases: null };
  const out: SubgroupsCase[] = [];
  let restore = () => {};
  try {
    for (const c of cases.filter((x) => x.subgroups)) {
      const ms = { subgroup: 0, fallback: 0 };
      // Both variants by the same clock: the fallback by the wall clock when the subgroup run fell back to it.
      let clock: Clock = "timestamps";
      for (const variant of ["subgroup", "fallback"] as const) {
        restore();
        restore = overrideKernels(gpu, { reductions: variant === "subgroup" ? "subgroup" : "workgroup" });
        const t = await timer.time(c.record, {
          minMs: o.minMs ?? 150,
          acceptPilotMs: 400,
          label: c.name,
          clock: clock === "wall" ? "wall" : "auto",
        });
        if (variant === "subgroup") clock = t.clock;
        else if (t.clock !== clock) {
          // The fallback's timestamps were not trusted: time both by the wall clock.
          clock = "wall";
          restore();
          restore = overrideKernels(gpu, { reductions: "subgroup" });
          ms.subgroup = (await timer.time(c.record, { minMs: o.minMs ?? 150, acceptPilotMs: 400, clock })).ms;
          restore();
          restore = overrideKernels(gpu, { reductions: "workgroup" });
        }
        ms[variant] = t.ms;
      }
      const row = {
        name: c.name,
        shape: c.shape,
        subgroup_ms: ms.subgroup,
        fallback_ms: ms.fallback,
        speedup: ms.fallback / ms.subgroup,
        clock,
      };
      out.push(row);
      o.onCase?.(row);
    }
  } finally {
    restore();
  }
  return { in_use, subgroup_sizes: gpu.subgroupSizes, cases: out };
}
