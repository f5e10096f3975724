/**
 * Subgroup reductions against workgroup-memory ones (kernels/lib/reduce_subgroup.wgsl vs
 * reduce_workgroup.wgsl) on the benchmark's kernel cases that use them: each case timed under both variants,
 * on the same buffers, back to back. The variant is switched the way a user would, with MAIEUTIC_SUBGROUPS
 * (read when a kernel is built; the kernel cache is keyed by variant), and restored afterwards.
 */
import type { Gpu } from "../gpu/device.ts";
import { type Reductions, reductionsFor } from "../gpu/kernel.ts";
import type { KernelCase } from "./kernels.ts";
import type { GpuTimer } from "./timing.ts";

export interface ReductionsComparison {
  /** The variant the engine uses on this device. */
  in_use: Reductions;
  subgroup_sizes: { min: number; max: number } | null;
  /** Null when the device has no subgroups (nothing to compare). */
  cases: { name: string; shape: string; subgroup_ms: number; workgroup_ms: number; speedup: number }[] | null;
}

export async function compareReductions(
  gpu: Gpu,
  timer: GpuTimer,
  cases: KernelCase[],
  o: { minMs?: number; onCase?: (c: NonNullable<ReductionsComparison["cases"]>[number]) => void } = {},
): Promise<ReductionsComparison> {
  const in_use = reductionsFor(gpu);
  if (!gpu.subgroups) return { in_use, subgroup_sizes: gpu.subgroupSizes, cases: null };
  const out: NonNullable<ReductionsComparison["cases"]> = [];
  const prev = Deno.env.get("MAIEUTIC_SUBGROUPS");
  try {
    for (const c of cases.filter((x) => x.reduces)) {
      const ms: Record<Reductions, number> = { subgroup: 0, workgroup: 0 };
      for (const variant of ["subgroup", "workgroup"] as const) {
        Deno.env.set("MAIEUTIC_SUBGROUPS", variant === "subgroup" ? "1" : "0");
        const t = await timer.time(c.record, { minMs: o.minMs ?? 150, acceptPilotMs: 400, label: c.name });
        ms[variant] = t.ms;
      }
      const row = {
        name: c.name,
        shape: c.shape,
        subgroup_ms: ms.subgroup,
        workgroup_ms: ms.workgroup,
        speedup: ms.workgroup / ms.subgroup,
      };
      out.push(row);
      o.onCase?.(row);
    }
  } finally {
    if (prev === undefined) Deno.env.delete("MAIEUTIC_SUBGROUPS");
    else Deno.env.set("MAIEUTIC_SUBGROUPS", prev);
  }
  return { in_use, subgroup_sizes: gpu.subgroupSizes, cases: out };
}
