/**
 * Our converted-model cache file: one safetensors file holding a whole model as the engine loads it.
 * - A quantized tensor `W` is stored as `W.nf4.packed` (U8), `W.nf4.qabsmax` (U8), `W.nf4.absmax2` (F32),
 *   `W.nf4.offset` (F32 [1]); its shape is in the metadata.
 * - A dense tensor keeps its name and its source dtype (BF16 stays BF16, bit for bit).
 * `__metadata__` holds format/version, the source and revision, the quantization key, config.json and the
 * tensor table, so a reader can check the file is complete and consistent before using it.
 */
import { z } from "zod";
import type { Dtype } from "../safetensors/header.ts";
import type { TensorSpec, WriteData } from "../safetensors/write.ts";
import { DQ_BLOCK, NF4_BLOCK, type Nf4Tensor, validateNf4 } from "./nf4.ts";
import type { SafetensorsReader } from "../safetensors/stream.ts";
import { decodeTensor } from "../safetensors/decode.ts";

export const STORE_FORMAT = "maieutic-model-cache";
export const STORE_VERSION = "1";

export type HostTensor =
  | { kind: "nf4"; nf4: Nf4Tensor }
  | { kind: "dense"; shape: number[]; data: Float32Array<ArrayBuffer> };

export const StoredTensorSchema = z.object({
  kind: z.enum(["nf4", "dense"]),
  shape: z.array(z.number().int().min(0)),
  dtype: z.enum(["F32", "F16", "BF16"]).optional(),
});
export type StoredTensor = z.infer<typeof StoredTensorSchema>;

export const StoreMetaSchema = z.object({
  format: z.literal(STORE_FORMAT),
  version: z.literal(STORE_VERSION),
  source: z.string(),
  revision: z.string().optional(),
  quant: z.string(),
  config: z.string(),
  /** Small files of the model directory the entry was made with (tokenizer etc.). */
  files: z.array(z.string()),
  tensors: z.record(z.string(), StoredTensorSchema),
});
export type StoreMeta = z.infer<typeof StoreMetaSchema>;

const PARTS = ["packed", "qabsmax", "absmax2", "offset"] as const;

function numel(shape: number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** The safetensors entries (names, dtypes, shapes) one stored tensor occupies, in write order. */
export function storeSpecs(name: string, t: StoredTensor): [string, TensorSpec][] {
  if (t.kind === "dense") return [[name, { dtype: t.dtype ?? "F32", shape: t.shape }]];
  const n = numel(t.shape);
  const nb = Math.ceil(n / NF4_BLOCK);
  return [
    [`${name}.nf4.packed`, { dtype: "U8", shape: [Math.ceil(n / 2)] }],
    [`${name}.nf4.qabsmax`, { dtype: "U8", shape: [nb] }],
    [`${name}.nf4.absmax2`, { dtype: "F32", shape: [Math.ceil(nb / DQ_BLOCK)] }],
    [`${name}.nf4.offset`, { dtype: "F32", shape: [1] }],
  ];
}

/** Data for storeSpecs' entries of an NF4 tensor, same order. */
export function nf4StoreData(t: Nf4Tensor): WriteData[] {
  return [t.packed, t.qabsmax, t.absmax2, new Float32Array([t.offset])];
}

export function encodeStoreMeta(meta: StoreMeta): Record<string, string> {
  return {
    format: meta.format,
    version: meta.version,
    source: meta.source,
    ...(meta.revision ? { revision: meta.revision } : {}),
    quant: meta.quant,
    config: meta.config,
    files: JSON.stringify(meta.files),
    tensors: JSON.stringify(meta.tensors),
  };
}

/** Parses and checks the metadata against the header; throws a message saying what is wrong. */
export function decodeStoreMeta(reader: SafetensorsReader): StoreMeta {
  const m = reader.header.metadata;
  let parsed: unknown;
  try {
    parsed = { ...m, files: JSON.parse(m.files ?? "null"), tensors: JSON.parse(m.tensors ?? "null") };
  } catch {
    throw new Error(`${reader.source.name}: cache metadata is not valid JSON`);
  }
  const r = StoreMetaSchema.safeParse(parsed);
  if (!r.success) {
    throw new Error(
      `${reader.source.name}: not a ${STORE_FORMAT} v${STORE_VERSION} file (${
        r.error.issues[0].path.join(".")
      })`,
    );
  }
  for (const [name, t] of Object.entries(r.data.tensors)) {
    for (const [part, spec] of storeSpecs(name, t)) {
      const info = reader.header.tensors[part];
      if (!info || info.dtype !== spec.dtype || JSON.stringify(info.shape) !== JSON.stringify(spec.shape)) {
        throw new Error(`${reader.source.name}: entry "${part}" is missing or has the wrong dtype/shape`);
      }
    }
  }
  return r.data;
}

/** Reads one stored tensor back. */
export async function readStoredTensor(
  reader: SafetensorsReader,
  name: string,
  t: StoredTensor,
): Promise<HostTensor> {
  if (t.kind === "dense") {
    const raw = await reader.readRaw(name);
    return {
      kind: "dense",
      shape: t.shape,
      data: decodeTensor(t.dtype ?? "F32", raw, true) as Float32Array<ArrayBuffer>,
    };
  }
  const [packed, qabsmax, absmax2, offset] = await Promise.all(
    PARTS.map((p) => reader.readRaw(`${name}.nf4.${p}`)),
  );
  const nf4: Nf4Tensor = {
    shape: t.shape,
    n: numel(t.shape),
    packed,
    qabsmax,
    absmax2: new Float32Array(absmax2.buffer),
    offset: new Float32Array(offset.buffer)[0],
  };
  validateNf4(nf4, `${reader.source.name}: ${name}`);
  return { kind: "nf4", nf4 };
}

/** Bytes a stored tensor takes in the file. */
export function storedBytes(t: StoredTensor): number {
  return storeSpecs("x", t).reduce((a, [, s]) => a + numel(s.shape) * bytesOf(s.dtype), 0);
}

function bytesOf(d: Dtype): number {
  return d === "F32" || d === "I32"
    ? 4
    : d === "F16" || d === "BF16"
    ? 2
    : d === "F64" || d === "I64"
    ? 8
    : 1;
}
