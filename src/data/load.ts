/**
 * Loading dialogue files (docs/ARCHITECTURE.md#data): chat `messages`, ShareGPT `conversations` or `instruction/input/output`
 * pairs, as a JSON array or JSON Lines, detected per record and zod-validated. A system message is folded into
 * the first user turn (Gemma has no system role; pairs' `instruction` is treated the same way), roles become
 * user/model and must alternate, starting with the user, with at least one model turn. All problems of a file
 * are collected and thrown together as one DataError (a UsageError, exit 2).
 */
import { bundledData } from "./bundled.ts";
import { basename, extname } from "node:path";
import type { z } from "zod";
import { UsageError } from "../util/errors.ts";
import { closest } from "../config/suggest.ts";
import { DataError, type DataIssue, describe, MAX_REPORTED } from "./errors.ts";
import {
  ChatRecordSchema,
  type DataFormat,
  type Dialogue,
  normalizeRole,
  PairRecordSchema,
  ShareGptRecordSchema,
  type Turn,
} from "./schema.ts";

/** Chat control markers that must not appear in dialogue text (they would become control tokens). */
export const CONTROL_MARKERS = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>"];

const FORMAT_KEYS = ["messages", "conversations", "instruction", "input", "output"];
const EXPECTED_RECORD = 'an object with "messages" (chat), "conversations" (ShareGPT) or ' +
  '"instruction"/"input"/"output" (pairs)';

/** MODEL_VERSION (docs/ARCHITECTURE.md#data): the data file's name without its extension ("…/1gouki.json" -> "1gouki"). */
export function modelVersion(dataPath: string): string {
  const base = basename(dataPath);
  const ext = extname(base);
  return ext && ext !== base ? base.slice(0, -ext.length) : base;
}

/** Reads and validates a dialogue file. Throws UsageError (DataError for content problems). */
export async function loadDialogues(path: string): Promise<Dialogue[]> {
  return parseDialogues(await readDataFile(path), path);
}

/**
 * The bytes of a data file. The bundled default (data/dialogue/processed/1gouki.json) falls back to the copy
 * embedded in the program when the file is not on disk (a compiled binary run outside a checkout).
 */
export async function readDataFile(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const embedded = e instanceof Deno.errors.NotFound ? bundledData(path) : null;
    if (embedded) return embedded;
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `${path}: data file not found (pass --data FILE with a dialogue file, JSON or JSONL)`,
      );
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`${path}: is a directory; --data expects a dialogue file (JSON or JSONL)`);
    }
    throw new UsageError(`${path}: cannot read the data file (${(e as Error).message})`);
  }
  return bytes;
}

/** The SHA-256 of a data file's bytes (as readDataFile reads them), in hex: what runs and reports record. */
export async function sha256DataFile(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", (await readDataFile(path)) as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Parses and validates the contents of a dialogue file; `file` is used in messages. */
export function parseDialogues(data: Uint8Array | string, file: string): Dialogue[] {
  const issues: DataIssue[] = [];
  let text: string;
  if (typeof data === "string") {
    text = data;
  } else {
    const bad = firstInvalidUtf8(data);
    if (bad >= 0) {
      const before = new TextDecoder().decode(data.subarray(0, bad));
      throw new DataError(file, [{
        record: recordAt(before, before.length),
        line: lineAt(before, before.length),
        found: `the byte 0x${
          data[bad].toString(16).padStart(2, "0")
        } at byte offset ${bad}, which is not UTF-8`,
        expected: "UTF-8 text (re-save the file as UTF-8)",
      }]);
    }
    text = new TextDecoder().decode(data);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);

  const records: { value: unknown; line?: number }[] = [];
  const first = text.search(/\S/);
  if (first < 0) {
    throw new DataError(file, [{
      found: "an empty file",
      expected: "a JSON array of dialogues or JSON Lines",
    }]);
  }
  if (text[first] === "[") {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new DataError(file, [jsonSyntaxIssue(e as Error, text, 0, undefined)]);
    }
    if (!Array.isArray(v)) {
      throw new DataError(file, [{ found: describe(v), expected: "a JSON array of dialogue records" }]);
    }
    for (const r of v) records.push({ value: r });
  } else if (text[first] === "{") {
    let whole: unknown;
    let parsedWhole = false;
    try {
      whole = JSON.parse(text);
      parsedWhole = true;
    } catch { /* JSON Lines */ }
    if (parsedWhole) {
      records.push({ value: whole, line: lineAt(text, first) });
    } else {
      // JSON Lines: one record per non-blank line; a bad line still counts as a record so indices match lines.
      let offset = 0;
      const lines = text.split("\n");
      for (let i = 0; i < lines.length; i++) {
        const raw = lines[i];
        const lineStart = offset;
        offset += raw.length + 1;
        if (raw.trim() === "") continue;
        const record = records.length;
        try {
          records.push({ value: JSON.parse(raw), line: i + 1 });
        } catch (e) {
          records.push({ value: undefined, line: i + 1 });
          issues.push({ ...jsonSyntaxIssue(e as Error, raw, lineStart, i + 1), record });
        }
      }
    }
  } else {
    throw new DataError(file, [{
      line: lineAt(text, first),
      found: `text starting with ${JSON.stringify(text.slice(first, first + 20))}`,
      expected: "a JSON array of dialogue records ([...]) or JSON Lines (one {...} record per line)",
    }]);
  }
  if (records.length === 0) {
    throw new DataError(file, [{ found: "no dialogue records", expected: "at least one dialogue" }]);
  }

  const dialogues: Dialogue[] = [];
  let total = issues.length;
  for (let i = 0; i < records.length; i++) {
    const { value, line } = records[i];
    if (value === undefined && line !== undefined && issues.some((x) => x.record === i)) continue;
    const r = validateRecord(value, i, line);
    if (Array.isArray(r)) {
      total += r.length;
      for (const x of r) if (issues.length < MAX_REPORTED) issues.push(x);
    } else {
      dialogues.push(r);
    }
  }
  if (total > 0) throw new DataError(file, issues.slice(0, MAX_REPORTED), total);
  return dialogues;
}

function lineAt(text: string, pos: number): number {
  let line = 1;
  for (let i = 0; i < pos && i < text.length; i++) if (text.charCodeAt(i) === 0x0a) line++;
  return line;
}

/**
 * The 0-based record that character `pos` falls in: for a JSON array the top-level element (commas at depth 1
 * outside strings), for JSON Lines the non-blank line. Undefined before the first record.
 */
function recordAt(text: string, pos: number): number | undefined {
  const first = text.search(/\S/);
  if (first < 0 || pos < first) return undefined;
  if (text[first] !== "[") {
    let record = -1;
    let blank = true;
    for (let i = 0; i < pos; i++) {
      const c = text[i];
      if (c === "\n") blank = true;
      else if (blank && c.trim() !== "") {
        blank = false;
        record++;
      }
    }
    return Math.max(0, record + (blank && pos < text.length && text[pos].trim() !== "" ? 1 : 0));
  }
  let depth = 0;
  let record = 0;
  let inString = false;
  for (let i = first; i < pos; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") depth--;
    else if (c === "," && depth === 1) record++;
  }
  return record;
}

/** A JSON syntax error in an array file (or one JSON line) as an issue, with its line (and record). */
function jsonSyntaxIssue(e: Error, text: string, baseOffset: number, line: number | undefined): DataIssue {
  const msg = e.message.replace(/\s*\(line \d+ column \d+\)/, "");
  const m = /at position (\d+)/.exec(msg);
  const issue: DataIssue = {
    line,
    found: `invalid JSON (${msg.replace(/ in JSON at position \d+/, "")})`,
    expected: line === undefined ? "a valid JSON array of dialogue records" : "one JSON object per line",
  };
  if (m && line === undefined) {
    const pos = Number(m[1]) + baseOffset;
    issue.line = lineAt(text, pos);
    issue.record = recordAt(text, pos);
  }
  return issue;
}

/** Byte offset of the first byte that breaks UTF-8 (overlongs, surrogates and > U+10FFFF included), or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (c >= 0xc2 && c <= 0xdf) [need, min] = [1, 0x80];
    else if (c >= 0xe0 && c <= 0xef) [need, min] = [2, 0x800];
    else if (c >= 0xf0 && c <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    let cp = c & (need === 1 ? 0x1f : need === 2 ? 0x0f : 0x07);
    for (let k = 1; k <= need; k++) {
      if (i + k >= n || (b[i + k] & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (b[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

function fieldPath(path: readonly PropertyKey[]): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : `${s ? "." : ""}${String(p)}`;
  return s;
}

function valueAt(v: unknown, path: readonly PropertyKey[]): unknown {
  let cur = v;
  for (const p of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

const TYPE_NAMES: Record<string, string> = {
  string: "text (a JSON string)",
  array: "an array",
  object: "an object",
  number: "a number",
};

function zodIssue(raw: unknown, iss: z.core.$ZodIssue, record: number, line?: number): DataIssue {
  const field = fieldPath(iss.path);
  const found = describe(valueAt(raw, iss.path));
  let expected: string;
  switch (iss.code) {
    case "invalid_type":
      expected = TYPE_NAMES[iss.expected] ?? iss.expected;
      break;
    case "invalid_value":
      expected = `one of ${iss.values.map((x) => JSON.stringify(x)).join(", ")}`;
      break;
    case "too_small":
      expected = iss.origin === "array"
        ? `at least ${iss.minimum} turn${iss.minimum === 1 ? "" : "s"}`
        : "non-empty text";
      break;
    default:
      expected = iss.message;
  }
  return { record, line, field, found, expected };
}

function detectFormat(o: Record<string, unknown>): DataFormat | undefined {
  if ("messages" in o) return "chat";
  if ("conversations" in o) return "sharegpt";
  if ("instruction" in o || "input" in o || "output" in o) return "pairs";
  return undefined;
}

interface RawTurn {
  role: "user" | "model" | "system";
  /** The role as written in the file ("assistant", "gpt", ...). */
  written: string;
  content: string;
  roleField: string;
  field: string;
}

/** Validates one record; returns its Dialogue or its issues. */
export function validateRecord(raw: unknown, record: number, line?: number): Dialogue | DataIssue[] {
  const at = (field: string | undefined, found: string, expected: string): DataIssue => ({
    record,
    line,
    field,
    found,
    expected,
  });
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    return [at(undefined, describe(raw), EXPECTED_RECORD)];
  }
  const obj = raw as Record<string, unknown>;
  const format = detectFormat(obj);
  if (format === undefined) {
    const keys = Object.keys(obj);
    const hints = keys.map((k) => [k, closest(k, FORMAT_KEYS)]).filter(([, c]) => c !== undefined);
    const hint = hints.length
      ? ` (did you mean ${hints.map(([k, c]) => `"${c}" for "${k}"`).join(", ")}?)`
      : "";
    return [at(undefined, describe(obj), EXPECTED_RECORD + hint)];
  }
  if (format === "chat" && "conversations" in obj) {
    return [at("conversations", 'both "messages" and "conversations"', "one of them per record")];
  }

  const turns: RawTurn[] = [];
  if (format === "chat") {
    const r = ChatRecordSchema.safeParse(obj);
    if (!r.success) return r.error.issues.map((x) => zodIssue(raw, x, record, line));
    r.data.messages.forEach((m, k) =>
      turns.push({
        role: normalizeRole(m.role),
        written: m.role,
        content: m.content,
        roleField: `messages[${k}].role`,
        field: `messages[${k}].content`,
      })
    );
  } else if (format === "sharegpt") {
    const r = ShareGptRecordSchema.safeParse(obj);
    if (!r.success) return r.error.issues.map((x) => zodIssue(raw, x, record, line));
    r.data.conversations.forEach((m, k) =>
      turns.push({
        role: normalizeRole(m.from),
        written: m.from,
        content: m.value,
        roleField: `conversations[${k}].from`,
        field: `conversations[${k}].value`,
      })
    );
  } else {
    const r = PairRecordSchema.safeParse(obj);
    if (!r.success) return r.error.issues.map((x) => zodIssue(raw, x, record, line));
    const { instruction, input, output } = r.data;
    const hasInstr = instruction !== undefined && instruction.trim() !== "";
    const hasInput = input !== undefined && input.trim() !== "";
    if (!hasInstr && !hasInput) {
      return [at("input", describe(input), 'non-empty text in "input" (or "instruction")')];
    }
    if (hasInstr) {
      turns.push({
        role: hasInput ? "system" : "user",
        written: "instruction",
        content: instruction!,
        roleField: "instruction",
        field: "instruction",
      });
    }
    if (hasInput) {
      turns.push({ role: "user", written: "input", content: input!, roleField: "input", field: "input" });
    }
    turns.push({ role: "model", written: "output", content: output, roleField: "output", field: "output" });
  }

  const issues: DataIssue[] = [];
  for (const t of turns) {
    if (t.content.trim() === "") issues.push(at(t.field, describe(t.content), "non-empty text"));
    const marker = CONTROL_MARKERS.find((m) => t.content.includes(m));
    if (marker) {
      issues.push(
        at(t.field, `the control token ${marker} in the text`, "plain text without chat control tokens"),
      );
    }
  }
  turns.forEach((t, k) => {
    if (t.role === "system" && k > 0) {
      issues.push(
        at(
          t.roleField,
          `"${t.written}" at position ${k}`,
          "a system message only as the first message (it is folded into the first user turn)",
        ),
      );
    }
  });
  if (issues.length) return issues;

  // Fold a leading system message into the first user turn.
  let norm: RawTurn[] = turns;
  if (turns[0].role === "system") {
    const next = turns[1];
    if (!next || next.role !== "user") {
      return [
        at(
          next ? next.roleField : turns[0].roleField,
          next ? `"${next.written}" after the system message` : "only a system message",
          "a user message right after the system message",
        ),
      ];
    }
    norm = [
      { ...next, content: `${turns[0].content.trim()}\n\n${next.content.trim()}` },
      ...turns.slice(2),
    ];
  }
  for (let k = 0; k < norm.length; k++) {
    const want = k % 2 === 0 ? "user" : "model";
    if (norm[k].role !== want) {
      const expected = k === 0
        ? "the dialogue to start with a user turn"
        : `a ${want} turn (roles must alternate user/model)`;
      const found = k === 0
        ? `"${norm[k].written}" as the first turn`
        : `"${norm[k].written}" right after a ${norm[k - 1].role} turn`;
      return [at(norm[k].roleField, found, expected)];
    }
  }
  if (norm.length < 2) {
    const list = format === "chat" ? "messages" : format === "sharegpt" ? "conversations" : "output";
    return [at(list, "only a user turn", "at least one model (assistant/gpt) turn after the user turn")];
  }
  const out: Turn[] = norm.map((t) => ({
    role: t.role as "user" | "model",
    content: t.content,
    field: t.field,
  }));
  return { index: record, line, format, turns: out };
}
