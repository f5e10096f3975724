/**
 * `maieutic merge` at model level: fold a PEFT LoRA adapter into the base weights and write a Hub-layout
 * directory that transformers' `AutoModelForCausalLM.from_pretrained(dir)` (and our own `--model dir`) loads:
 *
 *   model-0000i-of-0000n.safetensors   HF tensor names, `__metadata__ {"format": "pt"}`, one dtype
 *   model.safetensors.index.json       {"metadata": {"total_size": bytes of tensor data}, "weight_map": {...}}
 *   config.json                        the base config with torch_dtype set (and no quantization_config)
 *   tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json, ... (copied)
 *
 * The merge itself is PEFT's `merge_and_unload` (lora/layer.py Linear.merge, src/lora/merge.ts): for every
 * targeted projection `W' = W + scaling · B·A` in f32, rounded once to the output dtype (round to nearest even).
 * The base weights are read dense (the original checkpoint, as with `quantization.load_in_4bit=false`); only
 * when they cannot be read (a Hub model offline with only its NF4 cache) are the NF4 weights dequantized and
 * merged into, as PEFT does for a 4-bit base (bnb.py Linear4bit.merge), with a warning.
 *
 * Memory: tensors stream one at a time from the loader into the shard being written
 * (createSafetensorsWriter); the full model is never held. Everything is written into a sibling temp directory
 * that is renamed to `--out` only when complete.
 */
import { basename, dirname, join } from "node:path";
import { InterruptedError, UsageError } from "../util/errors.ts";
import type { QuantizationConfig } from "../config/schema.ts";
import { f32ToBf16Bits, f32ToF16Bits } from "../util/half.ts";
import { type LoadOptions, openModel } from "../hub/load.ts";
import { parseModelName } from "../hub/model_name.ts";
import { MODEL_SIDE_FILES } from "../hub/sources.ts";
import type { ModelStream } from "../hub/model_stream.ts";
import { NO_PROGRESS, type Progress, stderrProgress } from "../util/progress.ts";
import { type Gemma2Config, modulePath } from "../config/gemma2.ts";
import { dequantizeNf4 } from "../quant/nf4.ts";
import { expectedTensors } from "../quant/plan.ts";
import type { Dtype } from "../safetensors/header.ts";
import { INDEX_FILE } from "../safetensors/index.ts";
import { createSafetensorsWriter, type SafetensorsStreamWriter } from "../safetensors/write.ts";
import { writeFileAtomic } from "../util/atomic.ts";
import { mergeLoraWeight } from "./merge.ts";
import type { LoraModuleInfo, LoraParams } from "./params.ts";
import { type AdapterConfig, adapterToParams, loadAdapter } from "./peft.ts";

/** Output dtypes, named as transformers' `torch_dtype`. */
export const MERGE_DTYPES = ["float32", "float16", "bfloat16"] as const;
export type MergeDtype = typeof MERGE_DTYPES[number];

const SAFETENSORS_DTYPE: Record<MergeDtype, Dtype> = { float32: "F32", float16: "F16", bfloat16: "BF16" };
const DTYPE_SIZE: Record<MergeDtype, number> = { float32: 4, float16: 2, bfloat16: 2 };

/** Default `--max-shard-size`: 2 GB (10^9, as transformers' "2GB"). */
export const DEFAULT_MAX_SHARD_SIZE = 2_000_000_000;

/** Files copied from the base model directory besides config.json (tokenizer.model: sentencepiece, if any). */
export const COPIED_FILES = [...MODEL_SIDE_FILES, "tokenizer.model"];

/** Largest finite float16. */
const F16_MAX = 65504;

/**
 * Parses a shard size as transformers' `convert_file_size_to_int` does: an integer number of bytes, or a
 * number with KB/MB/GB (powers of 1000) or KiB/MiB/GiB (powers of 1024), case-insensitive.
 */
export function parseShardSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$/i.exec(text);
  if (!m) {
    throw new UsageError(
      `--max-shard-size "${text}": expected bytes or a size like 2GB, 500MB or 1GiB`,
    );
  }
  const unit = (m[2] ?? "b").toLowerCase();
  const mult: Record<string, number> = {
    b: 1,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    tb: 1e12,
    kib: 2 ** 10,
    mib: 2 ** 20,
    gib: 2 ** 30,
    tib: 2 ** 40,
  };
  const n = Math.floor(Number(m[1]) * mult[unit]);
  if (n < 1) throw new UsageError(`--max-shard-size "${text}" must be at least 1 byte`);
  return n;
}

/** Shard file names as transformers writes them: model-00001-of-00003.safetensors. */
export function shardName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`;
}

/**
 * f32 values in the output dtype: Float32Array as is, F16/BF16 as raw bits rounded to nearest even (torch's
 * `.to(dtype)`). Throws a UsageError naming the tensor when float16 would overflow to infinity.
 */
export function encodeAs(dtype: MergeDtype, data: Float32Array, name: string): Float32Array | Uint16Array {
  if (dtype === "float32") return data;
  const out = new Uint16Array(data.length);
  if (dtype === "bfloat16") {
    for (let i = 0; i < data.length; i++) out[i] = f32ToBf16Bits(data[i]);
    return out;
  }
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    const h = f32ToF16Bits(x);
    // 0x7c00 = ±inf after rounding: a finite value beyond float16's range.
    if ((h & 0x7fff) === 0x7c00 && Number.isFinite(x)) {
      let max = 0;
      for (let j = 0; j < data.length; j++) max = Math.max(max, Math.abs(data[j]));
      throw new UsageError(
        `--dtype float16: tensor "${name}" has values beyond float16's range (max |x| = ${
          max.toPrecision(6)
        } > ${F16_MAX}); use --dtype bfloat16 or float32`,
      );
    }
    out[i] = h;
  }
  return out;
}

/** The output dtype when none is asked for: the base config's torch_dtype if it is one we write, else f32. */
export function defaultDtype(configJson: Record<string, unknown>): MergeDtype {
  const t = configJson.torch_dtype;
  return (MERGE_DTYPES as readonly unknown[]).includes(t) ? t as MergeDtype : "float32";
}

export interface ShardPlan {
  file: string;
  /** [tensor name, shape] in write order. */
  tensors: [string, number[]][];
  bytes: number;
}

/**
 * Greedy sharding in stream order (transformers `shard_checkpoint`): a tensor starts a new shard when it
 * would push the current one past `maxBytes`; a tensor larger than `maxBytes` gets a shard of its own.
 */
export function planShards(
  tensors: [string, number[]][],
  dtype: MergeDtype,
  maxBytes: number,
): ShardPlan[] {
  const groups: { tensors: [string, number[]][]; bytes: number }[] = [];
  let cur: { tensors: [string, number[]][]; bytes: number } | undefined;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, d) => a * d, 1) * DTYPE_SIZE[dtype];
    if (!cur || (cur.tensors.length && cur.bytes + bytes > maxBytes)) {
      cur = { tensors: [], bytes: 0 };
      groups.push(cur);
    }
    cur.tensors.push([name, shape]);
    cur.bytes += bytes;
  }
  return groups.map((g, i) => ({ file: shardName(i, groups.length), ...g }));
}

export interface MergeOptions {
  /** `--model`: Hub id[@revision], local directory or "tiny". */
  model: string;
  /** PEFT adapter directory (adapter_config.json + adapter_model.safetensors). */
  adapter: string;
  /** Output directory: must not exist, or be empty. */
  out: string;
  /** Default: the base config's torch_dtype (float32/float16/bfloat16), else float32. */
  dtype?: MergeDtype;
  /** Bytes per shard (default 2 GB). */
  maxShardSize?: number;
  /** The run's quantization settings: used only for the NF4 fallback when the dense weights are unreadable. */
  quantization: QuantizationConfig;
  /** Loader options (Hub endpoint/token/offline, progress, log). */
  load?: LoadOptions;
  /** Progress on stderr (default true). */
  progress?: boolean;
  /** Warnings and notices (default stderr). */
  log?: (line: string) => void;
  /** Aborting stops between tensors: the temp directory is removed and InterruptedError (exit 130) thrown. */
  signal?: AbortSignal;
}

export interface MergeResult {
  out: string;
  dtype: MergeDtype;
  /** Shard file names, in order. */
  shards: string[];
  /** Bytes of tensor data (the index's metadata.total_size). */
  totalSize: number;
  tensors: number;
  /** Projections that received a LoRA delta. */
  mergedModules: number;
  /** True when the base came from the NF4 cache (dequantized), not the original weights. */
  fromNf4: boolean;
  source: string;
  revision?: string;
  adapterConfig: AdapterConfig;
  /** Files copied from the base model directory. */
  copied: string[];
  warnings: string[];
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** `--out` must not exist, or be an empty directory (nothing of the user's is ever overwritten). */
async function checkOut(out: string): Promise<void> {
  const st = await statOrUndefined(out);
  if (!st) return;
  if (!st.isDirectory) {
    throw new UsageError(`--out ${out}: exists and is not a directory; choose another path`);
  }
  for await (const _ of Deno.readDir(out)) {
    throw new UsageError(`--out ${out}: directory exists and is not empty; remove it or choose another path`);
  }
}

/**
 * Opens the base model dense (original weights). A Hub model whose original weights cannot be read (offline)
 * but whose NF4 conversion is cached is opened from that cache instead (returned with `nf4: true`).
 */
export async function openMergeBase(
  model: string,
  quant: QuantizationConfig,
  opts: LoadOptions = {},
): Promise<{ stream: ModelStream; nf4: boolean }> {
  const dense: QuantizationConfig = { ...quant, load_in_4bit: false };
  try {
    // A dense conversion is read once here: reuse one if cached, but do not leave a new one behind.
    return { stream: await openModel(model, dense, { ...opts, writeCache: false }), nf4: false };
  } catch (e) {
    if (!(e instanceof UsageError) || !quant.load_in_4bit) throw e;
    const spec = await parseModelName(model).catch(() => undefined);
    if (spec?.kind !== "hub") throw e;
    try {
      return { stream: await openModel(model, quant, opts), nf4: true };
    } catch {
      throw e; // the dense error says what to do (run once online)
    }
  }
}

/** Maps `model.layers.{i}.{block}.{module}.weight` to the adapter module that targets it. */
function targetsByTensor(params: LoraParams): Map<string, LoraModuleInfo> {
  return new Map(params.layout.modules.map((m) => [`${modulePath(m.layer, m.module)}.weight`, m]));
}

/**
 * config.json of the merged model: the base's text with `torch_dtype` (and `dtype`, newer transformers'
 * name, when present) set, everything else byte for byte (so 0.0 stays 0.0). A base with a
 * quantization_config (a pre-quantized checkpoint) is re-serialized without it: the merged weights are dense.
 */
export function mergedConfigJson(baseText: string, dtype: MergeDtype): string {
  const base = JSON.parse(baseText) as Record<string, unknown>;
  if (base.quantization_config === undefined) {
    let t = baseText;
    const set = (key: string): boolean => {
      const re = new RegExp(`("${key}"\\s*:\\s*)("(?:[^"\\\\]|\\\\.)*"|null)`);
      if (!re.test(t)) return false;
      t = t.replace(re, `$1"${dtype}"`);
      return true;
    };
    if (!set("torch_dtype")) t = t.replace(/^(\s*\{)(\s*)/, `$1$2"torch_dtype": "${dtype}",$2`);
    if ("dtype" in base) set("dtype");
    try {
      const back = JSON.parse(t) as Record<string, unknown>;
      if (back.torch_dtype === dtype && (!("dtype" in base) || back.dtype === dtype)) return t;
    } catch { /* fall through to re-serializing */ }
  }
  const c: Record<string, unknown> = { ...base, torch_dtype: dtype };
  if ("dtype" in base) c.dtype = dtype;
  delete c.quantization_config;
  const sorted = Object.fromEntries(Object.entries(c).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return JSON.stringify(sorted, null, 2) + "\n";
}

/** Folds the adapter into the base model and writes the merged model directory (see the module comment). */
export async function mergeAdapterIntoModel(opts: MergeOptions): Promise<MergeResult> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const warnings: string[] = [];
  const warn = (w: string) => {
    warnings.push(w);
    log(`warning: ${w}`);
  };
  await checkOut(opts.out);
  const adapter = await loadAdapter(opts.adapter);
  const loadOpts: LoadOptions = { progress: false, log, ...opts.load };
  const { stream, nf4 } = await openMergeBase(opts.model, opts.quantization, loadOpts);
  const tmp = join(
    dirname(opts.out),
    `.${basename(opts.out)}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`,
  );
  let writer: SafetensorsStreamWriter | undefined;
  try {
    if (stream.randomWeights) {
      throw new UsageError(
        `--model ${opts.model} has no weights (the engine generates them at random); merge needs a real checkpoint`,
      );
    }
    const config: Gemma2Config = stream.config;
    // Validates keys, shapes, targets and unsupported features (UsageError naming the file and tensor).
    const { params, warnings: adapterWarnings } = adapterToParams(adapter, config, {
      baseModel: stream.source,
    });
    for (const w of adapterWarnings) warn(w);
    if (nf4) {
      warn(
        `the original weights of ${stream.source} cannot be read (offline), so the adapter is merged into its ` +
          `NF4-dequantized weights from the cache (as PEFT merge_and_unload on a 4-bit model); ` +
          `run once online for a merge into the original weights`,
      );
    }
    const baseConfigText = await Deno.readTextFile(join(stream.dir, "config.json"));
    const baseConfigJson = JSON.parse(baseConfigText) as Record<string, unknown>; // parsed by the loader already
    const dtype = opts.dtype ?? defaultDtype(baseConfigJson);
    const shapes = expectedTensors(config);
    const order: [string, number[]][] = stream.names.map((n) => {
      const s = shapes.get(n);
      if (!s) throw new Error(`merge: the loader yields "${n}", which is not a Gemma-2 tensor`);
      return [n, s];
    });
    const shards = planShards(order, dtype, opts.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
    const shardOf = new Map<string, number>();
    shards.forEach((s, i) => s.tensors.forEach(([n]) => shardOf.set(n, i)));
    const totalSize = shards.reduce((a, s) => a + s.bytes, 0);
    const targets = targetsByTensor(params);
    for (const key of targets.keys()) {
      if (!shardOf.has(key)) throw new UsageError(`${opts.adapter}: targets "${key}", which the model lacks`);
    }

    await Deno.mkdir(tmp, { recursive: true });
    const progress: Progress = opts.progress === false
      ? NO_PROGRESS
      : stderrProgress(`merging into ${opts.out}`, totalSize);
    let open = -1;
    let mergedModules = 0;
    let count = 0;
    for await (const [name, t] of stream.tensors()) {
      if (opts.signal?.aborted) {
        throw new InterruptedError(`merge interrupted; nothing was written to ${opts.out}`);
      }
      const s = shardOf.get(name);
      if (s === undefined) throw new Error(`merge: unexpected tensor "${name}" from the loader`);
      if (s !== open) {
        await writer?.finish();
        const plan = shards[s];
        writer = await createSafetensorsWriter(
          join(tmp, plan.file),
          plan.tensors.map(([n, shape]) => [n, { dtype: SAFETENSORS_DTYPE[dtype], shape }]),
          { format: "pt" },
        );
        open = s;
      }
      let w: Float32Array = t.kind === "nf4" ? dequantizeNf4(t.nf4) : t.data;
      const m = targets.get(name);
      if (m) {
        w = mergeLoraWeight(w, params, m);
        mergedModules++;
      }
      await writer!.write(name, encodeAs(dtype, w, name));
      progress.add(w.length * DTYPE_SIZE[dtype]);
      count++;
    }
    await writer?.finish();
    writer = undefined;
    if (count !== order.length) {
      throw new Error(`merge: the loader yielded ${count} of ${order.length} tensors`);
    }
    progress.done();

    const weightMap: Record<string, string> = {};
    for (const [n] of [...order].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      weightMap[n] = shards[shardOf.get(n)!].file;
    }
    await writeFileAtomic(
      join(tmp, INDEX_FILE),
      JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + "\n",
    );
    await writeFileAtomic(join(tmp, "config.json"), mergedConfigJson(baseConfigText, dtype));
    const copied: string[] = [];
    for (const f of COPIED_FILES) {
      const src = join(stream.dir, f);
      if (!(await statOrUndefined(src))?.isFile) continue;
      await Deno.copyFile(src, join(tmp, f));
      copied.push(f);
    }
    if (!copied.includes("tokenizer.json")) {
      warn(`${stream.dir} has no tokenizer.json; copy the base model's tokenizer files into ${opts.out}`);
    }
    // Publish: --out is absent or an empty directory (checked above; checked again in case it appeared since).
    await checkOut(opts.out);
    await Deno.remove(opts.out).catch(() => {});
    await Deno.rename(tmp, opts.out);
    return {
      out: opts.out,
      dtype,
      shards: shards.map((s) => s.file),
      totalSize,
      tensors: count,
      mergedModules,
      fromNf4: nf4,
      source: stream.source,
      revision: stream.revision,
      adapterConfig: adapter.config,
      copied,
      warnings,
    };
  } catch (e) {
    await writer?.abort();
    stream.close();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
