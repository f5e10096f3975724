/**
 * The four model sources `--model` resolves to (src/hub/model_name.ts): a local directory laid out like a Hub
 * repo, `tiny` (such a directory, written once into the cache by src/hub/tiny.ts), `gemma-2-2b-random` (config
 * only; the engine makes random NF4 weights on the GPU) and a Hub id (small files into the Hugging Face cache
 * layout, src/hub/cache.ts; the weights opened as Range-request streams, src/hub/client.ts). Each gives its
 * validated config.json, side files and weight files, and the key of its converted-model cache entry
 * (src/hub/converted_cache.ts). Nothing here reads the weights.
 */
import { join } from "node:path";
import { UsageError } from "../util/errors.ts";
import { GEMMA2_2B, type Gemma2Config, Gemma2ConfigSchema } from "../config/gemma2.ts";
import { tinyTokenizerFiles } from "../tokenizer/tiny.ts";
import { INDEX_FILE, parseShardIndex, shardFiles, SINGLE_FILE } from "../safetensors/index.ts";
import { type ByteSource, FileSource } from "../safetensors/source.ts";
import { ensureTinyModel, writeDirAtomic } from "./tiny.ts";
import { exists, hubCacheDir, maieuticCacheDir, readRef, snapshotDir } from "./cache.ts";
import { HubClient, type HubClientOptions, type RepoRevision } from "./client.ts";
import { HttpUnavailableError } from "./http.ts";
import { GEMMA2_2B_RANDOM, parseModelName, TINY } from "./model_name.ts";

/** Small files copied along with a model (tokenizer, generation settings), besides config.json. */
export const MODEL_SIDE_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
  "chat_template.jinja",
];

export interface WeightFile {
  file: string;
  open(onBytes?: (n: number) => void): ByteSource;
}

export interface ModelSource {
  kind: "hub" | "local" | "tiny" | "random";
  source: string;
  revision?: string;
  dir: string;
  config: Gemma2Config;
  configText: string;
  /** Side files present in `dir`. */
  files: string[];
  /** Undefined when the weights cannot be read (offline Hub model: only the cache can serve it). */
  weights?: WeightFile[];
  /** The index file, when sharded. */
  indexPath?: string;
  /** Relative cache directory for converted models; undefined = do not cache. */
  cacheKey?: string;
  /** Why weights are unavailable (offline). */
  offlineReason?: string;
}

/** What the Hub source needs of the loader's options (src/hub/load.ts LoadOptions). */
export interface SourceOptions {
  hub?: HubClientOptions;
  log?: (line: string) => void;
}

/** Resolves `--model` to its source (the Hub is asked only for a Hub id). */
export async function resolveSource(name: string, opts: SourceOptions): Promise<ModelSource> {
  const spec = await parseModelName(name);
  switch (spec.kind) {
    case "tiny":
      return localSource(await ensureTinyModel(maieuticCacheDir()), "tiny", TINY);
    case "random":
      return randomSource();
    case "local":
      return localSource(spec.dir!, "local", spec.dir!);
    case "hub":
      return hubSource(spec.repo, spec.revision, opts);
  }
}

function parseConfig(text: string, where: string): Gemma2Config {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const mt = (obj as { model_type?: unknown } | null)?.model_type;
  if (mt !== "gemma2") {
    throw new UsageError(
      `${where}: model_type is ${JSON.stringify(mt)}; only Gemma-2 models ("gemma2") are supported`,
    );
  }
  const r = Gemma2ConfigSchema.safeParse(obj);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new UsageError(`${where}: field "${i.path.join(".")}": ${i.message}`);
  }
  return r.data;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

async function presentSideFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of MODEL_SIDE_FILES) if (await exists(join(dir, f))) out.push(f);
  return out;
}

/** A short stable hash (hex) for cache keys. */
async function shortHash(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].slice(0, 8).map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function localSource(dir: string, kind: "local" | "tiny", label: string): Promise<ModelSource> {
  const cfgPath = join(dir, "config.json");
  const configText = await readText(cfgPath);
  if (configText === undefined) {
    throw new UsageError(
      `${cfgPath} not found: a model directory needs config.json and safetensors weights (as on the Hub)`,
    );
  }
  const config = parseConfig(configText, cfgPath);
  let files: string[];
  let indexPath: string | undefined;
  if (await exists(join(dir, INDEX_FILE))) {
    indexPath = join(dir, INDEX_FILE);
    files = shardFiles(parseShardIndex(await Deno.readTextFile(indexPath), indexPath));
  } else if (await exists(join(dir, SINGLE_FILE))) {
    files = [SINGLE_FILE];
  } else {
    throw new UsageError(
      `${dir}: no ${SINGLE_FILE} or ${INDEX_FILE} (only safetensors checkpoints are supported; convert pytorch_model.bin first)`,
    );
  }
  // Key local caches by path and the weights' size + mtime, so an edited checkpoint is converted again.
  const stamps: string[] = [configText];
  for (const f of files) {
    try {
      const st = await Deno.stat(join(dir, f));
      stamps.push(`${f}:${st.size}:${st.mtime?.getTime()}`);
    } catch {
      throw new UsageError(`${join(dir, f)} not found (listed in ${INDEX_FILE})`);
    }
  }
  return {
    kind,
    source: label,
    dir,
    config,
    configText,
    files: await presentSideFiles(dir),
    weights: files.map((file) => ({ file, open: () => new FileSource(join(dir, file)) })),
    indexPath,
    cacheKey: `local/${await shortHash(dir)}-${await shortHash(stamps.join("\n"))}`,
  };
}

async function randomSource(): Promise<ModelSource> {
  const dir = join(maieuticCacheDir(), "models", "gemma-2-2b-random-v1");
  const configText = JSON.stringify({ architectures: ["Gemma2ForCausalLM"], ...GEMMA2_2B }, null, 2) + "\n";
  if (!(await exists(dir))) await writeDirAtomic(dir, { "config.json": configText, ...tinyTokenizerFiles() });
  return {
    kind: "random",
    source: GEMMA2_2B_RANDOM,
    dir,
    config: GEMMA2_2B,
    configText,
    files: await presentSideFiles(dir),
  };
}

async function hubSource(repo: string, revision: string, opts: SourceOptions): Promise<ModelSource> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const client = new HubClient({
    onRetry: (i) =>
      log(`${i.url}: ${i.reason}; retrying in ${(i.delayMs / 1000).toFixed(1)} s (attempt ${i.attempt})`),
    ...opts.hub,
  });
  let rr: RepoRevision | undefined;
  let offlineReason: string | undefined;
  if (client.offline) {
    offlineReason = "HF_HUB_OFFLINE is set";
  } else {
    try {
      rr = await client.resolve(repo, revision);
    } catch (e) {
      if (!(e instanceof HttpUnavailableError)) throw e;
      const sha = await readRef(repo, revision);
      if (!sha) {
        throw new Error(
          `could not reach ${client.endpoint} (${e.message}); check the network, or set HF_HUB_OFFLINE=1 to use a cached model`,
        );
      }
      log(`could not reach ${client.endpoint}; using the cached ${repo}@${sha.slice(0, 12)}`);
      offlineReason = `${client.endpoint} is unreachable`;
    }
  }
  if (!rr) {
    const sha = await readRef(repo, revision);
    const dir = sha ? snapshotDir(repo, sha) : undefined;
    const configText = dir ? await readText(join(dir, "config.json")) : undefined;
    if (!sha || !dir || configText === undefined) {
      throw new UsageError(
        `${offlineReason} and ${repo}@${revision} is not in the cache (${hubCacheDir()}); run once online: maieutic quantize --model ${repo}${
          revision === "main" ? "" : "@" + revision
        }`,
      );
    }
    return {
      kind: "hub",
      source: repo,
      revision: sha,
      dir,
      config: parseConfig(configText, join(dir, "config.json")),
      configText,
      files: await presentSideFiles(dir),
      cacheKey: `hub/models--${repo.split("/").join("--")}/${sha}`,
      offlineReason,
    };
  }
  const cfgPath = (await client.download(rr, "config.json"))!;
  const configText = await Deno.readTextFile(cfgPath);
  const config = parseConfig(configText, `${repo}@${revision}/config.json`);
  for (const f of MODEL_SIDE_FILES) await client.download(rr, f, { optional: true });
  const indexPath = await client.download(rr, INDEX_FILE, { optional: true });
  let files: string[];
  if (indexPath) {
    files = shardFiles(parseShardIndex(await Deno.readTextFile(indexPath), `${repo}/${INDEX_FILE}`));
  } else if (!rr.files || rr.files.includes(SINGLE_FILE)) {
    files = [SINGLE_FILE];
  } else {
    throw new UsageError(
      `${repo}@${revision} has no ${SINGLE_FILE} or ${INDEX_FILE} (only safetensors checkpoints are supported)`,
    );
  }
  const dir = snapshotDir(repo, rr.sha);
  return {
    kind: "hub",
    source: repo,
    revision: rr.sha,
    dir,
    config,
    configText,
    files: await presentSideFiles(dir),
    weights: files.map((file) => ({ file, open: (onBytes) => client.open(rr!, file, { onBytes }) })),
    indexPath,
    cacheKey: `hub/models--${repo.split("/").join("--")}/${rr.sha}`,
  };
}
