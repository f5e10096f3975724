/**
 * Problems in a dialogue file (docs/ARCHITECTURE.md#data): every problem names the record and field, what was found and what
 * is expected; a whole file's problems are reported together (up to MAX_REPORTED) as one UsageError (exit 2).
 */
import { UsageError } from "../util/errors.ts";

export const MAX_REPORTED = 20;

export interface DataIssue {
  /** 0-based index of the record (array element or JSON line); absent for whole-file problems. */
  record?: number;
  /** 1-based line in the file, when known (JSON Lines, JSON syntax errors, invalid UTF-8). */
  line?: number;
  /** Dotted path inside the record, e.g. "messages[2].role". */
  field?: string;
  found: string;
  expected: string;
}

export function formatIssue(i: DataIssue): string {
  let loc = i.record !== undefined
    ? `record ${i.record}${i.line !== undefined ? ` (line ${i.line})` : ""}`
    : i.line !== undefined
    ? `line ${i.line}`
    : "";
  if (i.field !== undefined) loc += `${loc ? ", " : ""}field ${i.field}`;
  if (!loc) loc = "file";
  return `${loc}: found ${i.found}; expected ${i.expected}`;
}

/** All problems of one data file. `issues` holds at most MAX_REPORTED of them; `total` counts all. */
export class DataError extends UsageError {
  override name = "DataError";
  constructor(readonly file: string, readonly issues: DataIssue[], readonly total: number = issues.length) {
    const shown = issues.slice(0, MAX_REPORTED);
    const more = total - shown.length;
    super(
      `${file}: ${total} problem${total === 1 ? "" : "s"} in the dialogue data` +
        (more > 0 ? ` (the first ${shown.length} shown)` : "") + ":\n" +
        shown.map((i) => "  " + formatIssue(i)).join("\n") +
        (more > 0 ? `\n  ... and ${more} more` : "") +
        "\nAccepted records: chat {messages:[{role,content}]}, ShareGPT {conversations:[{from,value}]}, " +
        "pairs {instruction?, input, output}; a JSON array or JSON Lines, UTF-8 (see data/dialogue/README.md).",
    );
  }
}

/** A short description of a JSON value for "found ...". */
export function describe(v: unknown): string {
  if (v === undefined) return "nothing (the field is missing)";
  if (v === null) return "null";
  if (typeof v === "string") {
    if (v.length === 0) return "an empty string";
    if (v.trim().length === 0) return `only whitespace ${JSON.stringify(v)}`;
    const s = JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v);
    return `the string ${s}`;
  }
  if (typeof v === "number" || typeof v === "boolean") return `${typeof v} ${String(v)}`;
  if (Array.isArray(v)) return `an array of ${v.length} item${v.length === 1 ? "" : "s"}`;
  if (typeof v === "object") {
    const keys = Object.keys(v as object);
    return keys.length ? `an object with keys ${keys.slice(0, 8).join(", ")}` : "an empty object";
  }
  return typeof v;
}
