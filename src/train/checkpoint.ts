/**
 * Checkpoints: models/{ver}/model/checkpoint-{step}/ with the PEFT adapter, optimizer.safetensors,
 * trainer_state.json and rng_state.json. A checkpoint directory is built under a temp name and renamed into
 * place, so a crash never leaves a half-written checkpoint that --resume could pick.
 */
import { join } from "node:path";
import { type RngState, RngStateSchema, type TrainerState, TrainerStateSchema } from "./state.ts";
import { UsageError } from "../util/errors.ts";
import { removeStaleTemps } from "../util/atomic.ts";

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
  await removeStaleTemps(modelDir, /^\.checkpoint-\d+\.tmp-(\d+)$/);
  await Deno.mkdir(tmp, { recursive: true });
  await files.writeAdapter(tmp);
  await files.writeOptimizer(tmp);
  await Deno.writeTextFile(join(tmp, "rng_state.json"), JSON.stringify(rng, null, 2) + "\n");
  // trainer_state.json last: its presence marks a complete checkpoint.
  await Deno.writeTextFile(join(tmp, COMPLETE_MARKER), JSON.stringify(state, null, 2) + "\n");
  await Deno.remove(final, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, final);
  return final;
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
    await Deno.remove(c.dir, { recursive: true });
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
