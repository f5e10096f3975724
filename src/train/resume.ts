/**
 * Where a `maieutic train` launch starts, so that one command line (`--resume`) is right after any preemption:
 * - no run yet, or a run killed before its first complete checkpoint: step 0, with one line saying so;
 * - a complete checkpoint: the latest one, when the run's recorded configuration (model/training_config.json)
 *   matches this launch's in every key that changes the run (src/train/run_identity.ts); otherwise exit 2
 *   naming the keys, with the two ways on (--overwrite, --accept-changes KEY,...).
 * Without --resume an existing run is never touched unless --overwrite says so.
 */
import { join } from "node:path";
import { UsageError } from "../util/errors.ts";
import { removeStaleTemps, writeFileAtomic } from "../util/atomic.ts";
import { cleanKilledCheckpoints, listCheckpoints, readCheckpointState } from "./checkpoint.ts";
import { changedConfigMessage, diffIdentity, recordedIdentity } from "./run_identity.ts";
import type { RngState, TrainerState } from "./state.ts";

export interface RunDirs {
  runDir: string;
  modelDir: string;
  logsDir: string;
}

export interface StartRequest {
  /** "latest" (bare --resume) or a checkpoint directory. */
  resume?: string;
  overwrite?: boolean;
  /** Keys --accept-changes names (validated by parseAcceptedKeys). */
  accept?: ReadonlySet<string>;
  /** This launch's run identity (runIdentity). */
  identity: Map<string, string>;
  seed: number;
}

export type StartPoint =
  | { kind: "fresh"; /** One line for the user, when --resume found nothing to continue. */ note?: string }
  | { kind: "checkpoint"; dir: string; state: TrainerState; rng: RngState; accepted: string[] };

async function nonEmpty(dir: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(dir)) return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  return false;
}

/** Whether the run directory holds anything (a run, possibly killed before its first checkpoint). */
export async function hasRun(paths: RunDirs): Promise<boolean> {
  return await nonEmpty(paths.modelDir) || await nonEmpty(paths.logsDir);
}

/** Decides the start point; throws UsageError (exit 2) for every case the user has to decide. */
export async function resolveStart(paths: RunDirs, req: StartRequest): Promise<StartPoint> {
  if (req.resume && req.overwrite) throw new UsageError("--resume and --overwrite exclude each other");
  if (!req.resume) {
    if (!req.overwrite && await hasRun(paths)) {
      throw new UsageError(
        `${paths.runDir} already holds a run. Continue it with --resume, start over with --overwrite, ` +
          `or choose another --output-dir.`,
      );
    }
    return { kind: "fresh" };
  }
  let dir: string;
  if (req.resume !== "latest") {
    try {
      await Deno.stat(join(req.resume, "trainer_state.json"));
    } catch {
      throw new UsageError(`--resume ${req.resume}: not a complete checkpoint (no trainer_state.json there)`);
    }
    dir = req.resume;
  } else {
    // A kill while re-saving a step may have left the complete previous copy under a temp name: restore it first.
    await cleanKilledCheckpoints(paths.modelDir);
    const all = await listCheckpoints(paths.modelDir);
    if (!all.length) {
      return {
        kind: "fresh",
        note: await hasRun(paths)
          ? `--resume: no complete checkpoint under ${paths.modelDir} yet (stopped before the first one); ` +
            `starting from step 0`
          : `--resume: no run under ${paths.runDir} yet; starting from step 0`,
      };
    }
    dir = all[all.length - 1].dir;
  }
  const { state, rng } = await readCheckpointState(dir);
  const recorded = await recordedOf(paths);
  // A run directory written before training_config.json existed records nothing to compare but the seed.
  const changes = recorded ? diffIdentity(recorded, req.identity) : [];
  // The checkpoint's own record of the seed (rng_state.json) decides the data order and dropout it continues.
  if (rng.seed !== req.seed && !changes.some((c) => c.key === "training.seed")) {
    changes.push({ key: "training.seed", recorded: String(rng.seed), now: String(req.seed) });
  }
  const refused = changes.filter((c) => !req.accept?.has(c.key));
  if (refused.length) throw new UsageError(changedConfigMessage(paths.runDir, dir, refused));
  return { kind: "checkpoint", dir, state, rng, accepted: changes.map((c) => c.key) };
}

/** The identity recorded by the run's last launch, or null when it recorded none. */
async function recordedOf(paths: RunDirs): Promise<Map<string, string> | null> {
  const file = join(paths.modelDir, "training_config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not JSON (${(e as Error).message}); start over with --overwrite`);
  }
  return recordedIdentity(json, file);
}

/** Temp files of writers a kill interrupted (src/util/atomic.ts names them `<name>.<pid>.<8 hex>.tmp`). */
const ATOMIC_TEMP = /^.+\.(\d+)\.[0-9a-f]{8}\.tmp$/;

/** Removes what killed launches left behind: atomic-write temps in the run's folders, temp checkpoints. */
export async function cleanKilledWrites(paths: RunDirs): Promise<string[]> {
  const removed = await cleanKilledCheckpoints(paths.modelDir);
  for (const dir of [paths.modelDir, paths.logsDir, join(paths.logsDir, "samples")]) {
    removed.push(...await removeStaleTemps(dir, ATOMIC_TEMP));
  }
  return removed;
}

/**
 * A checkpoint saved with its eval still pending (state.eval_pending) may be followed in the CSV by that eval's
 * row, written by a launch killed before it re-saved the step. The resumed run evaluates again, so that row goes
 * (MetricsCsv.open then keeps every row up to the checkpoint's step).
 */
export async function dropPendingEvalRows(csvPath: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(csvPath);
  } catch {
    return;
  }
  // Filtered as text by column name, so rows keep their exact formatting.
  const lines = text.split("\n");
  const header = lines[0].split(",");
  const [iStep, iEval] = [header.indexOf("step"), header.indexOf("eval_loss")];
  if (iStep < 0 || iEval < 0) return;
  const kept = lines.filter((line, i) => {
    const cells = line.split(",");
    return i === 0 || !(cells[iStep] === String(step) && (cells[iEval] ?? "") !== "");
  });
  if (kept.length !== lines.length) await writeFileAtomic(csvPath, kept.join("\n"));
}

/**
 * Whether the checkpoint resumed from ended the run and that run's outputs were written (the final adapter and
 * a summary saying it completed): a relaunch then has nothing to do.
 */
export async function finishedRun(
  paths: RunDirs,
  state: TrainerState,
  totalSteps: number,
  earlyStoppingPatience: number,
): Promise<boolean> {
  const ended = !state.eval_pending &&
    (state.global_step >= totalSteps ||
      (earlyStoppingPatience > 0 && state.early_stopping_patience_counter >= earlyStoppingPatience));
  if (!ended) return false;
  try {
    await Deno.stat(join(paths.modelDir, "adapter_model.safetensors"));
    const summary = JSON.parse(await Deno.readTextFile(join(paths.logsDir, "training_summary.json")));
    return (summary.status === "completed" || summary.status === "early_stopping") &&
      summary.total_steps === state.global_step;
  } catch {
    return false; // killed before the outputs were written: the normal path writes them
  }
}
