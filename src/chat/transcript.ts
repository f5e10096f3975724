/**
 * `/save FILE` of `maieutic chat`: the conversation as one record of the chat data format (src/data/schema.ts),
 * so it can be scored or added to training data. The data loader (src/data/load.ts) rejects empty texts and
 * chat control tokens in texts, so the saved file leaves out exchanges whose reply is empty (a model can stop
 * at once) and takes control-token text out of replies (a model can generate "<start_of_turn>"), and says how
 * many. `.jsonl` gets one JSON line, anything else a JSON array of the one record. Written atomically.
 */
import { CONTROL_MARKERS } from "../data/load.ts";
import { writeFileAtomic } from "../util/atomic.ts";
import type { ChatRecord } from "./session.ts";

export interface SavedTranscript {
  record: ChatRecord;
  /** Exchanges left out (empty reply or message after cleaning). */
  skipped: number;
  /** Control-token texts taken out. */
  removed: number;
}

function clean(text: string): { text: string; removed: number } {
  let removed = 0;
  for (const k of CONTROL_MARKERS) {
    const parts = text.split(k);
    removed += parts.length - 1;
    text = parts.join("");
  }
  return { text, removed };
}

/** The record the data loader accepts (see the file comment). */
export function loadableRecord(r: ChatRecord): SavedTranscript {
  const out: ChatRecord["messages"] = [];
  let skipped = 0, removed = 0;
  const system = r.messages[0]?.role === "system" ? r.messages[0] : null;
  const rest = system ? r.messages.slice(1) : r.messages;
  for (let i = 0; i + 1 < rest.length; i += 2) {
    const u = clean(rest[i].content), m = clean(rest[i + 1].content);
    removed += u.removed + m.removed;
    if (u.text.trim() === "" || m.text.trim() === "") {
      skipped++;
      continue;
    }
    out.push({ role: "user", content: u.text }, { role: "assistant", content: m.text });
  }
  if (system && out.length) {
    const s = clean(system.content);
    removed += s.removed;
    if (s.text.trim()) out.unshift({ role: "system", content: s.text });
  }
  return { record: { messages: out }, skipped, removed };
}

/** Writes the transcript to `path` (see the file comment); throws when no exchange can be saved. */
export async function saveTranscript(path: string, r: ChatRecord): Promise<SavedTranscript> {
  const saved = loadableRecord(r);
  if (!saved.record.messages.some((m) => m.role === "assistant")) {
    throw new Error("nothing to save yet (no exchange with a non-empty reply)");
  }
  const text = path.toLowerCase().endsWith(".jsonl")
    ? JSON.stringify(saved.record) + "\n"
    : JSON.stringify([saved.record], null, 2) + "\n";
  await writeFileAtomic(path, text);
  return saved;
}
