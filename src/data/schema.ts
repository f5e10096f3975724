/**
 * The accepted dialogue records (docs/ARCHITECTURE.md#data) as zod schemas, and the normalized form every format becomes.
 * Shape checks are zod's; the conversation rules (system first, alternation, a model turn) are in load.ts.
 * Unknown extra keys (ids, sources, weights) are ignored.
 */
import { z } from "zod";

export type DataFormat = "chat" | "sharegpt" | "pairs";

export interface Turn {
  role: "user" | "model";
  content: string;
  /** Where the text came from in its record, e.g. "messages[2].content", for error messages. */
  field: string;
}

export interface Dialogue {
  /** 0-based index of the record in its file (== position in loadDialogues' result). */
  index: number;
  /** 1-based line of the record (JSON Lines only). */
  line?: number;
  format: DataFormat;
  /** user, model, user, model, ... (a system message is already folded into the first user turn). */
  turns: Turn[];
}

export const CHAT_ROLES = ["user", "assistant", "model", "system"] as const;
export const SHAREGPT_ROLES = ["human", "user", "gpt", "assistant", "model", "system"] as const;

export const ChatRecordSchema = z.object({
  messages: z.array(z.object({ role: z.enum(CHAT_ROLES), content: z.string() })).min(1),
});

export const ShareGptRecordSchema = z.object({
  conversations: z.array(z.object({ from: z.enum(SHAREGPT_ROLES), value: z.string() })).min(1),
});

export const PairRecordSchema = z.object({
  instruction: z.string().optional(),
  input: z.string().optional(),
  output: z.string(),
});

export type ChatRecord = z.infer<typeof ChatRecordSchema>;
export type ShareGptRecord = z.infer<typeof ShareGptRecordSchema>;
export type PairRecord = z.infer<typeof PairRecordSchema>;

/** Normalized role of a chat `role` / ShareGPT `from` value. */
export function normalizeRole(r: string): "user" | "model" | "system" {
  if (r === "user" || r === "human") return "user";
  if (r === "system") return "system";
  return "model";
}
