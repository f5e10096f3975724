// `bench --compare`: figure-by-figure comparison with an earlier report (src/bench/compare.ts), on
// synthetic reports so every verdict is known.
import assert from "node:assert/strict";
import { type BaseReport, compareReports, formatComparison } from "../../src/bench/compare.ts";
import type { BenchReport } from "../../src/bench/suite.ts";

function settings(seq: number): BenchReport["settings"] {
  return {
    batch: 1,
    seq,
    steps: 3,
    layers: 1,
    vocab: 8192,
    decodeTokens: 1,
    promptTokens: 1,
    ceVocab: 64,
    clock: "auto",
  };
}

function report(o: {
  kernelMs: Record<string, number>;
  clock?: "timestamps" | "wall";
  tokensPerS: number;
  peak: number;
  adapter?: string;
  seq?: number;
}): BaseReport & BenchReport {
  return {
    maieutic_bench: 1,
    date: "2026-11-25T00:00:00Z",
    model: "gemma-2-2b-random",
    settings: settings(o.seq ?? 64),
    machine: { adapter: { description: o.adapter ?? "llvmpipe", vendor: "mesa" }, kernels: "regblock" },
    ceilings: { copy_gbps: 6, fma_gflops: 45, copy_bytes: 1, copy_ms: 1, fma_flop: 1, fma_ms: 1 },
    kernels: Object.entries(o.kernelMs).map(([name, ms]) => ({ name, ms, clock: o.clock ?? "timestamps" })),
    subgroups: null,
    ladder: { shape: "", flop: 1, rungs: [{ name: "naive f32", ms: 200, clock: o.clock ?? "timestamps" }] },
    step: { tokens_per_s: o.tokensPerS } as BenchReport["step"],
    decode: { available: true, tokens_per_s: 10 },
    memory_plan: { peak_bytes: o.peak } as BenchReport["memory_plan"],
    targets: [],
    total_s: 1,
  } as unknown as BaseReport & BenchReport;
}

Deno.test("compareReports: slower kernels, lower throughput and any memory growth are regressions", () => {
  const base = report({ kernelMs: { a: 10, b: 10, gone: 1 }, tokensPerS: 40, peak: 1000 });
  const now = report({ kernelMs: { a: 13, b: 8, added: 1 }, tokensPerS: 30, peak: 1001 });
  const c = compareReports(base, now, "base.json", 0.25);
  const row = (name: string) => c.rows.find((r) => r.name === name)!;
  // a: 30% slower > 25%; b: 20% faster; kernels present in only one report are left out.
  assert.ok(Math.abs(row("a").worse_by - 0.3) < 1e-12);
  assert.equal(row("a").regression, true);
  assert.ok(Math.abs(row("b").worse_by + 0.2) < 1e-12);
  assert.equal(row("b").regression, false);
  assert.equal(c.rows.some((r) => r.name === "gone" || r.name === "added"), false);
  // 40 -> 30 tokens/s: the same work takes 1/3 longer.
  assert.ok(Math.abs(row("training step").worse_by - 1 / 3) < 1e-12);
  assert.equal(row("training step").regression, true);
  // One byte more in the deterministic plan is flagged; an unchanged figure is not.
  assert.equal(row("seed-config peak").regression, true);
  assert.equal(row("naive f32").worse_by, 0);
  assert.equal(c.regressions, 3);
  assert.deepEqual(c.warnings, []);
  const text = formatComparison(c).join("\n");
  assert.match(text, /kernels a .* 30\.0% worse {2}REGRESSION/);
  assert.match(text, /kernels b .* 20\.0% better\n/);
  assert.match(
    text,
    /3 regression\(s\) beyond 25% \(memory: any growth\): kernels a; step training step; memory_plan/,
  );

  // A looser tolerance lets the 30% through; memory growth still counts.
  assert.equal(compareReports(base, now, "base.json", 0.5).regressions, 1);
  assert.match(formatComparison(compareReports(base, base, "base.json")).join("\n"), /no figure worse/);
});

Deno.test("compareReports: other adapter, settings or clock are said, not hidden", () => {
  const base = report({ kernelMs: { a: 10 }, tokensPerS: 40, peak: 1000, clock: "wall" });
  const now = report({ kernelMs: { a: 10 }, tokensPerS: 40, peak: 1000, adapter: "NVIDIA H100", seq: 512 });
  const c = compareReports(base, now, "base.json");
  assert.deepEqual(c.warnings, [
    "other adapter: llvmpipe then, NVIDIA H100 now",
    "2 figure(s) timed by another clock than the base's (see each row; compare runs with the same --clock " +
    "where the two clocks disagree on this device)",
    "other --seq: 64 then, 512 now",
  ]);
  assert.equal(c.rows.find((r) => r.name === "a")!.note, "clock wall then, timestamps now");
  assert.match(formatComparison(c).join("\n"), /note: other adapter: llvmpipe then, NVIDIA H100 now/);
});
