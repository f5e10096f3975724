/**
 * The records `maieutic score` reads (issue #15): any dialogue file the data loader reads (src/data/load.ts:
 * chat, ShareGPT, pairs; a JSON array or JSON Lines). The LAST model turn of each record is the reply scored,
 * the turns before it are its context. Unlike training, the reply may be empty or hold chat control tokens
 * (that is what a bad model produces): it is scored, not rejected. Everything else goes through the loader's
 * own validation, so a malformed file still exits 2 naming the record and field.
 *
 * Optional extra fields of a record (validated with zod; the loader ignores them):
 *   reference  a gold reply for the same context (its socratic_score is reported beside the reply's)
 *   finish     "stop" | "length": how generation ended ("length" = cut off at the token limit)
 *   samples    more sampled replies for the same context (response_consistency and distinct_2)
 *   id, context_id, split, label, subtype   the labelled set's fields (src/eval/validation.ts)
 */
import { z } from "zod";
import { DataError, type DataIssue, describe, MAX_REPORTED } from "../data/errors.ts";
import {
  CONTROL_MARKERS,
  firstInvalidUtf8,
  parseDialogues,
  readDataFile,
  validateRecord,
} from "../data/load.ts";
import type { DataFormat } from "../data/schema.ts";
import type { EvalSample } from "./metrics.ts";
import { type LabelFields, LabelFieldsSchema } from "./validation.ts";

export const ScoreExtrasSchema = z.object({
  reference: z.string().optional(),
  finish: z.enum(["stop", "length"]).optional(),
  samples: z.array(z.string()).optional(),
});

export interface ScoreRecord {
  /** 0-based record index in the file; `line` for JSON Lines. */
  index: number;
  /** Index of the scored model turn in the dialogue (after a system message is folded in). */
  turn: number;
  line?: number;
  format: DataFormat;
  sample: EvalSample;
  label?: LabelFields;
}

/** Model roles as the loader's normalizeRole knows them. */
const MODEL_ROLES = new Set(["assistant", "model", "gpt"]);

/** The JSON values of a file's records, or null when the file does not parse (the loader then reports why). */
function records(text: string): { value: unknown; line?: number }[] | null {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const first = text.search(/\S/);
  if (first < 0) return null;
  try {
    if (text[first] === "[") {
      const v = JSON.parse(text);
      return Array.isArray(v) && v.length ? v.map((value) => ({ value })) : null;
    }
    if (text[first] !== "{") return null;
    try {
      return [{ value: JSON.parse(text), line: text.slice(0, first).split("\n").length }];
    } catch { /* JSON Lines */ }
    const out: { value: unknown; line?: number }[] = [];
    text.split("\n").forEach((raw, i) => {
      if (raw.trim() !== "") out.push({ value: JSON.parse(raw), line: i + 1 });
    });
    return out.length ? out : null;
  } catch {
    return null;
  }
}

/**
 * Where the reply of a raw record lives: [container key, index] of the last model message, or ["output"].
 * Null when the record has no such string field (the loader will say what is wrong).
 */
function replyField(o: Record<string, unknown>): { key: string; index?: number; text: string } | null {
  for (
    const [key, roleKey, textKey] of [["messages", "role", "content"], ["conversations", "from", "value"]]
  ) {
    const list = o[key];
    if (!Array.isArray(list)) continue;
    for (let i = list.length - 1; i >= 0; i--) {
      const m = list[i] as Record<string, unknown> | null;
      if (m && typeof m === "object" && MODEL_ROLES.has(m[roleKey] as string)) {
        return typeof m[textKey] === "string" ? { key, index: i, text: m[textKey] as string } : null;
      }
    }
    return null;
  }
  return typeof o.output === "string" ? { key: "output", text: o.output } : null;
}

/** The raw record with its reply replaced by a placeholder the loader accepts (when the reply is odd). */
function withPlaceholder(o: Record<string, unknown>, f: NonNullable<ReturnType<typeof replyField>>) {
  const odd = f.text.trim() === "" || CONTROL_MARKERS.some((m) => f.text.includes(m));
  if (!odd) return o;
  const copy = structuredClone(o);
  if (f.index === undefined) copy.output = "x";
  else {
    const m = (copy[f.key] as Record<string, unknown>[])[f.index];
    m[f.key === "messages" ? "content" : "value"] = "x";
  }
  return copy;
}

/**
 * Parses a file for scoring (see the file comment). Throws DataError (exit 2) for a malformed file.
 * `allTurns`: every model turn of every record is a reply to score (its earlier turns are its context).
 */
export function parseScoreRecords(
  data: Uint8Array | string,
  file: string,
  { allTurns = false }: { allTurns?: boolean } = {},
): ScoreRecord[] {
  const utf8 = typeof data === "string" || firstInvalidUtf8(data) < 0;
  const raw = utf8 ? records(typeof data === "string" ? data : new TextDecoder().decode(data)) : null;
  if (raw === null) {
    // Not parseable JSON / JSON Lines, not UTF-8, or empty: the loader reports exactly where.
    parseDialogues(data, file);
    throw new DataError(file, [{ found: "no dialogue records", expected: "at least one dialogue" }]);
  }
  const out: ScoreRecord[] = [];
  const issues: DataIssue[] = [];
  let total = 0;
  const report = (xs: DataIssue[]) => {
    total += xs.length;
    for (const x of xs) if (issues.length < MAX_REPORTED) issues.push(x);
  };
  raw.forEach(({ value, line }, index) => {
    const obj = value !== null && typeof value === "object" && !Array.isArray(value)
      ? value as Record<string, unknown>
      : null;
    const field = obj ? replyField(obj) : null;
    const d = validateRecord(obj && field ? withPlaceholder(obj, field) : value, index, line);
    if (Array.isArray(d)) return report(d);
    const extras = ScoreExtrasSchema.safeParse(obj);
    const labelled = obj && ["label", "split", "context_id"].some((k) => k in obj);
    const label = labelled ? LabelFieldsSchema.safeParse(obj) : null;
    const bad = [
      ...(extras.success ? [] : extras.error.issues),
      ...(label && !label.success ? label.error.issues : []),
    ];
    if (bad.length) {
      return report(bad.map((iss) => {
        const path = iss.path.map((p) => typeof p === "number" ? `[${p}]` : String(p)).join(".")
          .replace(/\.\[/g, "[");
        const found = describe(
          iss.path.reduce<unknown>((v, p) => (v as Record<PropertyKey, unknown>)?.[p], obj),
        );
        return { record: index, line, field: path, found, expected: iss.message };
      }));
    }
    // The reply is the last model turn; a trailing user turn without a reply is not part of the context.
    let k = d.turns.length - 1;
    while (k >= 0 && d.turns[k].role !== "model") k--;
    const reply = field ? field.text : d.turns[k].content;
    const context = (upTo: number) =>
      d.turns.slice(0, upTo).map((t) => ({ role: t.role, content: t.content }));
    if (allTurns) {
      // The earlier model turns, each a reply to its own context (the record's extras belong to the last).
      d.turns.forEach((t, j) => {
        if (t.role === "model" && j < k) {
          out.push({
            index,
            turn: j,
            line,
            format: d.format,
            sample: { context: context(j), generated: t.content },
          });
        }
      });
    }
    out.push({
      index,
      turn: k,
      line,
      format: d.format,
      sample: {
        context: context(k),
        generated: reply,
        ...(extras.data!.reference !== undefined ? { reference: extras.data!.reference } : {}),
        ...(extras.data!.finish !== undefined ? { finish: extras.data!.finish } : {}),
        ...(extras.data!.samples !== undefined ? { samples: extras.data!.samples } : {}),
      },
      ...(label?.success ? { label: label.data } : {}),
    });
  });
  if (total > 0) throw new DataError(file, issues, total);
  return out;
}

/** Reads and parses a file for scoring (the bundled 1gouki.json also from the embedded copy). */
export async function loadScoreRecords(
  path: string,
  opts: { allTurns?: boolean } = {},
): Promise<ScoreRecord[]> {
  return parseScoreRecords(await readDataFile(path), path, opts);
}
