/**
 * Streaming quantization: a model's weights are read tensor by tensor (HTTP Range requests or local reads),
 * each converted as it arrives (the decoder linears NF4-quantized, the rest kept dense, src/quant/plan.ts)
 * and written straight into the converted-model cache (src/hub/converted_cache.ts; src/quant/store.ts is the
 * format), which appears under its final name only when complete. The full-precision model is never held in
 * memory: at most the tensor being converted and the one being fetched.
 */
import { UsageError } from "../util/errors.ts";
import type { QuantizationConfig } from "../config/schema.ts";
import { type Dtype, SafetensorsError } from "../safetensors/header.ts";
import { checkShards, parseShardIndex } from "../safetensors/index.ts";
import { openSafetensors, type SafetensorsReader } from "../safetensors/stream.ts";
import {
  createSafetensorsWriter,
  type SafetensorsStreamWriter,
  type TensorSpec,
} from "../safetensors/write.ts";
import { type Nf4Tensor, quantizeNf4 } from "../quant/nf4.ts";
import { expectedTensors, quantKey, shouldQuantize } from "../quant/plan.ts";
import {
  encodeStoreMeta,
  type HostTensor,
  nf4StoreData,
  STORE_FORMAT,
  STORE_VERSION,
  storedBytes,
  type StoredTensor,
  storeSpecs,
} from "../quant/store.ts";
import { NO_PROGRESS, type Progress, stderrProgress } from "../util/progress.ts";
import { modelBase, type ModelStream } from "./model_stream.ts";
import type { ModelSource } from "./sources.ts";

/** What the conversion needs of the loader's options (src/hub/load.ts LoadOptions). */
export interface ConvertOptions {
  progress?: boolean;
  quantizer?: (w: Float32Array<ArrayBuffer>, shape: number[]) => Nf4Tensor | Promise<Nf4Tensor>;
}

/** One tensor to convert: where it is, what it becomes. */
export interface Planned {
  name: string;
  /** Index of the weight file that holds it. */
  shard: number;
  stored: StoredTensor;
  srcDtype: Dtype;
  srcBytes: number;
}

/**
 * Checks the weight files' tensor tables against the tensors config.json implies (`expected`, in the order of
 * src/quant/plan.ts expectedTensors) and plans each one's conversion, in stream order: shard by shard, in each
 * shard by data offset (sequential reads). `skipped` are the tensors Gemma2ForCausalLM does not use (e.g. a
 * tied lm_head). Throws a UsageError naming the tensor for a missing one, a wrong shape or dtype.
 */
export function planConversion(
  source: string,
  files: readonly string[],
  tables: readonly Pick<SafetensorsReader, "names" | "info">[],
  expected: Map<string, number[]>,
  quant: QuantizationConfig,
): { plan: Planned[]; skipped: string[] } {
  const where = new Map<string, number>();
  tables.forEach((r, i) => r.names().forEach((n) => where.set(n, i)));
  const plan: Planned[] = [];
  for (const [name, shape] of expected) {
    const shard = where.get(name);
    if (shard === undefined) {
      throw new UsageError(
        `${source}: tensor "${name}" is missing from the checkpoint (${files.join(", ")})`,
      );
    }
    const info = tables[shard].info(name);
    if (JSON.stringify(info.shape) !== JSON.stringify(shape)) {
      throw new UsageError(
        `${source}/${files[shard]}: tensor "${name}" has shape ${
          JSON.stringify(info.shape)
        } but config.json implies ${JSON.stringify(shape)}`,
      );
    }
    if (info.dtype !== "F32" && info.dtype !== "F16" && info.dtype !== "BF16") {
      throw new UsageError(
        `${source}/${files[shard]}: tensor "${name}" is ${info.dtype}; expected F32, F16 or BF16`,
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
  const offsetOf = (p: Planned) => tables[p.shard].info(p.name).data_offsets[0];
  plan.sort((a, b) => a.shard - b.shard || offsetOf(a) - offsetOf(b));
  return { plan, skipped };
}

/**
 * Opens the source's weight files and returns the model as a stream that converts each tensor as it arrives
 * and, with a `cachePath`, writes the converted-model cache entry on the way.
 */
export async function fromSource(
  src: ModelSource,
  quant: QuantizationConfig,
  cachePath: string | undefined,
  opts: ConvertOptions,
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
    const { plan, skipped } = planConversion(
      src.source,
      weights.map((w) => w.file),
      readers,
      expectedTensors(src.config),
      quant,
    );
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
      ...modelBase(src),
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
