/**
 * What `--model` may name: `tiny` (the built-in tiny random Gemma-2, src/hub/tiny.ts), `gemma-2-2b-random`
 * (the real config, random weights made on the GPU), an existing directory laid out like a Hub repo, or a Hub
 * id `org/name[@revision]`. Checked before any download or GPU work, so a typo is a usage error at once.
 */
import { isAbsolute, resolve as resolvePath } from "node:path";
import { UsageError } from "../util/errors.ts";
import { isRepoId } from "./client.ts";

export const TINY = "tiny";
export const GEMMA2_2B_RANDOM = "gemma-2-2b-random";

export type ModelName =
  | { kind: "tiny" | "random" | "local"; dir?: string }
  | { kind: "hub"; repo: string; revision: string };

/** Parses `--model`: "tiny", "gemma-2-2b-random", an existing directory, or `org/name[@revision]`. */
export async function parseModelName(name: string): Promise<ModelName> {
  if (name === TINY) return { kind: "tiny" };
  if (name === GEMMA2_2B_RANDOM) return { kind: "random" };
  try {
    const st = await Deno.stat(name);
    if (st.isDirectory) return { kind: "local", dir: resolvePath(name) };
    throw new UsageError(
      `--model ${name}: is a file; give the directory that holds config.json and the weights`,
    );
  } catch (e) {
    if (e instanceof UsageError) throw e;
  }
  const at = name.lastIndexOf("@");
  const repo = at > 0 ? name.slice(0, at) : name;
  const revision = at > 0 ? name.slice(at + 1) : "main";
  const looksLikePath = isAbsolute(name) || name.startsWith(".") || name.includes("\\") ||
    name.split("/").length > 2;
  if (looksLikePath || !isRepoId(repo) || !revision) {
    throw new UsageError(
      `--model "${name}": no such directory, and not a Hub id (org/name[@revision]), "${TINY}" or "${GEMMA2_2B_RANDOM}"`,
    );
  }
  return { kind: "hub", repo, revision };
}
