// `maieutic bench --plan`: the memory plan of the engine's own allocations for real gemma-2-2b shapes,
// computed in BufferPool plan mode (no device). Figures are checked against the tensor shapes; the 4 GiB
// target is the benchmark's to report, not this test's to enforce.
import assert from "node:assert/strict";
import { GEMMA2_2B } from "../../src/config/gemma2.ts";
import { PROJECTIONS, projectionShape } from "../../src/config/gemma2.ts";
import { nf4Bytes } from "../../src/model/ops/linear.ts";
import { memoryPlan } from "../../src/bench/plan.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function plan(...args: string[]) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "bench", "--plan", "--json", ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 0, `bench --plan exited ${r.code}: ${err}`);
  return JSON.parse(new TextDecoder().decode(r.stdout));
}

Deno.test("bench --plan --json: seed config on gemma-2-2b shapes prints a peak and the NF4 + f16 sizes", async () => {
  const p = await plan();
  assert.equal(p.model, "gemma-2-2b-random");
  assert.equal(p.batch, 4);
  assert.equal(p.seq, 512);
  assert.equal(p.quantized, true);
  assert.equal(p.dtype, "f16");
  assert.equal(p.checkpointing, true);
  assert.deepEqual(p.lora.targets, ["q_proj", "k_proj", "v_proj", "o_proj"]);
  assert.ok(Number.isInteger(p.peak_bytes) && p.peak_bytes > 0, "peak_bytes");
  const sum = Object.values(p.at_peak as Record<string, number>).reduce((a, b) => a + b, 0);
  assert.equal(sum, p.peak_bytes, "the per-kind bytes at the peak add up to the peak");

  // Projections: 2.02e9 parameters, NF4 = 4 bits + one absmax byte per 64 + one f32 per 256 absmax.
  let params = 0, nf4 = 0;
  for (const pr of PROJECTIONS) {
    const [o, i] = projectionShape(GEMMA2_2B, pr);
    params += GEMMA2_2B.num_hidden_layers * o * i;
    const b = nf4Bytes(o * i);
    nf4 += GEMMA2_2B.num_hidden_layers * (b.packed + b.qabsmax + b.absmax2);
  }
  assert.ok(params > 2.0e9 && params < 2.05e9, `projection params ${params}`);
  const w = p.by_kind.weights;
  assert.ok(w >= nf4 && w < nf4 * 1.001, `weights ${w} vs NF4 size ${nf4} (+ norms)`);
  assert.ok(Math.abs(w - 1.045e9) < 0.01e9, `weights ≈ 1.0 GB, got ${w}`);
  const e = p.by_kind.embedding;
  const table = GEMMA2_2B.vocab_size * GEMMA2_2B.hidden_size * 2;
  assert.ok(e >= table && e < table + 16 * 64, `embedding ${e} vs f16 table ${table} (1.18 GB)`);
  for (const k of ["activations", "gradients", "optimizer", "lora"]) assert.ok(p.by_kind[k] > 0, k);
  assert.equal(typeof p.target.pass, "boolean");
  assert.equal(p.target.limit_bytes, 4 * 2 ** 30);
});

Deno.test("bench --plan: a smaller batch gives a smaller peak, and only activation-sized kinds shrink", async () => {
  const big = await plan();
  const small = await plan("--batch", "1");
  assert.equal(small.batch, 1);
  assert.ok(small.peak_bytes < big.peak_bytes, `${small.peak_bytes} < ${big.peak_bytes}`);
  for (const k of ["weights", "embedding", "lora", "optimizer"]) {
    assert.equal(small.by_kind[k], big.by_kind[k], k);
  }
  assert.ok(small.by_kind.activations < big.by_kind.activations);
});

Deno.test("memory plan: checkpointing keeps one workspace, inference allocates no training state", () => {
  const base = {
    config: { ...GEMMA2_2B, num_hidden_layers: 4 },
    model: "gemma-2-2b (4 layers)",
    batch: 1,
    seq: 128,
    dtype: "f16" as const,
    quantized: true,
    lora: { r: 16, lora_alpha: 32, target_modules: ["q_proj", "v_proj"], lora_dropout: 0.1 },
  };
  const ckpt = memoryPlan({ ...base, checkpointing: true, training: true });
  const full = memoryPlan({ ...base, checkpointing: false, training: true });
  const infer = memoryPlan({ ...base, checkpointing: true, training: false });
  assert.ok(ckpt.by_kind.activations < full.by_kind.activations);
  assert.equal(ckpt.groups.find((g) => g.group === "ws#.g")?.count, 1);
  assert.equal(full.groups.find((g) => g.group === "ws#.g")?.count, 4);
  assert.equal(infer.by_kind.gradients ?? 0, 0);
  assert.equal(infer.by_kind.optimizer ?? 0, 0);
  assert.ok(infer.peak_bytes < ckpt.peak_bytes);
});
