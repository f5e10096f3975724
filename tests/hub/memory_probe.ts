/**
 * Subprocess for memory_test.ts: loads a model and reports the peak resident set (VmHWM) growth during the
 * load, measured from a reset high-water mark (`echo 5 > /proc/self/clear_refs`), so the test process's
 * own memory and the checkpoint generation do not count.
 * Usage: deno run -A tests/hub/memory_probe.ts <model> <nf4|dense>
 */
import { loadModel } from "../../src/hub/load.ts";
import { QuantizationSchema } from "../../src/config/schema.ts";

function vm(field: "VmHWM" | "VmRSS"): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(Deno.readTextFileSync("/proc/self/status"));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

const [model, mode] = Deno.args;
const quant = QuantizationSchema.parse({ load_in_4bit: mode === "nf4" });
// warm up module loading and the JIT on a tiny model first, so they do not count
await loadModel("tiny", quant, { progress: false, log: () => {} });
Deno.writeTextFileSync("/proc/self/clear_refs", "5");
const before = vm("VmRSS");
const t0 = performance.now();
const m = await loadModel(model, quant, { progress: false, log: () => {} });
const peak = vm("VmHWM");
let resultBytes = 0;
for (const t of m.tensors.values()) {
  resultBytes += t.kind === "dense" ? t.data.byteLength : t.nf4.packed.byteLength + t.nf4.qabsmax.byteLength;
}
console.log(
  JSON.stringify({
    before,
    peak,
    growth: peak - before,
    resultBytes,
    seconds: (performance.now() - t0) / 1000,
  }),
);
