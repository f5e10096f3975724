/**
 * Host-side model loading for the engine: `--model` is a Hub id[@revision], a local directory laid out like
 * a Hub repo, `tiny` (built-in tiny random Gemma-2) or `gemma-2-2b-random` (config only; the engine makes
 * random NF4 weights on the GPU).
 *
 * Weights stream tensor by tensor (HTTP Range requests or local reads), each converted as it arrives (the
 * decoder linears NF4-quantized, the rest kept dense, src/quant/plan.ts) and written straight into the
 * converted-model cache (src/quant/store.ts), which appears under its final name only when complete. The
 * full-precision model is never held in memory: at most the tensor being converted and the one being fetched.
 * Later loads (and HF_HUB_OFFLINE=1) read the cache, keyed by source + revision + quantization.
 */
import { isAbsolute, join, resolve as resolvePath } from "node:path";
import { UsageError } from "../util/errors.ts";
import type { QuantizationConfig } from "../config/schema.ts";
import { GEMMA2_2B, type Gemma2Config, Gemma2ConfigSchema } from "../config/gemma2.ts";
import { ensureTinyModel, writeDirAtomic } from "./tiny.ts";
import { tinyTokenizerFiles } from "../tokenizer/tiny.ts";
import { type Dtype, SafetensorsError } from "../safetensors/header.ts";
import { checkShards, INDEX_FILE, parseShardIndex, shardFiles, SINGLE_FILE } from "../safetensors/index.ts";
import { type ByteSource, FileSource } from "../safetensors/source.ts";
import { openSafetensors, type SafetensorsReader } from "../safetensors/stream.ts";
import {
  createSafetensorsWriter,
  type SafetensorsStreamWriter,
  type TensorSpec,
} from "../safetensors/write.ts";
import { type Nf4Tensor, quantizeNf4 } from "../quant/nf4.ts";
import { checkQuantConfig, expectedTensors, quantKey, shouldQuantize } from "../quant/plan.ts";
import {
  decodeStoreMeta,
  encodeStoreMeta,
  type HostTensor,
  nf4StoreData,
  readStoredTensor,
  STORE_FORMAT,
  STORE_VERSION,
  storedBytes,
  type StoredTensor,
  storeSpecs,
} from "../quant/store.ts";
import { exists, hubCacheDir, maieuticCacheDir, readRef, snapshotDir } from "./cache.ts";
import { HubClient, type HubClientOptions, isRepoId, type RepoRevision } from "./client.ts";
import { HttpUnavailableError } from "./http.ts";
import { NO_PROGRESS, type Progress, stderrProgress } from "../util/progress.ts";

export type { HostTensor };

export const TINY = "tiny";
export const GEMMA2_2B_RANDOM = "gemma-2-2b-random";

/** Small files copied along with a model (tokenizer, generation settings), besides config.json. */
export const MODEL_SIDE_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
  "chat_template.jinja",
];

export interface LoadOptions {
  /** Hub endpoint, token, retries (defaults from HF_ENDPOINT, HUGGINGFACE_API_KEY, HF_HUB_OFFLINE). */
  hub?: HubClientOptions;
  /** Progress lines on stderr (default true). */
  progress?: boolean;
  /** NF4 quantizer (default: the CPU reference; src/quant/nf4_gpu.ts gives identical bytes). */
  quantizer?: (w: Float32Array<ArrayBuffer>, shape: number[]) => Nf4Tensor | Promise<Nf4Tensor>;
  /** Ignore (and replace) an existing cache entry. */
  rebuild?: boolean;
  /**
   * false: use an existing cache entry but write none (merge reads a Hub model dense once; caching that copy
   * would leave ~10 GB for gemma-2-2b in the cache). Default true.
   */
  writeCache?: boolean;
  /** Notices (cache rebuilt, network fallback); default: stderr. */
  log?: (line: string) => void;
}

export interface ModelStats {
  /** True when the tensors came from the converted-model cache. */
  fromCache: boolean;
  /** Bytes of the source weights that were (or, from cache, had been) read. */
  sourceBytes: number;
  /** Bytes of the converted tensors (the cache file's data). */
  storedBytes: number;
  tensors: number;
  quantized: number;
  /** Source tensors not used by Gemma2ForCausalLM (e.g. a tied lm_head). */
  skipped: string[];
}

export interface LoadedModel {
  config: Gemma2Config;
  /** Directory with config.json and the tokenizer files. */
  dir: string;
  /** Hub id, absolute directory, "tiny" or "gemma-2-2b-random". */
  source: string;
  /** Commit sha for Hub models. */
  revision?: string;
  tensors: Map<string, HostTensor>;
  /** gemma-2-2b-random: no tensors; the engine generates the weights itself. */
  randomWeights: boolean;
  /** The converted-model cache file, when one is used. */
  cachePath?: string;
  stats: ModelStats;
}

/** A model whose tensors have not been read yet: iterate `tensors()` once to stream them. */
export interface ModelStream extends Omit<LoadedModel, "tensors"> {
  /** Names in the order `tensors()` yields them. */
  names: string[];
  tensors(): AsyncGenerator<[string, HostTensor]>;
  /** Releases files/connections when `tensors()` is not (fully) iterated; harmless otherwise. */
  close(): void;
}

interface WeightFile {
  file: string;
  open(onBytes?: (n: number) => void): ByteSource;
}

interface ModelSource {
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

function logDefault(line: string): void {
  console.error(line);
}

/** Parses `--model`: "tiny", "gemma-2-2b-random", an existing directory, or `org/name[@revision]`. */
export async function parseModelName(
  name: string,
): Promise<
  { kind: "tiny" | "random" | "local"; dir?: string } | { kind: "hub"; repo: string; revision: string }
> {
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

async function hubSource(repo: string, revision: string, opts: LoadOptions): Promise<ModelSource> {
  const log = opts.log ?? logDefault;
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

async function resolveSource(name: string, opts: LoadOptions): Promise<ModelSource> {
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

/** Where the converted model of `source` with `quant` is cached (undefined when it is not cached). */
function cachePathFor(src: ModelSource, quant: QuantizationConfig): string | undefined {
  if (!src.cacheKey) return undefined;
  // A dense local checkpoint is read in place; copying it would only double the disk use.
  if (src.kind !== "hub" && !quant.load_in_4bit) return undefined;
  return join(maieuticCacheDir(), "converted", src.cacheKey, `${quantKey(quant)}.safetensors`);
}

function base(src: ModelSource): Omit<LoadedModel, "tensors" | "stats"> {
  return {
    config: src.config,
    dir: src.dir,
    source: src.source,
    revision: src.revision,
    randomWeights: src.kind === "random",
  };
}

/** Opens the cache entry if it is complete and matches; otherwise says why not. */
async function openCache(path: string, src: ModelSource, qkey: string) {
  let reader: SafetensorsReader | undefined;
  try {
    reader = await openSafetensors(new FileSource(path));
    const meta = decodeStoreMeta(reader);
    if (meta.quant !== qkey) throw new Error(`${path}: made for quantization "${meta.quant}", not "${qkey}"`);
    if (meta.config !== src.configText) throw new Error(`${path}: made from a different config.json`);
    return { reader, meta };
  } catch (e) {
    reader?.close();
    throw e;
  }
}

/**
 * Resolves `name`, then returns the model with its tensors still to be streamed. Use `loadModel` to get
 * them all in a Map.
 */
export async function openModel(
  name: string,
  quant: QuantizationConfig,
  opts: LoadOptions = {},
): Promise<ModelStream> {
  checkQuantConfig(quant);
  const log = opts.log ?? logDefault;
  const src = await resolveSource(name, opts);
  const qkey = quantKey(quant);
  const emptyStats: ModelStats = {
    fromCache: false,
    sourceBytes: 0,
    storedBytes: 0,
    tensors: 0,
    quantized: 0,
    skipped: [],
  };
  if (src.kind === "random") {
    return { ...base(src), names: [], stats: emptyStats, async *tensors() {}, close() {} };
  }
  const cachePath = cachePathFor(src, quant);
  if (cachePath && !opts.rebuild && (await exists(cachePath))) {
    try {
      const { reader, meta } = await openCache(cachePath, src, qkey);
      return fromCache(src, reader, meta, cachePath);
    } catch (e) {
      if (!src.weights) {
        throw new UsageError(
          `${src.offlineReason} and the cached ${src.source} is unusable (${
            (e as Error).message
          }); run once online to rebuild it`,
        );
      }
      log(`cache entry unusable (${(e as Error).message}); converting again`);
      await Deno.remove(cachePath).catch(() => {});
    }
  }
  if (!src.weights) {
    throw new UsageError(
      `${src.offlineReason} and ${src.source}@${src.revision} has not been converted for quantization "${qkey}" yet ` +
        `(no ${cachePath}); run once online: maieutic quantize --model ${src.source}`,
    );
  }
  return await fromSource(src, quant, opts.writeCache === false ? undefined : cachePath, opts);
}

function fromCache(
  src: ModelSource,
  reader: SafetensorsReader,
  meta: ReturnType<typeof decodeStoreMeta>,
  cachePath: string,
): ModelStream {
  const names = Object.keys(meta.tensors);
  let stored = 0;
  let quantized = 0;
  for (const t of Object.values(meta.tensors)) {
    stored += storedBytes(t);
    if (t.kind === "nf4") quantized++;
  }
  const sourceBytes = Number(reader.header.metadata.source_bytes ?? 0);
  return {
    ...base(src),
    cachePath,
    names,
    stats: {
      fromCache: true,
      sourceBytes,
      storedBytes: stored,
      tensors: names.length,
      quantized,
      skipped: [],
    },
    close: () => reader.close(),
    async *tensors() {
      try {
        for (const n of names) yield [n, await readStoredTensor(reader, n, meta.tensors[n])];
      } finally {
        reader.close();
      }
    },
  };
}

interface Planned {
  name: string;
  shard: number;
  stored: StoredTensor;
  srcDtype: Dtype;
  srcBytes: number;
}

async function fromSource(
  src: ModelSource,
  quant: QuantizationConfig,
  cachePath: string | undefined,
  opts: LoadOptions,
): Promise<ModelStream> {
  const weights = src.weights!;
  let bytesSeen: ((n: number) => void) | undefined;
  const onBytes = (n: number) => bytesSeen?.(n);
  const readers: SafetensorsReader[] = [];
  try {
    for (const w of weights) readers.push(await openSafetensors(w.open(onBytes)));
  } catch (e) {
    for (const r of readers) r.close();
    if (e instanceof SafetensorsError) throw new UsageError(e.message);
    throw e;
  }
  const closeAll = () => readers.forEach((r) => r.close());
  try {
    if (src.indexPath) {
      const index = parseShardIndex(await Deno.readTextFile(src.indexPath), src.indexPath);
      checkShards(index, new Map(weights.map((w, i) => [w.file, readers[i].names()])), src.indexPath);
    }
    const where = new Map<string, number>();
    readers.forEach((r, i) => r.names().forEach((n) => where.set(n, i)));
    const expected = expectedTensors(src.config);
    const plan: Planned[] = [];
    for (const [name, shape] of expected) {
      const shard = where.get(name);
      if (shard === undefined) {
        throw new UsageError(
          `${src.source}: tensor "${name}" is missing from the checkpoint (${
            weights.map((w) => w.file).join(", ")
          })`,
        );
      }
      const info = readers[shard].info(name);
      if (JSON.stringify(info.shape) !== JSON.stringify(shape)) {
        throw new UsageError(
          `${src.source}/${weights[shard].file}: tensor "${name}" has shape ${
            JSON.stringify(info.shape)
          } but config.json implies ${JSON.stringify(shape)}`,
        );
      }
      if (info.dtype !== "F32" && info.dtype !== "F16" && info.dtype !== "BF16") {
        throw new UsageError(
          `${src.source}/${
            weights[shard].file
          }: tensor "${name}" is ${info.dtype}; expected F32, F16 or BF16`,
        );
      }
      const q = shouldQuantize(name, quant);
      plan.push({
        name,
        shard,
        stored: q ? { kind: "nf4", shape } : { kind: "dense", shape, dtype: info.dtype },
        srcDtype: info.dtype,
        srcBytes: info.data_offsets[1] - info.data_offsets[0],
      });
    }
    const skipped = [...where.keys()].filter((n) => !expected.has(n));
    // Stream order: shard by shard, in each shard by data offset (sequential reads).
    const offsetOf = (p: Planned) => readers[p.shard].info(p.name).data_offsets[0];
    plan.sort((a, b) => a.shard - b.shard || offsetOf(a) - offsetOf(b));
    const sourceBytes = plan.reduce((a, p) => a + p.srcBytes, 0);
    const stored = plan.reduce((a, p) => a + storedBytes(p.stored), 0);
    const quantizer = opts.quantizer ?? ((w, shape) => quantizeNf4(w, shape));
    const meta = {
      format: STORE_FORMAT,
      version: STORE_VERSION,
      source: src.source,
      revision: src.revision,
      quant: quantKey(quant),
      config: src.configText,
      files: src.files,
      tensors: Object.fromEntries(plan.map((p) => [p.name, p.stored])),
    } as const;
    const specs: [string, TensorSpec][] = plan.flatMap((p) => storeSpecs(p.name, p.stored));
    const label = src.kind === "hub" ? `fetching ${src.source}` : `converting ${src.source}`;
    let used = false;
    return {
      ...base(src),
      cachePath,
      names: plan.map((p) => p.name),
      stats: {
        fromCache: false,
        sourceBytes,
        storedBytes: stored,
        tensors: plan.length,
        quantized: plan.filter((p) => p.stored.kind === "nf4").length,
        skipped,
      },
      close: closeAll,
      async *tensors() {
        if (used) throw new Error("ModelStream.tensors() can be iterated only once");
        used = true;
        const progress: Progress = opts.progress === false ? NO_PROGRESS : stderrProgress(label, sourceBytes);
        const httpCounts = src.kind === "hub";
        if (httpCounts) bytesSeen = (n) => progress.add(n);
        let writer: SafetensorsStreamWriter | undefined;
        let ok = false;
        try {
          if (cachePath) {
            writer = await createSafetensorsWriter(cachePath, specs, {
              ...encodeStoreMeta(meta),
              source_bytes: String(sourceBytes),
            });
          }
          for (let s = 0; s < readers.length; s++) {
            const mine = plan.filter((p) => p.shard === s);
            const byName = new Map(mine.map((p) => [p.name, p]));
            for await (const [name, t] of readers[s].tensors({ names: mine.map((p) => p.name) })) {
              const p = byName.get(name)!;
              if (!httpCounts) progress.add(p.srcBytes);
              let out: HostTensor;
              if (p.stored.kind === "nf4") {
                const q = await quantizer(t.data as Float32Array<ArrayBuffer>, p.stored.shape);
                out = { kind: "nf4", nf4: q };
                if (writer) {
                  const parts = nf4StoreData(q);
                  const names = storeSpecs(name, p.stored).map(([k]) => k);
                  for (let i = 0; i < parts.length; i++) await writer.write(names[i], parts[i]);
                }
              } else {
                const data = t.data as Float32Array<ArrayBuffer>;
                out = { kind: "dense", shape: p.stored.shape, data };
                // Stored in the source dtype: re-rounding the f32 widening of BF16/F16 values is exact.
                if (writer) await writer.write(name, data);
              }
              yield [name, out];
            }
          }
          await writer?.finish();
          ok = true;
        } catch (e) {
          if (e instanceof SafetensorsError) throw new UsageError(e.message);
          throw e;
        } finally {
          if (!ok) await writer?.abort();
          bytesSeen = undefined;
          if (ok) progress.done();
          closeAll();
        }
      },
    };
  } catch (e) {
    closeAll();
    if (e instanceof SafetensorsError) throw new UsageError(e.message);
    throw e;
  }
}

/** Loads every tensor of the model into host memory (see openModel). */
export async function loadModel(
  name: string,
  quant: QuantizationConfig,
  opts: LoadOptions = {},
): Promise<LoadedModel> {
  const m = await openModel(name, quant, opts);
  const tensors = new Map<string, HostTensor>();
  for await (const [n, t] of m.tensors()) tensors.set(n, t);
  const { names: _names, tensors: _t, close: _c, ...rest } = m;
  return { ...rest, tensors };
}

/**
 * What `--model` resolves to (source, revision, config, cache state, sizes) without reading the weights,
 * e.g. for `maieutic info`. Uncached remote models cost a few small requests (config, headers).
 */
export async function describeModel(
  name: string,
  quant: QuantizationConfig,
  opts: LoadOptions = {},
): Promise<Omit<ModelStream, "tensors" | "close">> {
  const m = await openModel(name, quant, opts);
  m.close();
  const { tensors: _t, close: _c, ...rest } = m;
  return rest;
}
