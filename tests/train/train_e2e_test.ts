// End to end: the tiny model trains on the bundled data; the output tree and its files; exact resume after
// SIGKILL; SIGINT; the loss watchdog; gradient-accumulation equivalence.
import { join } from "node:path";
import { runTraining } from "../../src/train/run.ts";
import { TrainerStateSchema } from "../../src/train/state.ts";
import { CSV_COLUMNS, EVAL_METRICS, parseCsv } from "../../src/report/metrics_csv.ts";
import { testGpu } from "../helpers/gpu.ts";
import { adapter, cfg, cli, fastFlags, maxDiff } from "../helpers/train_cli.ts";

Deno.test("tiny model trains on the bundled data: loss falls, the output tree and its files are complete", async () => {
  await testGpu();
  const out = await Deno.makeTempDir();
  const code = await runTraining({
    config: cfg(out, [
      "training.max_steps=12",
      "training.eval_steps=6",
      "training.save_steps=6",
      "training.eval_generate_samples=1",
    ]),
  });
  if (code !== 0) throw new Error(`exit ${code}`);
  const run = join(out, "1gouki");
  for (
    const f of [
      "model/adapter_model.safetensors",
      "model/adapter_config.json",
      "model/training_config.json",
      "model/checkpoint-6/adapter_model.safetensors",
      "model/checkpoint-12/optimizer.safetensors",
      "model/checkpoint-12/trainer_state.json",
      "model/checkpoint-12/rng_state.json",
      "logs/training_metrics.csv",
      "logs/training_summary.json",
      "logs/metrics_plot.png",
      "logs/metrics_plot.html",
    ]
  ) await Deno.stat(join(run, f));
  const csv = parseCsv(await Deno.readTextFile(join(run, "logs/training_metrics.csv")));
  if (csv.header.join() !== CSV_COLUMNS.join()) throw new Error(`CSV header ${csv.header}`);
  const train = csv.rows.filter((r) => r.loss !== undefined).map((r) => r.loss!);
  if (train.length !== 12) throw new Error(`${train.length} train rows`);
  const first = (train[0] + train[1] + train[2]) / 3;
  const last = (train[9] + train[10] + train[11]) / 3;
  if (!(last < first - 0.02)) throw new Error(`loss did not fall: ${first} -> ${last}`);
  const evals = csv.rows.filter((r) => r.eval_loss !== undefined);
  if (evals.length !== 2 || !(evals[1].eval_loss! < evals[0].eval_loss!)) {
    throw new Error("eval loss did not fall");
  }
  // Every eval row carries the Socratic metric columns (generation ran), each in [0, 1].
  for (const r of evals) {
    for (const m of EVAL_METRICS) {
      const v = r[`eval_${m}`];
      if (v === undefined || !(v >= 0 && v <= 1)) throw new Error(`eval_${m} = ${v} at step ${r.step}`);
    }
  }
  const samples = await Deno.readTextFile(join(run, "logs/samples/step-12.jsonl"));
  if (!samples.trim()) throw new Error("no generated samples written");
  const state = TrainerStateSchema.parse(
    JSON.parse(await Deno.readTextFile(join(run, "model/checkpoint-12/trainer_state.json"))),
  );
  if (state.global_step !== 12 || state.best_model_checkpoint !== "checkpoint-12") {
    throw new Error(JSON.stringify(state));
  }
  const summary = JSON.parse(await Deno.readTextFile(join(run, "logs/training_summary.json")));
  for (
    const k of ["final", "best", "train_tokens_per_second", "peak_gpu_buffer_bytes", "adapter", "versions"]
  ) {
    if (!(k in summary)) throw new Error(`summary lacks ${k}`);
  }
  const a = await adapter(join(run, "model"));
  const keys = [...a.keys()];
  if (
    keys.length !== 32 || !keys.includes("base_model.model.model.layers.3.self_attn.o_proj.lora_B.weight")
  ) {
    throw new Error(`adapter keys ${keys.slice(0, 3)}`);
  }
  const conf = JSON.parse(await Deno.readTextFile(join(run, "model/adapter_config.json")));
  if (conf.peft_type !== "LORA" || conf.r !== 16 || conf.lora_alpha !== 32) throw new Error("adapter_config");
  // An existing run is not overwritten without --resume or --overwrite.
  const again = await cli(fastFlags(out, ["training.max_steps=1"])).output();
  if (again.code !== 2 || !new TextDecoder().decode(again.stderr).includes("--resume")) {
    throw new Error("overwrote a run");
  }
});

Deno.test("a run killed with SIGKILL resumes to the same adapter as an uninterrupted run", async () => {
  await testGpu();
  const sets = [
    "training.max_steps=8",
    "training.save_steps=2",
    "training.eval_steps=100",
    "lora.lora_dropout=0.1",
  ];
  const full = await Deno.makeTempDir();
  if (await runTraining({ config: cfg(full, sets) }) !== 0) throw new Error("full run failed");
  const killed = await Deno.makeTempDir();
  const child = cli(fastFlags(killed, sets)).spawn();
  const ckpt = join(killed, "1gouki/model/checkpoint-4/trainer_state.json");
  const t0 = Date.now();
  while (true) {
    try {
      await Deno.stat(ckpt);
      break;
    } catch {
      if (Date.now() - t0 > 240_000) throw new Error("no checkpoint-4 within 240 s");
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill("SIGKILL");
  await child.output();
  const resumed = await cli([...fastFlags(killed, sets), "--resume"]).output();
  if (resumed.code !== 0) {
    throw new Error(`resume exit ${resumed.code}: ${new TextDecoder().decode(resumed.stderr)}`);
  }
  const d = maxDiff(await adapter(join(full, "1gouki/model")), await adapter(join(killed, "1gouki/model")));
  if (d > 1e-6) throw new Error(`resumed adapter differs by ${d}`);
  // The resumed CSV holds exactly the rows of the uninterrupted run (none lost, none doubled).
  const steps = async (dir: string) =>
    parseCsv(await Deno.readTextFile(join(dir, "1gouki/logs/training_metrics.csv"))).rows.map((r) => r.step)
      .join();
  if (await steps(killed) !== await steps(full)) {
    throw new Error(`CSV steps ${await steps(killed)} != ${await steps(full)}`);
  }
});

Deno.test("SIGINT finishes the step, writes a usable checkpoint and exits 130", async () => {
  await testGpu();
  const out = await Deno.makeTempDir();
  const child = cli(fastFlags(out, ["training.max_steps=200", "training.save_steps=1000"])).spawn();
  const csv = join(out, "1gouki/logs/training_metrics.csv");
  const t0 = Date.now();
  while (true) {
    const text = await Deno.readTextFile(csv).catch(() => "");
    // The live CSV is valid at every moment: the fixed header, then only whole rows.
    if (text) {
      const parsed = parseCsv(text);
      if (parsed.header.join() !== CSV_COLUMNS.join() || !text.endsWith("\n")) {
        throw new Error(`torn CSV: ${text}`);
      }
      for (const row of text.trim().split("\n").slice(1)) {
        if (row.split(",").length !== CSV_COLUMNS.length) throw new Error(`torn CSV row: ${row}`);
      }
    }
    if (text.split("\n").length >= 4) break;
    if (Date.now() - t0 > 240_000) throw new Error("no progress within 240 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGINT");
  const r = await child.output();
  if (r.code !== 130) throw new Error(`exit ${r.code}: ${new TextDecoder().decode(r.stderr)}`);
  const ckpts = [...Deno.readDirSync(join(out, "1gouki/model"))].filter((e) =>
    e.name.startsWith("checkpoint-")
  );
  if (ckpts.length !== 1) throw new Error(`checkpoints ${ckpts.map((c) => c.name)}`);
  const state = TrainerStateSchema.parse(
    JSON.parse(await Deno.readTextFile(join(out, "1gouki/model", ckpts[0].name, "trainer_state.json"))),
  );
  if (ckpts[0].name !== `checkpoint-${state.global_step}`) throw new Error("checkpoint name");
  await Deno.stat(join(out, "1gouki/logs/training_summary.json"));
});

Deno.test("the loss watchdog stops a diverging run with the last good state", async () => {
  await testGpu();
  const out = await Deno.makeTempDir();
  const code = await runTraining({
    config: cfg(out, [
      "training.max_steps=30",
      // A learning rate this large blows the LoRA weights up to Inf within a few steps.
      "training.learning_rate=1e30",
      "training.warmup_ratio=0",
    ]),
  });
  if (code !== 1) throw new Error(`exit ${code}`);
  const summary = JSON.parse(await Deno.readTextFile(join(out, "1gouki/logs/training_summary.json")));
  if (summary.status !== "watchdog" || !/watchdog/.test(summary.message)) {
    throw new Error(JSON.stringify(summary));
  }
  const last = summary.total_steps;
  await Deno.stat(join(out, `1gouki/model/checkpoint-${last}/adapter_model.safetensors`));
  if (last >= 30) throw new Error("the watchdog did not stop the run");
});

Deno.test("accumulation: batch 2 x accumulation 2 equals batch 4 x accumulation 1 (f32 path)", async () => {
  await testGpu();
  const common = [
    "quantization.load_in_4bit=false",
    "quantization.bnb_4bit_compute_dtype=float32",
    "lora.lora_dropout=0",
    "training.max_steps=2",
    "training.eval_steps=100",
    "training.warmup_ratio=0",
    // The seed's learning rate (the try-out preset's 1e-2 would let Adam's m/sqrt(v) amplify f32 summation-order
    // noise in near-zero gradient entries; the accumulated gradients themselves agree far tighter).
    "training.learning_rate=8e-5",
  ];
  const a = await Deno.makeTempDir();
  const b = await Deno.makeTempDir();
  await runTraining({
    config: cfg(a, [
      ...common,
      "training.per_device_train_batch_size=2",
      "training.gradient_accumulation_steps=2",
    ]),
  });
  await runTraining({
    config: cfg(b, [
      ...common,
      "training.per_device_train_batch_size=4",
      "training.gradient_accumulation_steps=1",
    ]),
  });
  const d = maxDiff(await adapter(join(a, "1gouki/model")), await adapter(join(b, "1gouki/model")));
  if (d > 1e-5) throw new Error(`adapters differ by ${d}`);
});
