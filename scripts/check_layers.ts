/**
 * `deno task check-layers`: the folders of src/ form layers, and imports run one way, downwards. Reads the
 * module graph of main.ts (`deno info --json main.ts`, type-only imports included) and fails on any import of
 * a module in a higher layer or in another folder of the same layer, unless it is one of EXCEPTIONS (each
 * with its reason). The order and why it is so: docs/ARCHITECTURE.md#layers.
 */

/** Lowest first. A folder may import its own files and any folder of a lower layer. */
export const LAYERS: readonly (readonly string[])[] = [
  ["util"], // errors, atomic writes, half floats, progress, formatting: no project imports
  ["gpu", "safetensors", "config", "tokenizer"], // device and kernels; tensor files; configs and the model description; text
  ["quant", "data"], // NF4 quantization; dialogues -> token batches
  ["hub"], // model sources (Hub, local directory, cache, tiny model) and the loader that quantizes on the fly
  ["lora"], // LoRA parameters, dropout, PEFT files, merging
  ["model"], // the Gemma-2 engine: weights, ops, forward/backward, decoding
  ["report"], // metrics CSV, plots, HTML
  ["eval"], // loss, generation, Socratic metrics
  ["chat", "train"], // interactive chat; the trainer
  ["bench", "serve"], // benchmarks; the eval HTTP API
  ["cli"], // subcommands
];

/** Imports allowed against the order: `from -> to` (repository paths) and why. At most 3. */
export const EXCEPTIONS: Readonly<Record<string, string>> = {};

export interface Violation {
  from: string;
  to: string;
  why: string;
}

/** The layer index of a repository path, "top" for main.ts, null outside src/ (kernels, data files). */
export function layerOf(path: string): number | "top" | null {
  if (path === "main.ts") return "top";
  const m = /^src\/([^/]+)\//.exec(path);
  if (!m) return null;
  const i = LAYERS.findIndex((l) => l.includes(m[1]));
  if (i < 0) {
    throw new Error(`${path}: src/${m[1]} is in no layer; add it to LAYERS in scripts/check_layers.ts`);
  }
  return i;
}

function folderOf(path: string): string {
  return /^src\/([^/]+)\//.exec(path)?.[1] ?? path;
}

/** Every import edge that runs up or sideways, minus the documented exceptions. */
export function violations(edges: Iterable<[string, string]>): Violation[] {
  const out: Violation[] = [];
  for (const [from, to] of edges) {
    const a = layerOf(from), b = layerOf(to);
    if (b === null || folderOf(from) === folderOf(to)) continue;
    if (b === "top") {
      out.push({ from, to, why: "imports main.ts" });
      continue;
    }
    if (a === "top" || a === null || b < a) continue;
    if (`${from} -> ${to}` in EXCEPTIONS) continue;
    out.push({
      from,
      to,
      why: b === a
        ? `src/${folderOf(to)} is in the same layer as src/${folderOf(from)}`
        : `src/${folderOf(to)} is above src/${folderOf(from)}`,
    });
  }
  return out;
}

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

/** The file-to-file import edges of `deno info --json` output, as repository-relative paths. */
export function edgesOf(info: { modules: InfoModule[] }, root: string): [string, string][] {
  const base = new URL(root.endsWith("/") ? root : root + "/", "file:///").href;
  const rel = (s: string) => s.startsWith(base) ? s.slice(base.length) : null;
  const edges: [string, string][] = [];
  for (const m of info.modules) {
    const from = rel(m.specifier);
    if (!from) continue;
    for (const d of m.dependencies ?? []) {
      for (const dep of [d.code, d.type]) {
        const to = dep && rel(dep.specifier);
        if (to) edges.push([from, to]);
      }
    }
  }
  return edges;
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: root,
    stderr: "inherit",
  }).output();
  if (!out.success) Deno.exit(1);
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const bad = violations(edgesOf(info, root));
  const exceptions = Object.keys(EXCEPTIONS).length;
  if (exceptions > 3) {
    console.error(`check-layers: ${exceptions} exceptions; at most 3 (scripts/check_layers.ts EXCEPTIONS)`);
    Deno.exit(1);
  }
  for (const v of bad) console.error(`${v.from} imports ${v.to}: ${v.why}`);
  if (bad.length) {
    console.error(
      `check-layers: ${bad.length} import(s) against the layer order (docs/ARCHITECTURE.md#layers): move the ` +
        "shared code down, or pass it in from above",
    );
    Deno.exit(1);
  }
  console.log(
    `check-layers: ${LAYERS.length} layers, imports run one way (${exceptions} documented exceptions)`,
  );
}
