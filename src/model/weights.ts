/**
 * The base model on the GPU (docs/ARCHITECTURE.md#numerics): decoder projections as NF4 (bitsandbytes layout, double-quantized
 * absmax) or dense, norms f32, and the tied embedding split into row chunks that each fit one storage binding
 * (the 256000 × 2304 table is 1.18 GB in f16). Tensors are uploaded one at a time as the loader streams them,
 * so the host never holds the model. Every allocation goes through the BufferPool ("weights"), so the memory
 * plan (plan mode: gpu = null) counts exactly what a real load allocates.
 */
import type { BufferPool } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { Recorder } from "../gpu/recorder.ts";
import { f32ToF16Bits } from "../util/half.ts";
import type { HostTensor } from "../quant/store.ts";
import type { TableChunk } from "./ops/cross_entropy.ts";
import { embeddingChunkRows } from "./ops/embedding.ts";
import { type FillMode, fillRandom } from "./ops/fill_random.ts";
import { type LinearWeight, nf4Bytes, uploadNf4 } from "./ops/linear.ts";
import { ropeInvFreq } from "./ops/rope.ts";
import {
  type Gemma2Config,
  type NormName,
  NORMS,
  parseProjectionTensor,
  type Projection,
  PROJECTIONS,
  projectionShape,
} from "../config/gemma2.ts";

export interface LayerWeights {
  norms: Record<NormName, GPUBuffer>;
  proj: Record<Projection, LinearWeight>;
}

export interface ModelWeights {
  config: Gemma2Config;
  /** Element type of the embedding table and of dense projections. */
  dtype: "f32" | "f16";
  embed: TableChunk[];
  finalNorm: GPUBuffer;
  layers: LayerWeights[];
  /** RoPE inverse frequencies [head_dim / 2] f32 (transformers' float32 computation). */
  invFreq: GPUBuffer;
  quantized: boolean;
}

/** HF tensor name -> where it goes. */
export function parseTensorName(name: string):
  | { kind: "embed" }
  | { kind: "final_norm" }
  | { kind: "norm"; layer: number; norm: NormName }
  | { kind: "proj"; layer: number; proj: Projection }
  | null {
  if (name === "model.embed_tokens.weight") return { kind: "embed" };
  if (name === "model.norm.weight") return { kind: "final_norm" };
  const p = parseProjectionTensor(name);
  if (p) return { kind: "proj", ...p };
  const n = /^model\.layers\.(\d+)\.(\w+)\.weight$/.exec(name);
  if (n && (NORMS as readonly string[]).includes(n[2])) {
    return { kind: "norm", layer: +n[1], norm: n[2] as NormName };
  }
  return null;
}

function writeBytes(gpu: Gpu | null, buf: GPUBuffer, data: ArrayBufferView): void {
  if (!gpu) return;
  const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4 === 0) gpu.device.queue.writeBuffer(buf, 0, bytes);
  else {
    const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
    padded.set(bytes);
    gpu.device.queue.writeBuffer(buf, 0, padded);
  }
}

function toDtype(data: Float32Array, dtype: "f32" | "f16"): ArrayBufferView {
  if (dtype === "f32") return data;
  const h = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) h[i] = f32ToF16Bits(data[i]);
  return h;
}

/** Builds the weight set from a stream of HF-named host tensors (or, with gpu = null, only counts bytes). */
export class WeightBuilder {
  private embed: TableChunk[] = [];
  private finalNorm: GPUBuffer | undefined;
  private layers: Partial<LayerWeights>[];
  private invFreq: GPUBuffer;
  private seen = new Set<string>();

  constructor(
    private readonly gpu: Gpu | null,
    private readonly pool: BufferPool,
    readonly config: Gemma2Config,
    readonly dtype: "f32" | "f16",
  ) {
    this.layers = Array.from(
      { length: config.num_hidden_layers },
      () => ({ norms: {} as never, proj: {} as never }),
    );
    const inv = ropeInvFreq(config.head_dim, config.rope_theta);
    this.invFreq = pool.persistent("rope.invFreq", "weights", inv.byteLength);
    writeBytes(gpu, this.invFreq, inv);
  }

  private vector(label: string, data: Float32Array): GPUBuffer {
    const buf = this.pool.persistent(label, "weights", data.byteLength);
    writeBytes(this.gpu, buf, data);
    return buf;
  }

  /** The embedding chunks (each ≤ one binding), filled from `data` when given. */
  embedTable(data?: Float32Array): void {
    const c = this.config;
    const maxBinding = this.gpu?.limits.maxStorageBufferBindingSize ?? 128 * 2 ** 20;
    const bpe = this.dtype === "f16" ? 2 : 4;
    for (const ch of embeddingChunkRows(c.vocab_size, c.hidden_size, this.dtype, maxBinding)) {
      const bytes = ch.rows * c.hidden_size * bpe;
      const buffer = this.pool.persistent(`embed[${ch.rowStart}]`, "embedding", bytes);
      if (data) {
        writeBytes(
          this.gpu,
          buffer,
          toDtype(
            data.subarray(ch.rowStart * c.hidden_size, (ch.rowStart + ch.rows) * c.hidden_size),
            this.dtype,
          ),
        );
      }
      this.embed.push({ buffer, rowStart: ch.rowStart, rows: ch.rows });
    }
  }

  add(name: string, t: HostTensor): void {
    const where = parseTensorName(name);
    if (!where) return; // e.g. lm_head.weight of a tied checkpoint: the embedding serves
    this.seen.add(name);
    const c = this.config;
    const shapeOf = t.kind === "nf4" ? t.nf4.shape : t.shape;
    const expect = where.kind === "embed"
      ? [c.vocab_size, c.hidden_size]
      : where.kind === "proj"
      ? projectionShape(c, where.proj)
      : [c.hidden_size];
    if (shapeOf.join("x") !== expect.join("x")) {
      throw new Error(`${name}: shape [${shapeOf}] does not match the config's [${expect}]`);
    }
    if (where.kind === "embed") {
      if (t.kind !== "dense") throw new Error(`${name}: the embedding must stay unquantized`);
      this.embedTable(t.data);
    } else if (where.kind === "final_norm") {
      if (t.kind !== "dense") throw new Error(`${name}: norms stay unquantized`);
      this.finalNorm = this.vector(name, t.data);
    } else if (where.kind === "norm") {
      if (t.kind !== "dense") throw new Error(`${name}: norms stay unquantized`);
      (this.layers[where.layer].norms as Record<NormName, GPUBuffer>)[where.norm] = this.vector(name, t.data);
    } else {
      const proj = this.layers[where.layer].proj as Record<Projection, LinearWeight>;
      proj[where.proj] = this.projection(name, t);
    }
  }

  private projection(name: string, t: HostTensor): LinearWeight {
    const [out, inF] = t.kind === "nf4" ? t.nf4.shape : t.shape;
    if (t.kind === "nf4") {
      if (this.gpu) return uploadNf4(this.gpu, t.nf4, name, this.pool);
      return planNf4(this.pool, name, out, inF);
    }
    const data = toDtype(t.data, this.dtype);
    const buffer = this.pool.persistent(name, "weights", data.byteLength);
    writeBytes(this.gpu, buffer, data);
    return { kind: "dense", shape: [out, inF], buffer, dtype: this.dtype };
  }

  /** gemma-2-2b-random: every tensor made on the GPU from a hash (NF4 codes, absmax codes, f16 table). */
  randomize(seed: number, quantized: boolean): void {
    const c = this.config;
    const rec = this.gpu ? new Recorder(this.gpu, { label: "random-weights" }) : null;
    const fill = (buf: GPUBuffer, words: number, mode: FillMode, lo: number, hi: number, hash: number) => {
      if (rec) fillRandom(rec, buf, { words, mode, lo, hi, seed: hash });
    };
    this.embedTable();
    this.embed.forEach((ch, i) => {
      const n = ch.rows * c.hidden_size;
      if (this.dtype === "f16") fill(ch.buffer, Math.ceil(n / 2), "f16", -0.05, 0.05, seed + 17 * i);
      else fill(ch.buffer, n, "f32", -0.05, 0.05, seed + 17 * i);
    });
    const zeros = new Float32Array(c.hidden_size);
    this.finalNorm = this.vector("model.norm.weight", zeros);
    let s = seed * 7919 + 1;
    for (let l = 0; l < c.num_hidden_layers; l++) {
      for (const n of NORMS) {
        (this.layers[l].norms as Record<NormName, GPUBuffer>)[n] = this.vector(
          `model.layers.${l}.${n}.weight`,
          zeros,
        );
      }
      for (const p of PROJECTIONS) {
        const [out, inF] = projectionShape(c, p);
        const name = `model.layers.${l}.${p}`;
        let w: LinearWeight;
        if (quantized) {
          const nf = planNf4(this.pool, name, out, inF);
          const b = nf4Bytes(out * inF);
          fill(nf.packed, b.packed / 4, "bits", 0, 0, s++);
          fill(nf.qabsmax, b.qabsmax / 4, "bits", 0, 0, s++);
          // absmax_used = map[q]·absmax2 + offset ∈ [0.5, 1.5]·offset: weights of realistic size.
          fill(nf.absmax2, b.absmax2 / 4, "f32", 0.01 / Math.sqrt(inF / 64), 0.01 / Math.sqrt(inF / 64), s++);
          w = { ...nf, offset: 0.02 / Math.sqrt(inF / 64) };
        } else {
          const bytes = out * inF * (this.dtype === "f16" ? 2 : 4);
          const buffer = this.pool.persistent(name, "weights", bytes);
          const bound = 1 / Math.sqrt(inF);
          if (this.dtype === "f16") fill(buffer, Math.ceil((out * inF) / 2), "f16", -bound, bound, s++);
          else fill(buffer, out * inF, "f32", -bound, bound, s++);
          w = { kind: "dense", shape: [out, inF], buffer, dtype: this.dtype };
        }
        (this.layers[l].proj as Record<Projection, LinearWeight>)[p] = w;
      }
    }
    rec?.submit();
  }

  /** Checks completeness and returns the weights. */
  finish(): ModelWeights {
    const c = this.config;
    const missing: string[] = [];
    if (!this.embed.length) missing.push("model.embed_tokens.weight");
    if (!this.finalNorm) missing.push("model.norm.weight");
    this.layers.forEach((l, i) => {
      for (const n of NORMS) {
        if (!(l.norms as Record<string, unknown>)[n]) missing.push(`model.layers.${i}.${n}.weight`);
      }
      for (const p of PROJECTIONS) {
        if (!(l.proj as Record<string, unknown>)[p]) missing.push(`model.layers.${i}.*.${p}.weight`);
      }
    });
    if (missing.length) {
      throw new Error(
        `the checkpoint lacks ${missing.length} tensor(s): ${missing.slice(0, 5).join(", ")}${
          missing.length > 5 ? ", ..." : ""
        }`,
      );
    }
    const quantized = this.layers[0].proj!.q_proj.kind === "nf4";
    return {
      config: c,
      dtype: this.dtype,
      embed: this.embed,
      finalNorm: this.finalNorm!,
      layers: this.layers as LayerWeights[],
      invFreq: this.invFreq,
      quantized,
    };
  }
}

function planNf4(pool: BufferPool, name: string, out: number, inF: number) {
  const b = nf4Bytes(out * inF);
  return {
    kind: "nf4" as const,
    shape: [out, inF] as const,
    packed: pool.persistent(`${name}.packed`, "weights", b.packed),
    qabsmax: pool.persistent(`${name}.qabsmax`, "weights", b.qabsmax),
    absmax2: pool.persistent(`${name}.absmax2`, "weights", b.absmax2),
    offset: 0,
  };
}

/** Uploads a whole stream of tensors (one at a time) into GPU weights. */
export async function buildWeights(
  gpu: Gpu | null,
  pool: BufferPool,
  config: Gemma2Config,
  dtype: "f32" | "f16",
  tensors: AsyncIterable<[string, HostTensor]> | Iterable<[string, HostTensor]>,
): Promise<ModelWeights> {
  const b = new WeightBuilder(gpu, pool, config, dtype);
  for await (const [name, t] of tensors) b.add(name, t);
  return b.finish();
}

export function randomWeights(
  gpu: Gpu | null,
  pool: BufferPool,
  config: Gemma2Config,
  dtype: "f32" | "f16",
  quantized: boolean,
  seed = 1234,
): ModelWeights {
  const b = new WeightBuilder(gpu, pool, config, dtype);
  b.randomize(seed, quantized);
  return b.finish();
}
