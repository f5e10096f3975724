/**
 * Loads `.env` at start-up (also in the compiled binary, which has no --env-file by default).
 * The environment wins over the file; a missing file is fine. Secrets are never printed (the Hub token is
 * read from the environment by src/hub/token.ts).
 */
import { parseEnv } from "node:util";

export function loadDotEnv(path = ".env"): void {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return;
  }
  for (const [k, v] of Object.entries(parseEnv(text))) {
    if (Deno.env.get(k) === undefined && v !== undefined) Deno.env.set(k, v);
  }
}
