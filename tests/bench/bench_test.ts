// `maieutic bench --json` on the tiny model (fast options): the report's keys and that every number is finite.
// Speed targets are the benchmark's (BENCHMARKS.md), never asserted here.
import assert from "node:assert/strict";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

function walkNumbers(x: unknown, path: string, out: [string, number][]): void {
  if (typeof x === "number") out.push([path, x]);
  else if (Array.isArray(x)) x.forEach((v, i) => walkNumbers(v, `${path}[${i}]`, out));
  else if (x && typeof x === "object") {
    for (const [k, v] of Object.entries(x)) walkNumbers(v, `${path}.${k}`, out);
  }
}

Deno.test("bench --json --model tiny --steps 1: keys and finite numbers", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "bench",
      "--json",
      "--model",
      "tiny",
      "--steps",
      "1",
      "--seq",
      "16",
      "--decode-tokens",
      "2",
      "--prompt-tokens",
      "3",
    ],
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 0, `bench exited ${r.code}: ${err}`);
  const j = JSON.parse(new TextDecoder().decode(r.stdout));

  for (
    const k of [
      "machine",
      "ceilings",
      "kernels",
      "ladder",
      "step",
      "decode",
      "memory_plan",
      "targets",
      "settings",
    ]
  ) assert.ok(k in j, `missing ${k}`);
  assert.equal(j.model, "tiny");
  assert.equal(typeof j.machine.adapter.description, "string");
  assert.ok(j.ceilings.copy_gbps > 0 && j.ceilings.fma_gflops > 0);

  const names = j.kernels.map((k: { name: string }) => k.name);
  for (
    const want of [
      "matmul NT f32",
      "matmul NN f32",
      "matmul TN f32",
      // f16 operands only where the device has shader-f16 (not with MAIEUTIC_F16=0 or on GL adapters)
      ...(j.machine.features["shader-f16"] ? ["matmul NT f16", "matmul NN f16", "matmul TN f16"] : []),
      "nf4 matmul q_proj",
      "nf4 dx q_proj",
      "lora fwd q_proj",
      "lora bwd q_proj",
      "attention fwd",
      "attention bwd",
      "cross_entropy fwd",
      "cross_entropy bwd",
      "rmsnorm fwd",
      "rmsnorm bwd",
      "rope fwd",
      "geglu fwd",
      "geglu bwd",
      "nf4 matvec q_proj 1 tok (tiled family)",
      ...(j.machine.features["shader-f16"] ? ["matvec NT f16 1 row (tiled family)"] : []),
    ]
  ) assert.ok(names.includes(want), `kernel ${want} missing from ${names}`);

  // Subgroup operations vs their fallbacks on every kernel case that uses them (lavapipe has subgroups).
  assert.deepEqual(j.machine.libraries, j.subgroups.in_use);
  if (j.subgroups.cases === null) {
    assert.deepEqual(Object.values(j.machine.libraries), ["workgroup", "workgroup"]);
  } else {
    const f16 = Boolean(j.machine.features["shader-f16"]);
    assert.deepEqual(j.subgroups.cases.map((c: { name: string }) => c.name), [
      "matmul NT f32",
      ...(f16 ? ["matmul NN f16"] : []),
      "nf4 matmul q_proj",
      "nf4 dx q_proj",
      "nf4 matmul q_proj 1 tok",
      "nf4 matvec q_proj 1 tok (tiled family)",
      ...(f16 ? ["matvec NT f16 1 row (tiled family)", "matmul NT f16 1 row"] : []),
      "rmsnorm fwd",
      "rmsnorm bwd",
      "clip + adamw",
    ]);
    for (const c of j.subgroups.cases) {
      assert.ok(c.subgroup_ms > 0 && c.fallback_ms > 0, c.name);
      assert.ok(Math.abs(c.speedup - c.fallback_ms / c.subgroup_ms) < 1e-9, c.name);
    }
  }
  for (const k of j.kernels) {
    for (const f of ["ms", "gflops", "gbps", "frac_fma", "frac_copy"]) {
      assert.ok(k[f] > 0, `${k.name}.${f} = ${k[f]}`);
    }
  }
  assert.deepEqual(j.ladder.rungs.map((g: { name: string }) => g.name.split(" ")[0]), [
    "naive",
    "tiled",
    "register-blocked",
    ...(j.machine.features["shader-f16"] ? ["tiled,", "dequantize"] : []),
    "fused",
  ]);

  const s = j.step;
  assert.equal(s.batch * s.seq, s.tokens);
  assert.equal(s.tokens, 32);
  assert.ok(s.tokens_per_s > 0 && s.ms > 0 && s.gflops > 0);
  assert.ok(s.flop_executed >= s.flop_model && s.flop_model > 0);
  assert.ok(Number.isInteger(s.readbacks_per_step) && s.readbacks_per_step >= 1);
  assert.ok(Number.isInteger(s.submits_per_step) && s.submits_per_step >= 1);
  const fams = s.breakdown.map((b: { family: string }) => b.family);
  for (
    const f of ["nf4_matmul", "lora", "attention", "dense_matmul", "cross_entropy", "rmsnorm", "optimizer"]
  ) {
    assert.ok(fams.includes(f), `family ${f} missing from ${fams}`);
  }
  const shares = s.breakdown.reduce((a: number, b: { share: number }) => a + b.share, 0);
  assert.ok(Math.abs(shares - 1) < 1e-9);
  // Per kernel by GPU timestamps where they are trusted: every dispatch of the step, under its WGSL file.
  if (s.by_kernel === null) assert.equal(typeof s.by_kernel_note, "string");
  else {
    type K = { kernel: string; family: string; dispatches: number; share: number };
    const dispatched = s.breakdown.filter((b: { family: string }) => b.family !== "copies")
      .reduce((a: number, b: { dispatches: number }) => a + b.dispatches, 0);
    assert.equal(s.by_kernel.reduce((a: number, k: K) => a + k.dispatches, 0), dispatched);
    assert.ok(Math.abs(s.by_kernel.reduce((a: number, k: K) => a + k.share, 0) - 1) < 1e-9);
    for (const k of s.by_kernel as K[]) {
      assert.match(k.kernel, /^[a-z0-9_]+\.wgsl$/);
      assert.ok(fams.includes(k.family), `${k.kernel}: family ${k.family}`);
    }
  }

  if (j.decode.available) assert.ok(j.decode.tokens_per_s > 0 && j.decode.tokens === 2);
  else assert.equal(typeof j.decode.note, "string");
  assert.ok(j.memory_plan.peak_bytes > 0);
  assert.equal(j.targets.length, 3);
  for (const t of j.targets) assert.ok(t.pass === null || typeof t.pass === "boolean", t.name);

  // Every kernel figure names its clock, and the machine section says which clock was used and why.
  assert.equal(typeof j.machine.timing, "string");
  for (const k of [...j.kernels, ...j.ladder.rungs, ...j.ladder.regblock]) {
    assert.ok(["timestamps", "wall"].includes(k.clock), `${k.name}: clock ${k.clock}`);
  }
  if (j.kernels.some((k: { clock: string }) => k.clock === "timestamps")) {
    assert.match(j.machine.timing, /^GPU timestamps around each dispatch/);
  } else assert.match(j.machine.timing, /^wall clock/);

  const nums: [string, number][] = [];
  walkNumbers(j, "$", nums);
  assert.ok(nums.length > 100);
  for (const [p, v] of nums) assert.ok(Number.isFinite(v), `${p} = ${v}`);

  // --compare with this report: a second, short run (ceilings and the memory plan only) reads it back.
  const base = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(base, JSON.stringify(j));
  const c = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "bench", "--json", "--model", "tiny", "--seq", "16", "--clock", "wall"]
      .concat(["--skip", "kernels,ladder,step,decode", "--compare", base]),
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(c.code, 0, new TextDecoder().decode(c.stderr));
  const cj = JSON.parse(new TextDecoder().decode(c.stdout));
  assert.equal(cj.settings.clock, "wall");
  assert.match(cj.machine.timing, /^wall clock .*--clock wall/);
  assert.equal(cj.comparison.base.file, base);
  assert.deepEqual(
    cj.comparison.rows.map((r: { section: string; name: string }) => `${r.section} ${r.name}`),
    [
      "ceilings streaming copy",
      "ceilings FMA loop",
      "memory_plan seed-config peak",
    ],
  );
  const mem = cj.comparison.rows[2];
  assert.equal(mem.base, j.memory_plan.peak_bytes);
  assert.equal(mem.now, j.memory_plan.peak_bytes);
  assert.equal(mem.regression, false);
  await Deno.remove(base);
});

Deno.test("bench: bad flags exit 2 with a usage line", async () => {
  const notJson = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(notJson, "{ not json");
  const notReport = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(notReport, JSON.stringify({ maieutic_bench: 1, date: "x" }));
  const cases: [string[], RegExp][] = [
    [["--batch", "0"], /--batch expects an integer >= 1/],
    [["--skip", "everything"], /--skip: unknown section "everything"/],
    [["--steps", "x"], /--steps expects an integer/],
    [["--clock", "gpu"], /--clock expects auto or wall, got "gpu"/],
    [["--tolerance", "0.1"], /--tolerance needs --compare/],
    [["--compare", notJson, "--tolerance", "lots"], /--tolerance expects a number from 0 to 10/],
    [["--compare", "/nonexistent/base.json"], /--compare \/nonexistent\/base\.json: cannot read it/],
    [["--compare", notJson], /not JSON .*maieutic bench --json/],
    [["--compare", notReport], /not a `maieutic bench --json` report \(model: /],
  ];
  for (const [args, message] of cases) {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "bench", "--model", "tiny", ...args],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}`);
    assert.match(new TextDecoder().decode(r.stderr), message, args.join(" "));
  }
  await Deno.remove(notJson);
  await Deno.remove(notReport);
});
