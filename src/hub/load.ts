/**
 * Host-side model loading for the engine, the top level of src/hub: `--model` names a source
 * (src/hub/model_name.ts), which resolves to its config and weight files (src/hub/sources.ts: a Hub id, a
 * local directory, `tiny`, `gemma-2-2b-random`). The model then comes from the converted-model cache
 * (src/hub/converted_cache.ts) when an entry matches, else streams from the source, converted tensor by tensor
 * and written into the cache on the way (src/hub/convert_stream.ts). Later loads (and HF_HUB_OFFLINE=1) read
 * the cache, keyed by source + revision + quantization.
 */
import { UsageError } from "../util/errors.ts";
import type { QuantizationConfig } from "../config/schema.ts";
import type { Nf4Tensor } from "../quant/nf4.ts";
import { checkQuantConfig, quantKey } from "../quant/plan.ts";
import { exists } from "./cache.ts";
import type { HubClientOptions } from "./client.ts";
import { cachePathFor, fromCache, openCache } from "./converted_cache.ts";
import { fromSource } from "./convert_stream.ts";
import {
  type HostTensor,
  type LoadedModel,
  modelBase,
  type ModelStats,
  type ModelStream,
} from "./model_stream.ts";
import { resolveSource } from "./sources.ts";

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
  const log = opts.log ?? ((line: string) => console.error(line));
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
    return { ...modelBase(src), names: [], stats: emptyStats, async *tensors() {}, close() {} };
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
