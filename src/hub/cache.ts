/**
 * Cache locations.
 * - Small Hub files (config, tokenizer, index) use huggingface_hub's layout, so both tools share them:
 *   `{hub}/models--{org}--{name}/refs/{revision}` holds the commit sha and
 *   `{hub}/models--{org}--{name}/snapshots/{sha}/{file}` the file (a plain file, as huggingface_hub writes
 *   when symlinks are unavailable). `{hub}` = `$MAIEUTIC_CACHE/hub`, else `$HF_HUB_CACHE`, else
 *   `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
 * - Our own files (the converted/quantized model, the tiny model) live under `$MAIEUTIC_CACHE`, else
 *   `$XDG_CACHE_HOME/maieutic`, else `~/.cache/maieutic`.
 * Every file is written atomically, so a reader never sees a half-written entry.
 */
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic.ts";

function home(): string {
  return Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE") ?? ".";
}

export function maieuticCacheDir(): string {
  const m = Deno.env.get("MAIEUTIC_CACHE");
  if (m) return m;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  return join(xdg || join(home(), ".cache"), "maieutic");
}

export function hubCacheDir(): string {
  const m = Deno.env.get("MAIEUTIC_CACHE");
  if (m) return join(m, "hub");
  const hub = Deno.env.get("HF_HUB_CACHE");
  if (hub) return hub;
  const hf = Deno.env.get("HF_HOME");
  return join(hf || join(home(), ".cache", "huggingface"), "hub");
}

export function repoCacheDir(repo: string): string {
  return join(hubCacheDir(), `models--${repo.split("/").join("--")}`);
}

export function snapshotDir(repo: string, sha: string): string {
  return join(repoCacheDir(repo), "snapshots", sha);
}

function refPath(repo: string, revision: string): string {
  // huggingface_hub keeps "refs/pr/1" as nested directories
  return join(repoCacheDir(repo), "refs", ...revision.split("/"));
}

/** The commit sha a revision pointed to when last resolved online. */
export async function readRef(repo: string, revision: string): Promise<string | undefined> {
  if (/^[0-9a-f]{40}$/.test(revision)) return revision;
  try {
    const sha = (await Deno.readTextFile(refPath(repo, revision))).trim();
    return /^[0-9a-f]{40}$/.test(sha) ? sha : undefined;
  } catch {
    return undefined;
  }
}

export async function writeRef(repo: string, revision: string, sha: string): Promise<void> {
  if (revision === sha) return;
  await writeFileAtomic(refPath(repo, revision), sha);
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** True when HF_HUB_OFFLINE is set to a true value (as huggingface_hub reads it). */
export function hubOffline(): boolean {
  const v = (Deno.env.get("HF_HUB_OFFLINE") ?? "").toLowerCase();
  return ["1", "true", "yes", "on"].includes(v);
}
