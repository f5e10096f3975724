/**
 * What makes two launches the same run for `--resume`: every resolved configuration key that can change the
 * trained adapter, the data order or the logged metrics, plus fingerprints of the data files. A relaunch whose
 * identity differs from the one recorded in model/training_config.json would silently train something else
 * from the checkpoint, so it exits 2 naming the keys unless they are accepted (`--accept-changes`).
 */
import { type Config, ConfigSchema } from "../config/schema.ts";
import { closest } from "../config/suggest.ts";
import { UsageError } from "../util/errors.ts";

/**
 * Keys a relaunch may change freely: where the run lives, how often it is saved, when the watchdog stops it,
 * and activation recomputation (the same arithmetic, less memory). The data paths are free because their
 * contents are compared instead (a moved file is the same data).
 */
export const FREE_KEYS: ReadonlySet<string> = new Set([
  "output_dir",
  "data",
  "eval_data",
  "training.save_steps",
  "training.save_total_limit",
  "training.save_every_minutes",
  "training.loss_watchdog_threshold",
  "training.loss_watchdog_patience",
  "training.gradient_checkpointing",
]);

/** Fingerprint keys, named as in model/training_config.json. */
export const FINGERPRINT_KEYS = ["data_sha256", "eval_data_sha256"] as const;

export interface Fingerprints {
  data_sha256: string;
  /** Absent when there is no eval_data file. */
  eval_data_sha256?: string;
}

/** Flattens nested objects to dotted keys (`training.learning_rate`); arrays and scalars are leaves (JSON text). */
export function flatten(obj: Record<string, unknown>, prefix = ""): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [kk, vv] of flatten(v as Record<string, unknown>, key)) out.set(kk, vv);
    } else if (v !== undefined) {
      out.set(key, JSON.stringify(v));
    }
  }
  return out;
}

/** The identity of a run: the compared keys and their values (JSON text). */
export function runIdentity(cfg: Config, fp: Fingerprints): Map<string, string> {
  const id = flatten(cfg as unknown as Record<string, unknown>);
  for (const k of FREE_KEYS) id.delete(k);
  id.set("data_sha256", JSON.stringify(fp.data_sha256));
  if (fp.eval_data_sha256 !== undefined) id.set("eval_data_sha256", JSON.stringify(fp.eval_data_sha256));
  return id;
}

/** A fingerprint the record predates: says nothing, so never a difference. */
const UNRECORDED = "\u0000unrecorded";

/**
 * The identity recorded in a training_config.json (the resolved config plus data_sha256 etc.). A key the record
 * lacks (the schema gained it since) is unrecorded, not a difference: its default may not be what the recording
 * run used (a preset such as `--model tiny` fills keys with other values).
 */
export function recordedIdentity(recorded: unknown, file: string): Map<string, string> {
  const r = (recorded && typeof recorded === "object" ? recorded : {}) as Record<string, unknown>;
  const cfg = ConfigSchema.safeParse({
    model: r.model,
    quantization: r.quantization,
    lora: r.lora,
    training: r.training,
    data: r.data,
    eval_data: r.eval_data,
    output_dir: r.output_dir,
  });
  if (!cfg.success) {
    const issue = cfg.error.issues[0];
    throw new UsageError(
      `${file}: ${
        issue.path.join(".") || "(root)"
      }: ${issue.message}; this run directory was not written by ` +
        `this version of maieutic. Start over with --overwrite or choose another --output-dir.`,
    );
  }
  const id = runIdentity(cfg.data, {
    data_sha256: typeof r.data_sha256 === "string" ? r.data_sha256 : UNRECORDED,
    eval_data_sha256: typeof r.eval_data_sha256 === "string"
      ? r.eval_data_sha256
      : cfg.data.eval_data !== undefined
      ? UNRECORDED
      : undefined,
  });
  const raw = flatten(r);
  for (const key of id.keys()) {
    if (!raw.has(key) && !(FINGERPRINT_KEYS as readonly string[]).includes(key)) {
      id.set(key, JSON.stringify(UNRECORDED));
    }
  }
  return id;
}

export interface IdentityChange {
  key: string;
  /** JSON text, or undefined when the key is absent on that side. */
  recorded?: string;
  now?: string;
}

/** Keys whose values differ, sorted. */
export function diffIdentity(recorded: Map<string, string>, now: Map<string, string>): IdentityChange[] {
  const out: IdentityChange[] = [];
  for (const key of new Set([...recorded.keys(), ...now.keys()])) {
    const a = recorded.get(key);
    const b = now.get(key);
    if (a === b || a === JSON.stringify(UNRECORDED)) continue;
    out.push({ key, recorded: a, now: b });
  }
  return out.sort((x, y) => x.key.localeCompare(y.key));
}

/** Every key `--accept-changes` may name. */
export function acceptableKeys(): string[] {
  const keys = [...flatten(ConfigSchema.parse({}) as unknown as Record<string, unknown>).keys()];
  return [...keys.filter((k) => !FREE_KEYS.has(k)), "eval_data", ...FINGERPRINT_KEYS];
}

/** Parses `--accept-changes` values (repeatable, comma-separated); an unknown key exits 2 naming the closest. */
export function parseAcceptedKeys(values: readonly string[]): Set<string> {
  const valid = acceptableKeys();
  const out = new Set<string>();
  for (const key of values.flatMap((v) => v.split(",")).map((s) => s.trim()).filter(Boolean)) {
    if (FREE_KEYS.has(key)) continue; // never compared: accepting it is a no-op, not an error
    if (!valid.includes(key)) {
      const near = closest(key, valid);
      throw new UsageError(
        `--accept-changes: unknown key "${key}"` + (near ? ` (did you mean ${near}?)` : "") +
          `; name configuration keys such as training.learning_rate, or data_sha256 for changed data`,
      );
    }
    out.add(key);
  }
  return out;
}

const show = (v: string | undefined) => v === undefined ? "(unset)" : v;

/** The exit-2 message: the differing keys, then the two ways on. */
export function changedConfigMessage(runDir: string, checkpoint: string, changes: IdentityChange[]): string {
  const keys = changes.map((c) => c.key);
  return [
    `--resume: ${runDir} was trained with a different configuration (${keys.join(", ")}):`,
    ...changes.map((c) => `  ${c.key}: ${show(c.recorded)} in the run, ${show(c.now)} now`),
    `Either start over with --overwrite, or continue from ${checkpoint} with the new values with ` +
    `--accept-changes ${keys.join(",")}`,
  ].join("\n");
}
