/** The text form of a `maieutic bench` report (the JSON form is the BenchReport object itself). */
import { formatBytes, formatPlan } from "./plan.ts";
import type { BenchReport } from "./suite.ts";
import { formatComparison } from "./compare.ts";

const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function formatReport(r: BenchReport): string {
  const out: string[] = [];
  const m = r.machine as {
    adapter: { description: string; vendor: string; software: boolean };
    driver_package: string | null;
    cpu_cores: number;
    load_average: number[] | null;
    kernels?: string;
    kernels_from?: string;
    libraries?: Record<string, string>;
    timing?: string;
  };
  out.push(`maieutic bench — ${r.model} — ${r.date}`);
  out.push(
    `adapter: ${m.adapter.description || m.adapter.vendor}${m.adapter.software ? " (software)" : ""}` +
      `${m.driver_package ? `, ${m.driver_package}` : ""}, ${m.cpu_cores} CPU cores` +
      `${m.load_average ? `, load ${m.load_average.map((x) => x.toFixed(2)).join(" ")}` : ""}`,
  );
  if (m.kernels) out.push(`matmul kernels: ${m.kernels} (chosen by ${m.kernels_from ?? "adapter"})`);
  if (m.libraries) {
    out.push(
      `kernel libraries: ${
        Object.entries(m.libraries).map(([k, v]) => `${k} ${v === "subgroup" ? "subgroup ops" : "fallback"}`)
          .join(", ")
      } (kernels/lib/)`,
    );
  }
  if (m.timing) out.push(`timing: ${m.timing}`);
  out.push(
    `ceilings: streaming copy ${f(r.ceilings.copy_gbps)} GB/s, FMA loop ${f(r.ceilings.fma_gflops)} GFLOP/s`,
  );
  if (r.kernels) {
    const w = Math.max(22, ...r.kernels.map((k) => k.name.length + 2));
    out.push("");
    out.push(
      `kernels (tokens = ${r.settings.batch} x ${r.settings.seq}):` +
        `\n  ${"kernel".padEnd(w)}${"ms".padStart(10)}${"GFLOP/s".padStart(10)}${"GB/s".padStart(9)}` +
        `${"of FMA".padStart(9)}${"of copy".padStart(9)}  shape`,
    );
    for (const k of r.kernels) {
      out.push(
        `  ${k.name.padEnd(w)}${f(k.ms).padStart(10)}${f(k.gflops, 3).padStart(10)}${
          f(k.gbps, 3).padStart(9)
        }` +
          `${pct(k.frac_fma).padStart(9)}${pct(k.frac_copy).padStart(9)}  ${k.shape}`,
      );
    }
  }
  const sg = r.subgroups;
  if (sg) {
    out.push("");
    if (!sg.cases) {
      out.push("subgroups: the device has none; the kernels use their fallbacks");
    } else {
      const sizes = sg.subgroup_sizes;
      const width = sizes ? ` of ${sizes.min === sizes.max ? sizes.min : `${sizes.min}-${sizes.max}`}` : "";
      const inUse = Object.entries(sg.in_use).map(([k, v]) => `${k} ${v}`).join(", ");
      out.push(`subgroups${width} vs fallbacks (in use: ${inUse}):`);
      for (const c of sg.cases) {
        out.push(
          `  ${c.name.padEnd(40)}${f(c.subgroup_ms, 3).padStart(10)} ms${
            f(c.fallback_ms, 3).padStart(10)
          } ms` +
            `  x${f(c.speedup)}`,
        );
      }
    }
  }
  if (r.ladder) {
    out.push("");
    out.push(`kernel ladder, ${r.ladder.shape}:`);
    for (const g of [...r.ladder.rungs, ...r.ladder.regblock ?? []]) {
      out.push(
        `  ${g.name.padEnd(54)}${f(g.ms, 1).padStart(9)} ms${f(g.gflops, 3).padStart(9)} GFLOP/s` +
          `  x${f(g.speedup)}${g.extra_bytes ? `  (+${formatBytes(g.extra_bytes)} for the f16 copy)` : ""}`,
      );
    }
  }
  const s = r.step;
  if (s) {
    out.push("");
    out.push(
      `training step: ${s.model.source}, ${s.model.layers} of ${s.model.of_layers} layers, vocab ${s.model.vocab} of ` +
        `${s.model.of_vocab}, ${
          s.model.quantized ? "NF4" : "dense"
        } ${s.model.dtype}, batch ${s.batch} x ${s.seq}`,
    );
    out.push(
      `  ${f(s.ms, 0)} ms/step (${s.step_ms.map((x) => x.toFixed(0)).join(", ")}), ${
        f(s.tokens_per_s, 2)
      } tokens/s, ` +
        `${f(s.gflops, 3)} GFLOP/s on ${f(s.flop_executed / 1e9, 2)} GFLOP executed (${
          f(s.flop_model / 1e9, 2)
        } model)`,
    );
    out.push(
      `  ${s.readbacks_per_step} readback(s), ${s.submits_per_step} command buffers, ${s.dispatches_per_step} ` +
        `dispatches per optimizer step`,
    );
    if (s.breakdown) {
      out.push(`  by kernel family (each timed alone):`);
      for (const b of s.breakdown) {
        out.push(
          `    ${b.family.padEnd(15)}${f(b.ms, 1).padStart(10)} ms${pct(b.share).padStart(8)}` +
            `${String(b.dispatches).padStart(6)} dispatches${
              b.gflops !== null ? `  ${f(b.gflops, 3)} GFLOP/s` : ""
            }`,
        );
      }
      out.push(
        `    ${"unattributed".padEnd(15)}${f(s.unattributed_ms ?? 0, 1).padStart(10)} ms  ` +
          `(whole step in one command buffer ${f(s.gpu_ms ?? 0, 0)} ms − Σ families)`,
      );
    }
    if (s.by_kernel) {
      const sum = s.by_kernel.reduce((a, k) => a + k.ms, 0);
      out.push(`  by kernel (GPU timestamps around each dispatch of one step; Σ ${f(sum, 1)} ms):`);
      const w = Math.max(24, ...s.by_kernel.map((k) => k.kernel.length + 2));
      for (const k of s.by_kernel) {
        out.push(
          `    ${k.kernel.padEnd(w)}${f(k.ms, 1).padStart(10)} ms${pct(k.share).padStart(8)}` +
            `${String(k.dispatches).padStart(6)} dispatches  (${k.family})`,
        );
      }
    } else if (s.breakdown && s.by_kernel_note) {
      out.push(`  by kernel: not measured (${s.by_kernel_note})`);
    }
    const e = s.full_model_estimate;
    out.push(
      `  full model (${e.layers} layers, vocab ${e.vocab}) at this rate: ${f(e.seconds, 1)} s/step, ` +
        `${f(e.tokens_per_s, 3)} tokens/s (estimate)`,
    );
  }
  if (r.decode) {
    out.push("");
    out.push(
      r.decode.available
        ? `decode (greedy, KV cache, ${r.decode.rows} row): ${f(r.decode.tokens_per_s!, 3)} tokens/s ` +
          `(${
            f(r.decode.ms_per_token!, 0)
          } ms/token over ${r.decode.tokens}), prefill of ${r.decode.prompt_tokens} ` +
          `tokens ${f(r.decode.prefill_ms!, 0)} ms`
        : `decode: skipped — ${r.decode.note}`,
    );
  }
  out.push("");
  out.push(formatPlan(r.memory_plan, 10));
  out.push("");
  out.push("targets:");
  for (const t of r.targets) {
    const v = t.value === null ? "n/a" : Number.isInteger(t.value) ? String(t.value) : t.value.toFixed(3);
    out.push(
      `  [${
        t.pass === null ? "n/a " : t.pass ? "PASS" : "FAIL"
      }] ${t.name}: ${v} (limit ${t.limit}) — ${t.detail}`,
    );
  }
  if (r.comparison) {
    out.push("");
    out.push(...formatComparison(r.comparison));
  }
  out.push(`total ${f(r.total_s, 1)} s`);
  return out.join("\n");
}
