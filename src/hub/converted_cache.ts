/**
 * The converted-model cache: `$MAIEUTIC_CACHE/converted/<source key>/<quantization key>.safetensors` holds a
 * model as the loader converts it (src/hub/convert_stream.ts writes it while streaming; src/quant/store.ts is
 * its format), so later loads (and HF_HUB_OFFLINE=1) read it instead of the source. An entry is keyed by
 * source + revision (or a local checkpoint's path, sizes and mtimes) + quantization, and also records the
 * config.json and quantization it was made from: one that does not match is unusable.
 */
import { join } from "node:path";
import type { QuantizationConfig } from "../config/schema.ts";
import { FileSource } from "../safetensors/source.ts";
import { openSafetensors, type SafetensorsReader } from "../safetensors/stream.ts";
import { quantKey } from "../quant/plan.ts";
import { decodeStoreMeta, readStoredTensor, storedBytes } from "../quant/store.ts";
import { maieuticCacheDir } from "./cache.ts";
import { modelBase, type ModelStream } from "./model_stream.ts";
import type { ModelSource } from "./sources.ts";

/** Where the converted model of `source` with `quant` is cached (undefined when it is not cached). */
export function cachePathFor(src: ModelSource, quant: QuantizationConfig): string | undefined {
  if (!src.cacheKey) return undefined;
  // A dense local checkpoint is read in place; copying it would only double the disk use.
  if (src.kind !== "hub" && !quant.load_in_4bit) return undefined;
  return join(maieuticCacheDir(), "converted", src.cacheKey, `${quantKey(quant)}.safetensors`);
}

/** Opens the cache entry if it is complete and matches; otherwise says why not. */
export async function openCache(path: string, src: ModelSource, qkey: string) {
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

/** The cached model as a stream (read tensor by tensor from the cache file). */
export function fromCache(
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
    ...modelBase(src),
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
