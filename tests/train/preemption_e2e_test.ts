// Preemptible VMs: the same `train ... --resume` command launched again and again, killed at random moments
// (before the first checkpoint, during a checkpoint, during an eval, anywhere) with SIGKILL or stopped with
// SIGTERM, ends with the adapter of an uninterrupted run and a CSV with one train row per step; a changed
// learning rate under --resume exits 2 naming it.
import { join } from "node:path";
import { runTraining } from "../../src/train/run.ts";
import { latestCheckpointSync } from "../../src/train/checkpoint.ts";
import { parseCsv } from "../../src/report/metrics_csv.ts";
import { rng, testGpu } from "../helpers/gpu.ts";
import { cfg, cli, fastFlags } from "../helpers/train_cli.ts";

/** 8 steps, a checkpoint every 2, an eval every 3 (and at the end), LoRA dropout on (its RNG must resume too). */
const SETS = [
  "training.max_steps=8",
  "training.save_steps=2",
  "training.eval_steps=3",
  "lora.lora_dropout=0.1",
];
const STEPS = 8;
const isEvalStep = (s: number) => s % 3 === 0 || s === STEPS;
const dec = new TextDecoder();

let reference: Promise<string> | null = null;
/** The uninterrupted run (in-process), shared by the tests. */
function uninterrupted(): Promise<string> {
  reference ??= (async () => {
    const out = await Deno.makeTempDir();
    if (await runTraining({ config: cfg(out, SETS) }) !== 0) throw new Error("uninterrupted run failed");
    return join(out, "1gouki");
  })();
  return reference;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Launch {
  child: Deno.ChildProcess;
  /** Resolves with the exit status and output once the process ends. */
  done: Promise<{ code: number; stdout: string; stderr: string }>;
  exited: boolean;
}

function launch(out: string, extra: string[] = []): Launch {
  const child = cli([...fastFlags(out, SETS), "--resume", ...extra]).spawn();
  const l: Launch = {
    child,
    exited: false,
    done: child.output().then((o) => {
      l.exited = true;
      return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
    }),
  };
  return l;
}

/** Polls `cond` every few ms until it holds (true) or the process exits on its own (false). */
async function until(l: Launch, cond: () => boolean, what: string): Promise<boolean> {
  const t0 = Date.now();
  while (!l.exited) {
    if (cond()) return true;
    if (Date.now() - t0 > 120_000) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
  return false;
}

const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};

function csvRows(run: string): Record<string, number | undefined>[] {
  try {
    return parseCsv(Deno.readTextFileSync(join(run, "logs/training_metrics.csv"))).rows;
  } catch {
    return [];
  }
}

function tempCheckpoints(modelDir: string): string[] {
  try {
    return [...Deno.readDirSync(modelDir)].map((e) => e.name).filter((n) =>
      /^\.checkpoint-\d+\.tmp-\d+$/.test(n)
    );
  } catch {
    return [];
  }
}

/** Whether the CSV was written since `t` (by this launch, not left by the one before). */
function csvSince(run: string, t: number): boolean {
  try {
    return (Deno.statSync(join(run, "logs/training_metrics.csv")).mtime?.getTime() ?? 0) > t;
  } catch {
    return false;
  }
}

/** The train row of an eval step is logged right before its eval starts: the eval is running now. */
function evalRunning(run: string): boolean {
  const rows = csvRows(run);
  const last = rows[rows.length - 1];
  return last !== undefined && last.loss !== undefined && isEvalStep(last.step!) &&
    !rows.some((r) => r.step === last.step && r.eval_loss !== undefined);
}

/** Train rows once per step 1..N, and the same step/eval sequence and values as the uninterrupted run. */
async function assertSameOutputs(run: string, ref: string): Promise<void> {
  const a = await Deno.readFile(join(run, "model/adapter_model.safetensors"));
  const b = await Deno.readFile(join(ref, "model/adapter_model.safetensors"));
  if (a.length !== b.length || a.some((x, i) => x !== b[i])) {
    throw new Error("the adapter is not byte-identical to the uninterrupted run's");
  }
  const rows = csvRows(run);
  const train = rows.filter((r) => r.loss !== undefined).map((r) => r.step);
  if (train.join() !== Array.from({ length: STEPS }, (_, i) => i + 1).join()) {
    throw new Error(`train rows at steps ${train}`);
  }
  // Timing columns differ between runs; everything the training computed must not.
  const key = (r: Record<string, number | undefined>) =>
    [r.step, r.epoch, r.loss, r.learning_rate, r.grad_norm, r.eval_loss, r.eval_perplexity].join("|");
  const got = rows.map(key).join("\n");
  const want = csvRows(ref).map(key).join("\n");
  if (got !== want) throw new Error(`CSV differs from the uninterrupted run:\n${got}\n---\n${want}`);
}

Deno.test("SIGKILL at random moments, relaunching the same --resume command, ends exactly as an uninterrupted run", async () => {
  await testGpu();
  const ref = await uninterrupted();
  const out = await Deno.makeTempDir();
  const run = join(out, "1gouki");
  const modelDir = join(run, "model");
  const rand = rng(20);
  const seen = { beforeFirstCheckpoint: false, duringCheckpoint: false, duringEval: false };
  const kill = async (l: Launch) => {
    if (l.exited) return;
    l.child.kill("SIGKILL");
    await l.done;
  };

  // 1. Before the first checkpoint: once the data report is written (validation done), at a random moment.
  let l = launch(out);
  await until(l, () => exists(join(run, "logs/data_report.json")), "the data report");
  await sleep(rand() * 100);
  await kill(l);
  seen.beforeFirstCheckpoint = latestCheckpointSync(modelDir) === null;
  if (!seen.beforeFirstCheckpoint) throw new Error("a checkpoint was complete before the first kill");

  // 2. During a checkpoint: as soon as a temp checkpoint directory appears (a few tries to land inside one: a
  // fast machine may finish the write before the kill arrives).
  for (let i = 0; i < 5 && !seen.duringCheckpoint; i++) {
    l = launch(out);
    const mine = `.tmp-${l.child.pid}`;
    const fired = await until(
      l,
      () => tempCheckpoints(modelDir).some((n) => n.endsWith(mine)),
      "a checkpoint being written",
    );
    await kill(l);
    if (!fired) throw new Error(`launch ended before a checkpoint: ${(await l.done).stderr}`);
    const said = (await l.done).stdout;
    if (i === 0 && !(said.includes("no complete checkpoint") && said.includes("starting from step 0"))) {
      throw new Error(`the relaunch after a kill before any checkpoint did not say it starts over: ${said}`);
    }
    seen.duringCheckpoint = tempCheckpoints(modelDir).some((n) => n.endsWith(mine));
  }
  if (!seen.duringCheckpoint) throw new Error("no kill landed inside a checkpoint write in 5 tries");

  // 3. During an eval: as soon as an eval step's train row is logged (its eval runs next).
  for (let i = 0; i < 3 && !seen.duringEval; i++) {
    l = launch(out);
    const launched = Date.now();
    const fired = await until(l, () => csvSince(run, launched) && evalRunning(run), "an eval");
    await kill(l);
    if (!fired) break; // the run ended: no eval left to interrupt
    seen.duringEval = evalRunning(run);
  }
  if (!seen.duringEval) throw new Error("no kill landed inside an eval");

  // 4. Anywhere: seeded random delays after the launch.
  for (let i = 0; i < 2; i++) {
    l = launch(out);
    await sleep(500 + rand() * 3000);
    await kill(l);
  }

  // The same command once more, undisturbed, finishes the run.
  const last = await launch(out).done;
  if (last.code !== 0) throw new Error(`last launch exit ${last.code}: ${last.stderr}`);
  await assertSameOutputs(run, ref);
  if (tempCheckpoints(modelDir).length) {
    throw new Error(`temp checkpoints left: ${tempCheckpoints(modelDir)}`);
  }

  // Relaunched after the end, it has nothing to do.
  const again = await launch(out).done;
  if (again.code !== 0 || !again.stdout.includes("already complete")) {
    throw new Error(`relaunch after the end: exit ${again.code}: ${again.stdout}${again.stderr}`);
  }

  // A changed learning rate under --resume exits 2 naming it, before any GPU work.
  const lr = await launch(out, ["--set", "training.learning_rate=0.02"]).done;
  if (
    lr.code !== 2 || !lr.stderr.includes("training.learning_rate") || !lr.stderr.includes("--accept-changes")
  ) {
    throw new Error(`changed learning rate: exit ${lr.code}: ${lr.stderr}`);
  }
});

Deno.test("SIGTERM at random moments finishes the step, checkpoints it and exits 143; --resume ends as an uninterrupted run", async () => {
  await testGpu();
  const ref = await uninterrupted();
  const out = await Deno.makeTempDir();
  const run = join(out, "1gouki");
  const modelDir = join(run, "model");
  const rand = rng(143);
  // The first launch starts from nothing: it says so.
  let first = true;
  for (let i = 0; i < 3; i++) {
    const l = launch(out);
    const start = latestCheckpointSync(modelDir)?.step ?? 0;
    // Training has taken a step beyond the checkpoint it started from; then a random moment within a few steps
    // (an eval included: one runs every 3 steps).
    const trained = await until(
      l,
      () => csvRows(run).some((r) => r.loss !== undefined && r.step! > start),
      "a training step",
    );
    if (!trained) break; // the run ended before the signal: nothing left to interrupt
    await sleep(rand() * 600);
    l.child.kill("SIGTERM");
    const r = await l.done;
    if (first && !r.stdout.includes("starting from step 0")) throw new Error(`no start line: ${r.stdout}`);
    first = false;
    if (r.code === 0) break; // the last step finished before the signal arrived
    if (r.code !== 143) throw new Error(`SIGTERM: exit ${r.code}: ${r.stderr}`);
    // The step that was running when the signal came is finished and checkpointed: the latest checkpoint is the
    // last step with a train row.
    const trainSteps = csvRows(run).filter((row) => row.loss !== undefined).map((row) => row.step!);
    const ckpt = latestCheckpointSync(modelDir)?.step;
    if (ckpt !== Math.max(...trainSteps)) {
      throw new Error(`checkpoint ${ckpt} after SIGTERM, train rows up to ${Math.max(...trainSteps)}`);
    }
    if (!r.stderr.includes("SIGTERM")) throw new Error(`no SIGTERM message: ${r.stderr}`);
  }
  const last = await launch(out).done;
  if (last.code !== 0) throw new Error(`last launch exit ${last.code}: ${last.stderr}`);
  await assertSameOutputs(run, ref);
});
