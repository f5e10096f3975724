// Where a `train --resume` launch starts (src/train/resume.ts) and what killed launches leave behind
// (src/train/checkpoint.ts), on real directories with stand-in checkpoint files.
import { join } from "node:path";
import { resolveConfig } from "../../src/config/merge.ts";
import { UsageError } from "../../src/util/errors.ts";
import {
  cleanKilledCheckpoints,
  latestCheckpointSync,
  listCheckpoints,
  pruneCheckpoints,
  saveCheckpoint,
} from "../../src/train/checkpoint.ts";
import {
  cleanKilledWrites,
  dropPendingEvalRows,
  finishedRun,
  resolveStart,
  type RunDirs,
} from "../../src/train/resume.ts";
import { runIdentity } from "../../src/train/run_identity.ts";
import { newTrainerState } from "../../src/train/loop.ts";
import { planSteps } from "../../src/train/schedule.ts";
import type { TrainerState } from "../../src/train/state.ts";

const FP = { data_sha256: "aa" };
const conf = (sets: string[] = []) => resolveConfig({ sets, flags: { model: { name: "tiny" } } });

async function dirs(): Promise<RunDirs> {
  const runDir = join(await Deno.makeTempDir(), "run");
  return { runDir, modelDir: join(runDir, "model"), logsDir: join(runDir, "logs") };
}

function state(step: number): TrainerState {
  const t = conf().training;
  return { ...newTrainerState(t, planSteps(100, t)), global_step: step };
}

const files = {
  writeAdapter: (d: string) => Deno.writeTextFile(join(d, "adapter_model.safetensors"), "adapter"),
  writeOptimizer: (d: string) => Deno.writeTextFile(join(d, "optimizer.safetensors"), "optimizer"),
};

async function checkpoint(p: RunDirs, step: number, seed = 42): Promise<string> {
  await Deno.mkdir(p.modelDir, { recursive: true });
  return await saveCheckpoint(p.modelDir, step, files, state(step), {
    seed,
    scheme: "counter-v1",
    next_step: step + 1,
  });
}

async function recordConfig(p: RunDirs, sets: string[] = []): Promise<void> {
  await Deno.writeTextFile(
    join(p.modelDir, "training_config.json"),
    JSON.stringify({ ...conf(sets), ...FP, versions: {} }),
  );
}

const request = (sets: string[] = [], accept: string[] = []) => ({
  resume: "latest",
  identity: runIdentity(conf(sets), FP),
  seed: conf(sets).training.seed,
  accept: new Set(accept),
});

async function usageError(p: Promise<unknown>, re: RegExp): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof UsageError && re.test(e.message)) return e.message;
    throw e;
  }
  throw new Error(`no UsageError matching ${re}`);
}

Deno.test("--resume without a run, or killed before its first checkpoint: step 0 with one line saying so", async () => {
  const p = await dirs();
  const none = await resolveStart(p, request());
  if (none.kind !== "fresh" || !/no run under .* yet; starting from step 0/.test(none.note ?? "")) {
    throw new Error(JSON.stringify(none));
  }
  await Deno.mkdir(p.logsDir, { recursive: true });
  await Deno.writeTextFile(join(p.logsDir, "training_metrics.csv"), "step\n1\n");
  // A checkpoint killed mid-write is not a checkpoint.
  await Deno.mkdir(join(p.modelDir, "checkpoint-2"), { recursive: true });
  const killed = await resolveStart(p, request());
  if (killed.kind !== "fresh" || !/no complete checkpoint .* starting from step 0/.test(killed.note ?? "")) {
    throw new Error(JSON.stringify(killed));
  }
  // Without --resume the partial run is still protected.
  await usageError(resolveStart(p, { ...request(), resume: undefined }), /already holds a run.*--resume/);
  const fresh = await resolveStart(p, { ...request(), resume: undefined, overwrite: true });
  if (fresh.kind !== "fresh" || fresh.note) throw new Error(JSON.stringify(fresh));
});

Deno.test("--resume continues the latest complete checkpoint of the same configuration", async () => {
  const p = await dirs();
  await checkpoint(p, 2);
  await checkpoint(p, 4);
  await recordConfig(p);
  const s = await resolveStart(p, request());
  if (
    s.kind !== "checkpoint" || !s.dir.endsWith("checkpoint-4") || s.state.global_step !== 4 ||
    s.accepted.length
  ) {
    throw new Error(JSON.stringify(s));
  }
});

Deno.test("--resume with a changed learning rate exits 2 naming it, unless --accept-changes names it", async () => {
  const p = await dirs();
  await checkpoint(p, 3);
  await recordConfig(p, ["training.learning_rate=0.01"]);
  const msg = await usageError(
    resolveStart(p, request(["training.learning_rate=0.02"])),
    /training\.learning_rate: 0\.01 in the run, 0\.02 now/,
  );
  if (!msg.includes("--overwrite") || !msg.includes("--accept-changes training.learning_rate")) {
    throw new Error(msg);
  }
  const s = await resolveStart(p, request(["training.learning_rate=0.02"], ["training.learning_rate"]));
  if (s.kind !== "checkpoint" || s.accepted.join() !== "training.learning_rate") {
    throw new Error(JSON.stringify(s));
  }
  // Accepting one key does not accept another.
  await usageError(
    resolveStart(p, request(["training.learning_rate=0.02", "lora.r=4"], ["training.learning_rate"])),
    /\(lora\.r\)/,
  );
});

Deno.test("--resume: the checkpoint's recorded seed counts even without training_config.json", async () => {
  const p = await dirs();
  await checkpoint(p, 3, 7);
  await usageError(resolveStart(p, request()), /training\.seed: 7 in the run, 42 now/);
  await usageError(resolveStart(p, { ...request(), overwrite: true }), /exclude each other/);
});

Deno.test("killed writes: temp checkpoints and atomic-write temps of dead processes go, live ones stay", async () => {
  const p = await dirs();
  await checkpoint(p, 2);
  const dead = 2 ** 22 + 12345; // above Linux's pid_max default: no such process
  await Deno.mkdir(join(p.modelDir, `.checkpoint-4.tmp-${dead}`));
  await Deno.mkdir(join(p.logsDir, "samples"), { recursive: true });
  const csvTemp = join(p.logsDir, `training_metrics.csv.${dead}.0123abcd.tmp`);
  const sampleTemp = join(p.logsDir, "samples", `step-2.jsonl.${dead}.89abcdef.tmp`);
  const liveTemp = join(p.logsDir, `data_report.json.${Deno.pid}.0123abcd.tmp`);
  for (const f of [csvTemp, sampleTemp, liveTemp]) await Deno.writeTextFile(f, "x");
  const removed = await cleanKilledWrites(p);
  if (removed.length !== 3) throw new Error(`removed ${removed}`);
  await Deno.stat(liveTemp);
  if ((await listCheckpoints(p.modelDir)).map((c) => c.step).join() !== "2") throw new Error("checkpoints");
});

Deno.test("a step re-saved while a kill struck between its renames gets its previous copy back", async () => {
  const p = await dirs();
  const dir = await checkpoint(p, 5);
  const dead = 2 ** 22 + 777;
  // As saveCheckpoint leaves it when killed after moving the old copy away, before the new one arrived.
  await Deno.rename(dir, join(p.modelDir, `.checkpoint-5.old-${dead}`));
  await Deno.mkdir(join(p.modelDir, `.checkpoint-5.tmp-${dead}`));
  if (latestCheckpointSync(p.modelDir) !== null) throw new Error("no complete checkpoint expected");
  await cleanKilledCheckpoints(p.modelDir);
  if (latestCheckpointSync(p.modelDir)?.step !== 5) throw new Error("checkpoint-5 not restored");
  const names = [...Deno.readDirSync(p.modelDir)].map((e) => e.name).sort();
  if (names.join() !== "checkpoint-5") throw new Error(names.join());
  // Re-saving a step in place replaces it and leaves nothing else behind.
  await checkpoint(p, 5);
  const again = [...Deno.readDirSync(p.modelDir)].map((e) => e.name).sort();
  if (again.join() !== "checkpoint-5") throw new Error(again.join());
});

Deno.test("pruning keeps the newest and the best, and leaves no partial checkpoint names", async () => {
  const p = await dirs();
  for (const s of [1, 2, 3, 4]) await checkpoint(p, s);
  const removed = await pruneCheckpoints(p.modelDir, 2, join(p.modelDir, "checkpoint-1"));
  if (removed.length !== 2) throw new Error(`${removed}`);
  const names = [...Deno.readDirSync(p.modelDir)].map((e) => e.name).sort();
  if (names.join() !== "checkpoint-1,checkpoint-4") throw new Error(names.join());
});

Deno.test("a pending eval's row from a killed launch is dropped; the train rows stay byte for byte", async () => {
  const path = join(await Deno.makeTempDir(), "m.csv");
  const text = "step,epoch,loss,eval_loss\n2,0.1,6.5,\n3,0.2,6.25,\n3,0.2,,6.9\n";
  await Deno.writeTextFile(path, text);
  await dropPendingEvalRows(path, 3);
  const got = await Deno.readTextFile(path);
  if (got !== "step,epoch,loss,eval_loss\n2,0.1,6.5,\n3,0.2,6.25,\n") throw new Error(got);
});

Deno.test("a finished run is recognized only with its outputs written", async () => {
  const p = await dirs();
  await Deno.mkdir(p.logsDir, { recursive: true });
  await Deno.mkdir(p.modelDir, { recursive: true });
  const s = state(20);
  if (await finishedRun(p, s, 20, 0)) throw new Error("finished without outputs");
  await Deno.writeTextFile(join(p.modelDir, "adapter_model.safetensors"), "a");
  await Deno.writeTextFile(
    join(p.logsDir, "training_summary.json"),
    JSON.stringify({ status: "completed", total_steps: 20 }),
  );
  if (!await finishedRun(p, s, 20, 0)) throw new Error("not recognized");
  if (await finishedRun(p, s, 30, 0)) {
    throw new Error("more steps planned (accepted max_steps) is not finished");
  }
  if (await finishedRun(p, { ...s, eval_pending: true }, 20, 0)) {
    throw new Error("pending eval is not finished");
  }
});
