/**
 * Resolves the configuration: defaults < --config file.json < --set key.path=value < dedicated flags
 * (docs/ARCHITECTURE.md#configuration). Every problem is a UsageError naming the key, the value, what is allowed and the closest key.
 */
import { z } from "zod";
import { UsageError } from "../util/errors.ts";
import { type Config, ConfigSchema } from "./schema.ts";
import { closest } from "./suggest.ts";
import { applyPreset, presetFor } from "./presets.ts";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** All dotted key paths the schema accepts, e.g. "training.learning_rate". */
export function knownKeys(): string[] {
  const out: string[] = [];
  const walk = (shape: Record<string, z.ZodType>, prefix: string) => {
    for (const [k, v] of Object.entries(shape)) {
      const inner = unwrap(v);
      if (inner instanceof z.ZodObject) walk(inner.shape as Record<string, z.ZodType>, `${prefix}${k}.`);
      else out.push(prefix + k);
    }
  };
  walk(ConfigSchema.shape as Record<string, z.ZodType>, "");
  return out;
}

function unwrap(t: z.ZodType): z.ZodType {
  let cur: z.ZodType = t;
  while (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional) {
    cur = cur.unwrap() as z.ZodType;
  }
  return cur;
}

/** `--set a.b=value`: the value is JSON when it parses as JSON, else a string. */
export function parseSet(assignment: string): { path: string[]; value: Json } {
  const eq = assignment.indexOf("=");
  if (eq <= 0) {
    throw new UsageError(
      `--set expects key.path=value, got "${assignment}" (e.g. --set training.learning_rate=1e-4)`,
    );
  }
  const key = assignment.slice(0, eq).trim();
  const raw = assignment.slice(eq + 1);
  let value: Json;
  try {
    value = JSON.parse(raw) as Json;
  } catch {
    value = raw;
  }
  return { path: key.split("."), value };
}

export function setPath(obj: Obj, path: string[], value: Json): void {
  let cur = obj;
  for (const p of path.slice(0, -1)) {
    const next = cur[p];
    if (next === undefined || next === null || typeof next !== "object" || Array.isArray(next)) cur[p] = {};
    cur = cur[p] as Obj;
  }
  cur[path[path.length - 1]] = value;
}

export function deepMerge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === "object" && !Array.isArray(v) && b && typeof b === "object" && !Array.isArray(b)
        ? deepMerge(b as Obj, v as Obj)
        : v;
  }
  return out;
}

export interface ConfigSources {
  /** Path of a JSON config file (--config). */
  configFile?: string;
  /** Raw `--set` assignments, in order. */
  sets?: string[];
  /** Values from dedicated flags, already as a partial config object. */
  flags?: Obj;
}

export function resolveConfig(src: ConfigSources): Config {
  let merged: Obj = {};
  if (src.configFile) merged = deepMerge(merged, readConfigFile(src.configFile));
  for (const s of src.sets ?? []) {
    const { path, value } = parseSet(s);
    const patch: Obj = {};
    setPath(patch, path, value);
    merged = deepMerge(merged, patch);
  }
  if (src.flags) merged = deepMerge(merged, src.flags);
  const preset = presetFor((merged.model as Obj | undefined)?.name);
  if (preset) merged = applyPreset(merged, preset) as Obj;
  return validateConfig(merged, src.configFile);
}

function readConfigFile(path: string): Obj {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UsageError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) {
    throw new UsageError(
      `config file ${path} must hold a JSON object like {"training": {"learning_rate": 1e-4}}`,
    );
  }
  return obj as Obj;
}

export function validateConfig(obj: Obj, where?: string): Config {
  const r = ConfigSchema.safeParse(obj);
  if (r.success) return r.data;
  const keys = knownKeys();
  const lines = r.error.issues.map((iss) => {
    const at = iss.path.join(".");
    if (iss.code === "unrecognized_keys") {
      return iss.keys.map((k) => {
        const full = at ? `${at}.${k}` : k;
        const near = closest(full, keys);
        return `unknown config key "${full}"` + (near ? ` (did you mean "${near}"?)` : "") +
          `; valid keys: ${keys.filter((x) => x.startsWith(at)).join(", ")}`;
      }).join("\n");
    }
    const got = iss.path.reduce<unknown>(
      (
        o,
        p,
      ) => (o && typeof o === "object" ? (o as Record<PropertyKey, unknown>)[p as PropertyKey] : undefined),
      obj,
    );
    return `bad value for "${at}": ${JSON.stringify(got)}: ${iss.message}`;
  });
  throw new UsageError(
    `invalid configuration${where ? ` (from ${where} and flags)` : ""}:\n  ${lines.join("\n  ")}`,
  );
}
