// The benchmark's targets (src/bench/suite.ts computeTargets) on synthetic figures, so each verdict is known:
// the step-efficiency target pairs each step with the reference matmul timed right after it.
import assert from "node:assert/strict";
import { computeTargets } from "../../src/bench/suite.ts";
import type { StepResult } from "../../src/bench/step.ts";

type Input = Parameters<typeof computeTargets>[0];

function input(stepMs: number[], ref?: { table: number; after: number[] }, hidden = 2304): Input {
  const flop = 10e9;
  const sorted = [...stepMs].sort((a, b) => a - b);
  const ms = sorted[sorted.length >> 1];
  const step = {
    model: { source: "gemma-2-2b-random", layers: 1, of_layers: 26, vocab: 8192, of_vocab: 256000, hidden },
    batch: 1,
    seq: 64,
    step_ms: stepMs,
    ms,
    flop_executed: flop,
    flop_model: flop,
    gflops: flop / (ms * 1e6),
    readbacks_per_step: 1,
    submits_per_step: 4,
    dispatches_per_step: 60,
    ...(ref
      ? {
        paired_reference: {
          kernel: "matmul NN f16",
          table_gflops: ref.table,
          gflops_after_each_step: ref.after,
        },
      }
      : {}),
  } as unknown as StepResult;
  return {
    kernels: [
      { name: "matmul NN f16", family: "matmul", gflops: 20 },
      { name: "rmsnorm fwd", family: "rmsnorm", gflops: 99 },
    ],
    ladder: null,
    step,
    memory_plan: {
      model: "m",
      batch: 4,
      seq: 512,
      quantized: true,
      dtype: "f16",
      checkpointing: true,
      peak_bytes: 3e9,
      target: { limit_bytes: 4 * 2 ** 30, pass: true },
    },
    ceilings: { copy_gbps: 7, fma_gflops: 45 },
  } as unknown as Input;
}

const efficiency = (i: Input) => computeTargets(i).find((t) => t.name.startsWith("training step"))!;

Deno.test("step efficiency: unpaired = step GFLOP/s over the best matmul (elementwise kernels left out)", () => {
  // 10 GFLOP in 1000 ms = 10 GFLOP/s; best matmul 20 (not the 99 of rmsnorm).
  const t = efficiency(input([1200, 1000, 900]));
  assert.equal(t.value, 0.5);
  assert.equal(t.pass, true);
  assert.doesNotMatch(t.detail, /paired/);
  assert.equal(efficiency(input([1100])).pass, false);
  // A toy width is reported, never judged.
  assert.equal(efficiency(input([1000], undefined, 64)).pass, null);
});

Deno.test("step efficiency: each step is set against the reference matmul of its own moment", () => {
  // The machine got twice as slow after the kernel table (reference 20 -> 10 GFLOP/s), and so did the steps
  // (2000 ms = 5 GFLOP/s): brought back to the table's load, 10 GFLOP/s, i.e. 0.5 of the best.
  const slow = efficiency(input([2000, 2000, 2000], { table: 20, after: [10, 10, 10] }));
  assert.ok(Math.abs(slow.value! - 0.5) < 1e-12, String(slow.value));
  assert.equal(slow.pass, true);
  assert.match(slow.detail, /paired with matmul NN f16 timed after each step \(10\.000, 10\.000, 10\.000/);
  assert.match(slow.detail, /: 0\.500, unpaired 0\.250/);
  // Per step, then the median: ratios 0.4 (1250 ms at 20), 0.5 (2000 ms at 10), 0.625 (800 ms at 20).
  const mixed = efficiency(input([1250, 2000, 800], { table: 20, after: [20, 10, 20] }));
  assert.ok(Math.abs(mixed.value! - 0.5) < 1e-12, String(mixed.value));
  // A reference that does not cover every step is not used.
  assert.equal(efficiency(input([1000, 1000], { table: 20, after: [10] })).value, 0.5);
});
