/**
 * The run directory (docs/ARCHITECTURE.md#the-output-tree): `{output_dir}/{model version}/` with `model/` (the
 * adapter, checkpoints, training_config.json) and `logs/` (metrics, summary, plots, data report, samples).
 * Where a launch starts in it (step 0 or a checkpoint) is src/train/resume.ts.
 */
import { join, resolve } from "node:path";
import type { Config } from "../config/schema.ts";
import { modelVersion } from "../data/mod.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { versions } from "../util/versions.ts";
import { cleanKilledWrites, hasRun, type RunDirs } from "./resume.ts";
import type { StepPlan } from "./schedule.ts";

/** runDir and its model/ and logs/ folders. */
export type RunPaths = RunDirs;

export function runPaths(cfg: Config): RunPaths {
  const runDir = join(cfg.output_dir, modelVersion(cfg.data));
  return { runDir, modelDir: join(runDir, "model"), logsDir: join(runDir, "logs") };
}

/**
 * Makes model/ and logs/ (emptied first with --overwrite, when a run is there) and removes the temp files of
 * launches killed mid-write.
 */
export async function prepareRunDir(paths: RunPaths, overwrite: boolean | undefined): Promise<void> {
  if (overwrite && await hasRun(paths)) {
    await Deno.remove(paths.modelDir, { recursive: true }).catch(() => {});
    await Deno.remove(paths.logsDir, { recursive: true }).catch(() => {});
  }
  await Deno.mkdir(paths.modelDir, { recursive: true });
  await Deno.mkdir(paths.logsDir, { recursive: true });
  await cleanKilledWrites(paths);
}

/** The first 8 bytes of the SHA-256 of the configuration's JSON, in hex: names a configuration in the outputs. */
export async function configHash(cfg: Config): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(cfg)));
  return Array.from(new Uint8Array(d).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What training_config.json records besides the configuration. */
export interface RunRecord {
  /** SHA-256 of the data files (src/train/run_identity.ts compares them on --resume). */
  fingerprints: { data_sha256: string; eval_data_sha256?: string };
  source: { source: string; revision?: string; randomWeights: boolean };
  plan: StepPlan;
}

/**
 * Writes model/training_config.json: the resolved configuration with the data's path and fingerprints, the
 * model source, the step plan, the config hash and the versions. Returns the config hash.
 */
export async function writeTrainingConfig(paths: RunPaths, cfg: Config, r: RunRecord): Promise<string> {
  const hash = await configHash(cfg);
  await writeJsonAtomic(join(paths.modelDir, "training_config.json"), {
    ...cfg,
    resolved_data: resolve(cfg.data),
    ...r.fingerprints,
    model_source: {
      name: r.source.source,
      revision: r.source.revision ?? null,
      random_weights: r.source.randomWeights,
    },
    config_hash: hash,
    plan: r.plan,
    versions: versions(),
  });
  return hash;
}
