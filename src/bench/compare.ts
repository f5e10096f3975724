/**
 * `maieutic bench --compare BASE.json`: this run against an earlier `bench --json` report, figure by figure
 * (ceilings, every kernel, the ladder's rungs, the training step, decoding, the memory plan), so that a
 * regression in any kernel shows without reading two reports side by side. A figure is a regression when it
 * is worse than the base by more than the tolerance (default 25%: one shared 2-core machine swings ±20%
 * between runs, BENCHMARKS.md); the memory plan is deterministic, so any growth counts. Like the targets,
 * the comparison never changes the exit code.
 */
import { z } from "zod";
import { UsageError } from "../util/errors.ts";
import type { BenchReport } from "./suite.ts";

const Rung = z.object({ name: z.string(), ms: z.number(), clock: z.string().optional() });

/** The parts of a `bench --json` report the comparison reads (older reports have no `clock` fields). */
export const BaseReportSchema = z.object({
  maieutic_bench: z.literal(1),
  date: z.string(),
  model: z.string(),
  settings: z.object({ batch: z.number(), seq: z.number(), layers: z.number(), vocab: z.number() }),
  machine: z.object({
    adapter: z.object({ description: z.string(), vendor: z.string() }),
    kernels: z.string().optional(),
  }),
  ceilings: z.object({ copy_gbps: z.number(), fma_gflops: z.number() }),
  kernels: z.array(z.object({ name: z.string(), ms: z.number(), clock: z.string().optional() })).nullable(),
  ladder: z.object({ rungs: z.array(Rung), regblock: z.array(Rung).optional() }).nullable(),
  step: z.object({ tokens_per_s: z.number() }).nullable(),
  decode: z.object({ tokens_per_s: z.number().optional() }).nullable(),
  memory_plan: z.object({ peak_bytes: z.number() }),
});
export type BaseReport = z.infer<typeof BaseReportSchema>;

export interface ComparisonRow {
  section: "ceilings" | "kernels" | "ladder" | "step" | "decode" | "memory_plan";
  name: string;
  unit: string;
  base: number;
  now: number;
  /** How much worse now is than base (0.1 = 10% slower or 10% less throughput; negative = better). */
  worse_by: number;
  regression: boolean;
  /** Why the two figures are not strictly comparable, when they are not (e.g. different clocks). */
  note?: string;
}

export interface Comparison {
  base: { file: string; date: string; model: string; adapter: string };
  tolerance: number;
  /** Differences of machine or settings that make the whole comparison loose. */
  warnings: string[];
  rows: ComparisonRow[];
  regressions: number;
}

/** Reads and validates a base report; a UsageError names the file and what is wrong with it. */
export async function readBaseReport(path: string): Promise<BaseReport> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new UsageError(`--compare ${path}: cannot read it (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(
      `--compare ${path}: not JSON (${(e as Error).message}); give the output of \`maieutic bench --json\``,
    );
  }
  const r = BaseReportSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UsageError(
      `--compare ${path}: not a \`maieutic bench --json\` report (${
        issue.path.map(String).join(".") || "(top)"
      }: ${issue.message})`,
    );
  }
  return r.data;
}

/** now vs base, in the direction that matters: lower is better for times and bytes, higher for rates. */
function worseBy(base: number, now: number, better: "lower" | "higher"): number {
  if (!(base > 0) || !(now > 0)) return 0;
  return better === "lower" ? now / base - 1 : base / now - 1;
}

export function compareReports(
  base: BaseReport,
  now: BenchReport,
  file: string,
  tolerance = 0.25,
): Comparison {
  const rows: ComparisonRow[] = [];
  const add = (
    section: ComparisonRow["section"],
    name: string,
    unit: string,
    b: number | undefined,
    n: number | undefined,
    better: "lower" | "higher",
    o: { tolerance?: number; note?: string } = {},
  ) => {
    if (b === undefined || n === undefined || !Number.isFinite(b) || !Number.isFinite(n)) return;
    const w = worseBy(b, n, better);
    rows.push({
      section,
      name,
      unit,
      base: b,
      now: n,
      worse_by: w,
      regression: w > (o.tolerance ?? tolerance),
      ...(o.note ? { note: o.note } : {}),
    });
  };
  const clockNote = (b?: string, n?: string) =>
    b !== undefined && n !== undefined && b !== n ? `clock ${b} then, ${n} now` : undefined;

  add("ceilings", "streaming copy", "GB/s", base.ceilings.copy_gbps, now.ceilings.copy_gbps, "higher");
  add("ceilings", "FMA loop", "GFLOP/s", base.ceilings.fma_gflops, now.ceilings.fma_gflops, "higher");
  const baseKernels = new Map((base.kernels ?? []).map((k) => [k.name, k]));
  for (const k of now.kernels ?? []) {
    const b = baseKernels.get(k.name);
    if (b) add("kernels", k.name, "ms", b.ms, k.ms, "lower", { note: clockNote(b.clock, k.clock) });
  }
  const baseRungs = new Map(
    [...(base.ladder?.rungs ?? []), ...(base.ladder?.regblock ?? [])].map((r) => [r.name, r]),
  );
  for (const r of [...(now.ladder?.rungs ?? []), ...(now.ladder?.regblock ?? [])]) {
    const b = baseRungs.get(r.name);
    if (b) add("ladder", r.name, "ms", b.ms, r.ms, "lower", { note: clockNote(b.clock, r.clock) });
  }
  add("step", "training step", "tokens/s", base.step?.tokens_per_s, now.step?.tokens_per_s, "higher");
  add("decode", "greedy decode", "tokens/s", base.decode?.tokens_per_s, now.decode?.tokens_per_s, "higher");
  add(
    "memory_plan",
    "seed-config peak",
    "bytes",
    base.memory_plan.peak_bytes,
    now.memory_plan.peak_bytes,
    "lower",
    {
      tolerance: 0,
    },
  );

  const warnings: string[] = [];
  const adapter = (a: { description: string; vendor: string }) => a.description || a.vendor;
  const nowAdapter = (now.machine as { adapter?: { description: string; vendor: string } }).adapter;
  if (nowAdapter && adapter(nowAdapter) !== adapter(base.machine.adapter)) {
    warnings.push(`other adapter: ${adapter(base.machine.adapter)} then, ${adapter(nowAdapter)} now`);
  }
  const nowKernels = (now.machine as { kernels?: string }).kernels;
  if (base.machine.kernels && nowKernels && base.machine.kernels !== nowKernels) {
    warnings.push(`other matmul kernel family: ${base.machine.kernels} then, ${nowKernels} now`);
  }
  const otherClock = rows.filter((r) => r.note?.startsWith("clock ")).length;
  if (otherClock > 0) {
    warnings.push(
      `${otherClock} figure(s) timed by another clock than the base's (see each row; compare runs with the ` +
        `same --clock where the two clocks disagree on this device)`,
    );
  }
  if (base.model !== now.model) warnings.push(`other model: ${base.model} then, ${now.model} now`);
  for (const key of ["batch", "seq", "layers", "vocab"] as const) {
    if (base.settings[key] !== now.settings[key]) {
      warnings.push(`other --${key}: ${base.settings[key]} then, ${now.settings[key]} now`);
    }
  }
  return {
    base: { file, date: base.date, model: base.model, adapter: adapter(base.machine.adapter) },
    tolerance,
    warnings,
    rows,
    regressions: rows.filter((r) => r.regression).length,
  };
}

function figure(x: number, unit: string): string {
  if (unit === "bytes") return `${(x / 2 ** 30).toFixed(3)} GiB`;
  return `${x.toFixed(x >= 100 ? 1 : x >= 10 ? 2 : 3)} ${unit}`;
}

/** The comparison as text lines (the report's last section). */
export function formatComparison(c: Comparison): string[] {
  const out = [`compared with ${c.base.file} (${c.base.date}, ${c.base.model}, ${c.base.adapter}):`];
  for (const w of c.warnings) out.push(`  note: ${w}`);
  const w = Math.max(24, ...c.rows.map((r) => r.section.length + r.name.length + 3));
  for (const r of c.rows) {
    const change = r.worse_by === 0
      ? "same"
      : `${(100 * Math.abs(r.worse_by)).toFixed(1)}% ${r.worse_by > 0 ? "worse" : "better"}`;
    out.push(
      `  ${`${r.section} ${r.name}`.padEnd(w)}${figure(r.base, r.unit).padStart(16)} -> ${
        figure(r.now, r.unit).padStart(16)
      }  ${change}${r.regression ? "  REGRESSION" : ""}${r.note ? `  (${r.note})` : ""}`,
    );
  }
  const tol = `${(100 * c.tolerance).toFixed(0)}%`;
  out.push(
    c.regressions === 0
      ? `  no figure worse than the base by more than ${tol} (memory: any growth)`
      : `  ${c.regressions} regression(s) beyond ${tol} (memory: any growth): ${
        c.rows.filter((r) => r.regression).map((r) => `${r.section} ${r.name}`).join("; ")
      }`,
  );
  return out;
}
