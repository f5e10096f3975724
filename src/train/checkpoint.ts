/**
 * Checkpoints: models/{ver}/model/checkpoint-{step}/ with the PEFT adapter, optimizer.safetensors,
 * trainer_state.json and rng_state.json. A checkpoint directory is built under a temp name and renamed into
 * place, so a crash never leaves a half-written checkpoint that --resume could pick. The optimizer file's
 * format is here, written and read; src/train/checkpointer.ts moves the trainer's GPU state through it.
 */
import { join } from "node:path";
import { type RngState, RngStateSchema, type TrainerState, TrainerStateSchema } from "./state.ts";
import { UsageError } from "../util/errors.ts";
import { removeStaleTemps } from "../util/atomic.ts";
import { readSafetensorsFile } from "../safetensors/read_file.ts";
import { writeSafetensors } from "../safetensors/write.ts";

export const CHECKPOINT_RE = /^checkpoint-(\d+)$/;
const COMPLETE_MARKER = "trainer_state.json";

export interface CheckpointFiles {
  /** Writes adapter_model.safetensors + adapter_config.json into dir. */
  writeAdapter(dir: string): Promise<void>;
  /** Writes optimizer.safetensors into dir. */
  writeOptimizer(dir: string): Promise<void>;
}

export async function saveCheckpoint(
  modelDir: string,
  step: number,
  files: CheckpointFiles,
  state: TrainerState,
  rng: RngState,
): Promise<string> {
  const final = join(modelDir, `checkpoint-${step}`);
  const tmp = join(modelDir, `.checkpoint-${step}.tmp-${Deno.pid}`);
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  // Half-written checkpoints of a killed run (resumed with --resume) are never complete: remove them.
  await cleanKilledCheckpoints(modelDir);
  await Deno.mkdir(tmp, { recursive: true });
  await files.writeAdapter(tmp);
  await files.writeOptimizer(tmp);
  await Deno.writeTextFile(join(tmp, "rng_state.json"), JSON.stringify(rng, null, 2) + "\n");
  // trainer_state.json last: its presence marks a complete checkpoint.
  await Deno.writeTextFile(join(tmp, COMPLETE_MARKER), JSON.stringify(state, null, 2) + "\n");
  // A preempted VM may lose power, not just the process: the files reach the disk before the rename that
  // publishes them (rename alone orders nothing about file contents on ext4/xfs).
  await syncDirFiles(tmp);
  // Re-saving a step (after an eval that a stop request had deferred): the old copy stays complete under a
  // recoverable name until the new one is in place (cleanKilledCheckpoints renames it back if we die between).
  const old = join(modelDir, `.checkpoint-${step}.old-${Deno.pid}`);
  let replaced = false;
  try {
    await Deno.rename(final, old);
    replaced = true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await Deno.rename(tmp, final);
  await syncPath(modelDir);
  if (replaced) await Deno.remove(old, { recursive: true });
  return final;
}

/** fsyncs every file in dir, then dir itself. */
async function syncDirFiles(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) if (e.isFile) await syncPath(join(dir, e.name));
  await syncPath(dir);
}

async function syncPath(path: string): Promise<void> {
  if (Deno.build.os === "windows") return; // directories cannot be opened for fsync there
  const f = await Deno.open(path, { read: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}

/**
 * Removes what a killed save or prune left in modelDir (its writer's process gone): temp checkpoint directories
 * (never complete) are deleted; the previous copy of a re-saved step (`.checkpoint-N.old-PID`) is renamed back
 * when the new copy never arrived, else deleted. Returns the removed or restored paths.
 */
export async function cleanKilledCheckpoints(modelDir: string): Promise<string[]> {
  const done = await removeStaleTemps(modelDir, /^\.checkpoint-\d+\.tmp-(\d+)$/);
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(modelDir));
  } catch {
    return done;
  }
  for (const e of entries) {
    const m = /^\.checkpoint-(\d+)\.old-(\d+)$/.exec(e.name);
    if (!m || Number(m[2]) === Deno.pid || await processAlive(Number(m[2])) !== false) continue;
    const path = join(modelDir, e.name);
    const final = join(modelDir, `checkpoint-${m[1]}`);
    if (await exists(join(final, COMPLETE_MARKER))) await Deno.remove(path, { recursive: true });
    else await Deno.rename(path, final);
    done.push(path);
  }
  return done;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Linux: whether /proc/<pid> exists; elsewhere undefined (unknown: leave the entry alone). */
async function processAlive(pid: number): Promise<boolean | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  return await exists(`/proc/${pid}`);
}

/** The newest complete checkpoint, read synchronously (for a signal handler about to exit), or null. */
export function latestCheckpointSync(modelDir: string): { step: number; dir: string } | null {
  let best: { step: number; dir: string } | null = null;
  try {
    for (const e of Deno.readDirSync(modelDir)) {
      const m = e.isDirectory ? CHECKPOINT_RE.exec(e.name) : null;
      if (!m || (best && best.step >= Number(m[1]))) continue;
      try {
        Deno.statSync(join(modelDir, e.name, COMPLETE_MARKER));
        best = { step: Number(m[1]), dir: join(modelDir, e.name) };
      } catch { /* incomplete */ }
    }
  } catch { /* no directory yet */ }
  return best;
}

/** Complete checkpoints in modelDir, oldest first. */
export async function listCheckpoints(modelDir: string): Promise<{ step: number; dir: string }[]> {
  const out: { step: number; dir: string }[] = [];
  try {
    for await (const e of Deno.readDir(modelDir)) {
      const m = e.isDirectory ? CHECKPOINT_RE.exec(e.name) : null;
      if (!m) continue;
      const dir = join(modelDir, e.name);
      try {
        await Deno.stat(join(dir, COMPLETE_MARKER));
        out.push({ step: Number(m[1]), dir });
      } catch { /* incomplete */ }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.step - b.step);
}

/** Deletes the oldest checkpoints beyond `limit`, never the best one. */
export async function pruneCheckpoints(
  modelDir: string,
  limit: number,
  best: string | null,
): Promise<string[]> {
  const all = await listCheckpoints(modelDir);
  const removed: string[] = [];
  let excess = all.length - limit;
  for (const c of all) {
    if (excess <= 0) break;
    if (best && c.dir === best) continue;
    // Renamed out of the checkpoint namespace first: a kill mid-delete must not leave a checkpoint-N that still
    // has its trainer_state.json but lost other files (the next save removes the temp).
    const doomed = join(modelDir, `.checkpoint-${c.step}.tmp-${Deno.pid}`);
    await Deno.rename(c.dir, doomed);
    await Deno.remove(doomed, { recursive: true });
    removed.push(c.dir);
    excess--;
  }
  return removed;
}

export async function readCheckpointState(dir: string): Promise<{ state: TrainerState; rng: RngState }> {
  const read = async (name: string) => {
    try {
      return JSON.parse(await Deno.readTextFile(join(dir, name)));
    } catch (e) {
      throw new UsageError(
        `cannot read ${join(dir, name)}: ${(e as Error).message} (is ${dir} a complete checkpoint?)`,
      );
    }
  };
  const s = TrainerStateSchema.safeParse(await read("trainer_state.json"));
  if (!s.success) throw new UsageError(`${join(dir, "trainer_state.json")}: ${s.error.issues[0].message}`);
  const r = RngStateSchema.safeParse(await read("rng_state.json"));
  if (!r.success) throw new UsageError(`${join(dir, "rng_state.json")}: ${r.error.issues[0].message}`);
  return { state: s.data, rng: r.data };
}

export const OPTIMIZER_FILE = "optimizer.safetensors";

/** AdamW's moments over the flat LoRA arena (src/train/optimizer.ts), as the host holds them. */
export interface OptimizerMoments {
  /** First moment (torch's `exp_avg`). */
  m: Float32Array;
  /** Second moment (torch's `exp_avg_sq`). */
  v: Float32Array;
}

/**
 * Writes `dir`/optimizer.safetensors: the two flat F32 arenas under torch's state names, not torch's
 * `optimizer.pt` (a pickle), tagged with the step they follow.
 */
export async function writeOptimizerState(dir: string, s: OptimizerMoments, step: number): Promise<void> {
  await writeSafetensors(join(dir, OPTIMIZER_FILE), {
    exp_avg: { dtype: "F32", shape: [s.m.length], data: s.m },
    exp_avg_sq: { dtype: "F32", shape: [s.v.length], data: s.v },
  }, { format: "maieutic-adamw", step: String(step) });
}

/** Reads `dir`/optimizer.safetensors; a UsageError when it does not hold `n` values per moment. */
export async function readOptimizerState(dir: string, n: number): Promise<OptimizerMoments> {
  const { tensors } = await readSafetensorsFile(join(dir, OPTIMIZER_FILE));
  const m = tensors.get("exp_avg")?.data as Float32Array | undefined;
  const v = tensors.get("exp_avg_sq")?.data as Float32Array | undefined;
  if (!m || !v || m.length !== n || v.length !== n) {
    throw new UsageError(`${dir}/${OPTIMIZER_FILE} does not fit this model and LoRA configuration`);
  }
  return { m, v };
}
