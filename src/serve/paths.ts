/**
 * Confines the paths a caller names to the configured roots. Both the lexical path and its real path (symlinks
 * followed) must lie strictly inside a root, so `..`, absolute paths elsewhere and symlinks pointing out are
 * all refused (400). The resolved real path is what the job runs with.
 */
import { isAbsolute, join, relative, resolve, sep } from "node:path";

export class PathError extends Error {
  override name = "PathError";
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

/** True when `p` is strictly inside `root` (both absolute). */
export function isInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== "" && rel !== ".." && !rel.startsWith(".." + sep) && !isAbsolute(rel);
}

async function realOrNull(p: string): Promise<string | null> {
  try {
    return await Deno.realPath(p);
  } catch {
    return null;
  }
}

/** The real path of a root directory; throws when it does not exist. */
export async function realRoot(p: string): Promise<string> {
  const r = await Deno.realPath(p);
  if (!(await Deno.stat(r)).isDirectory) throw new Error(`${p} is not a directory`);
  return r;
}

type Kind = "file" | "dir";

async function pick(
  field: string,
  input: string,
  candidates: string[],
  roots: { lexical: string; real: string }[],
  kind: Kind,
  accept: (real: string) => Promise<boolean>,
): Promise<string> {
  let sawInside = false;
  let sawEscape = false;
  for (const c of candidates) {
    if (!roots.some((r) => isInside(r.lexical, c) || isInside(r.real, c))) continue;
    sawInside = true;
    const real = await realOrNull(c);
    if (real === null) continue;
    if (!roots.some((r) => isInside(r.real, real))) {
      sawEscape = true;
      continue;
    }
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(real);
    } catch {
      continue;
    }
    if (kind === "file" ? !st.isFile : !st.isDirectory) continue;
    if (await accept(real)) return real;
  }
  if (sawEscape) {
    throw new PathError(field, `${field} "${input}" resolves (through a symlink) outside the allowed roots`);
  }
  if (!sawInside) throw new PathError(field, `${field} "${input}" is outside the allowed roots`);
  throw new PathError(
    field,
    kind === "file"
      ? `${field} "${input}" is not an existing file`
      : `${field} "${input}" is not an adapter directory`,
  );
}

export interface Roots {
  /** absolute lexical + real paths */
  data: { lexical: string; real: string }[];
  adapter: { lexical: string; real: string };
}

export async function makeRoots(dataRoots: string[], adapterRoot: string, cwd = Deno.cwd()): Promise<Roots> {
  const mk = async (p: string) => ({ lexical: resolve(cwd, p), real: await realRoot(resolve(cwd, p)) });
  return { data: await Promise.all(dataRoots.map(mk)), adapter: await mk(adapterRoot) };
}

/** A dialogue file inside one of the data roots: relative names are tried against each root, then the cwd. */
export function resolveData(input: string, roots: Roots, cwd = Deno.cwd()): Promise<string> {
  const candidates = isAbsolute(input)
    ? [resolve(input)]
    : [...roots.data.map((r) => resolve(r.lexical, input)), resolve(cwd, input)];
  return pick("data", input, candidates, roots.data, "file", () => Promise.resolve(true));
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The newest `checkpoint-N` directory under `dir` (by N), or undefined. */
async function latestCheckpoint(dir: string): Promise<string | undefined> {
  let best: [number, string] | undefined;
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = e.name.match(/^checkpoint-(\d+)$/);
      if (m && (e.isDirectory || e.isSymlink) && (!best || Number(m[1]) > best[0])) {
        best = [Number(m[1]), e.name];
      }
    }
  } catch {
    return undefined;
  }
  return best && join(dir, best[1]);
}

/**
 * An adapter directory (holding adapter_config.json) inside the adapter root. Accepted forms: a path relative
 * to the root (`1gouki/model/checkpoint-120`) or to the cwd (`models/1gouki/model/checkpoint-120`), an
 * absolute path inside the root, or a checkpoint name: `1gouki/checkpoint-120`, or `1gouki` for its newest
 * checkpoint.
 */
export async function resolveAdapter(input: string, roots: Roots, cwd = Deno.cwd()): Promise<string> {
  const root = roots.adapter.lexical;
  const candidates: string[] = [];
  if (isAbsolute(input)) candidates.push(resolve(input));
  else {
    candidates.push(resolve(root, input));
    const parts = input.split(/[\\/]/).filter(Boolean);
    if (parts.length === 2 && /^checkpoint-\d+$/.test(parts[1])) {
      candidates.push(resolve(root, parts[0], "model", parts[1]));
    }
    if (parts.length === 1 && isInside(root, resolve(root, parts[0]))) {
      const latest = await latestCheckpoint(resolve(root, parts[0], "model"));
      if (latest) candidates.push(latest);
    }
    candidates.push(resolve(cwd, input));
  }
  return pick(
    "adapter",
    input,
    candidates,
    [roots.adapter],
    "dir",
    (real) => exists(join(real, "adapter_config.json")),
  );
}
