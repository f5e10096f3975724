/** Helpers for the data tests: temp files and the label-span reader. */
import { join } from "node:path";
import type { Example } from "../../src/data/tokenize.ts";
import type { ChatTokenizer } from "../../src/tokenizer/tokenizer.ts";

export const BUNDLED = "data/dialogue/processed/1gouki.json";

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "maieutic_data_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export async function writeTemp(dir: string, name: string, data: string | Uint8Array): Promise<string> {
  const path = join(dir, name);
  if (typeof data === "string") await Deno.writeTextFile(path, data);
  else await Deno.writeFile(path, data);
  return path;
}

export const jsonl = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join("\n") + "\n";

/** The decoded text of each maximal run of target labels in an example. */
export function targetSpans(tok: ChatTokenizer, ex: Example): string[] {
  const spans: string[] = [];
  let i = 0;
  while (i < ex.labels.length) {
    if (ex.labels[i] === -100) {
      i++;
      continue;
    }
    let j = i;
    while (j < ex.labels.length && ex.labels[j] !== -100) {
      if (ex.labels[j] !== ex.inputIds[j]) throw new Error(`label ${j} differs from its input id`);
      j++;
    }
    spans.push(tok.decode(ex.inputIds.slice(i, j)));
    i = j;
  }
  return spans;
}
