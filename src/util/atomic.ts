/** Atomic file writes (temp file in the same directory, then rename), so a crash never leaves a torn file. */
import { dirname, join } from "node:path";

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  Deno.mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    if (typeof data === "string") Deno.writeTextFileSync(tmp, data);
    else Deno.writeFileSync(tmp, data);
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* already gone */ }
    throw e;
  }
}

export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/** Whether a process is running: Linux asks /proc; elsewhere unknown (undefined). */
async function processAlive(pid: number): Promise<boolean | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  try {
    await Deno.stat(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

const STALE_AGE_MS = 24 * 3600 * 1000;

/**
 * Removes what killed writers left in `dir`: entries whose name matches `pattern`, whose first capture group
 * is the writer's pid, when that process is gone (Linux: no /proc/<pid>; elsewhere: untouched for a day). A
 * live writer's temp (ours included) is never touched. Returns the removed paths.
 */
export async function removeStaleTemps(dir: string, pattern: RegExp): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return removed; // no directory yet: nothing to clean
  }
  for (const e of entries) {
    const m = pattern.exec(e.name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === Deno.pid) continue;
    const path = join(dir, e.name);
    let stale = await processAlive(pid) === false;
    if (!stale && Deno.build.os !== "linux") {
      const mtime = (await Deno.stat(path).catch(() => null))?.mtime?.getTime();
      stale = mtime !== undefined && Date.now() - mtime > STALE_AGE_MS;
    }
    if (!stale) continue;
    await Deno.remove(path, { recursive: true }).then(() => removed.push(path), () => {});
  }
  return removed;
}

/** The temp names writeFileAtomic and the safetensors writer use for `name`: `<name>.<pid>.<8 hex>.tmp`. */
export function tempPattern(name: string): RegExp {
  return new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.(\\d+)\\.[0-9a-f]{8}\\.tmp$`);
}
