/**
 * What the API, the job files and the callbacks may say about the server's machine: paths relative to the
 * roots a caller named them by (the promise in schema.ts: no server-side absolute paths), and no secret. The
 * eval report names its files by absolute path (`adapter.path`, `data.path`, `config.data`, `report_path`), and
 * an error's stderr tail may name any file, so every string of a report and of an error goes through here
 * before it is stored.
 */
import { basename, isAbsolute, normalize, relative, sep } from "node:path";

export interface PathContext {
  /** absolute root directories, lexical and real; a path inside one is shown relative to it */
  roots: string[];
  /** the server's working directory (paths inside it are shown relative to it) */
  cwd: string;
}

function inside(root: string, p: string): string | undefined {
  const rel = relative(root, p);
  if (rel === "" || rel === ".." || rel.startsWith(".." + sep) || isAbsolute(rel)) return undefined;
  return rel;
}

/** One absolute path as the caller may see it: root-relative, cwd-relative, or only its last component. */
export function relativePath(p: string, ctx: PathContext): string {
  const n = normalize(p);
  const roots = [...ctx.roots].sort((a, b) => b.length - a.length);
  for (const r of roots) {
    const rel = inside(r, n);
    if (rel !== undefined) return rel;
  }
  const rel = inside(ctx.cwd, n);
  if (rel !== undefined) return rel;
  return `…/${basename(n)}`;
}

// An absolute POSIX path that is not part of a URL ("https://host/x") or of a relative path ("a/b", "1/2").
// (One character class repeated, no nested quantifier: linear time on any input.)
const ABS_PATH = /(?<![\w:/.~\-])\/[\w.@%+=~,\-][\w.@%+=~,\-/]*/g;

/** Rewrites every absolute path in a text. */
export function relativeText(s: string, ctx: PathContext): string {
  return s.replace(ABS_PATH, (m) => relativePath(m, ctx));
}

/** Removes every secret (whole occurrences) from a text. */
export function redactText(s: string, secrets: readonly string[]): string {
  for (const secret of secrets) if (secret) s = s.split(secret).join("***");
  return s;
}

/** Deep copy of a JSON value with every string made relative and redacted. */
export function cleanValue(v: unknown, ctx: PathContext, secrets: readonly string[]): unknown {
  if (typeof v === "string") return redactText(relativeText(v, ctx), secrets);
  if (Array.isArray(v)) return v.map((x) => cleanValue(x, ctx, secrets));
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = cleanValue(x, ctx, secrets);
    return out;
  }
  return v;
}

/**
 * A report no larger than `limit` bytes of JSON: as is when it fits, else its top-level scalars (the metrics)
 * with `truncated` saying what was dropped (the full report stays in the eval's own report file).
 */
export function capReport(report: Record<string, unknown>, limit: number): Record<string, unknown> {
  const bytes = new TextEncoder().encode(JSON.stringify(report)).length;
  if (bytes <= limit) return report;
  const summary: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(report)) {
    if (typeof v === "number" || typeof v === "boolean" || v === null) summary[k] = v;
    else if (typeof v === "string" && v.length <= 256) summary[k] = v;
  }
  summary.truncated = {
    bytes,
    limit,
    note: "report over the size limit: only its top-level scalars are kept",
  };
  if (JSON.stringify(summary).length > limit) {
    return { truncated: { bytes, limit, note: "report over the size limit" } };
  }
  return summary;
}

/** Hub tokens the eval child may hold (src/cli/env.ts reads the first two). */
export const HUB_TOKEN_VARS = ["HUGGINGFACE_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"];
