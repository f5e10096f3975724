/**
 * Host side of kernels/embedding.wgsl: `x[n] = table[ids[n]] · scale` (Gemma-2 scales by sqrt(hidden_size), 48 for
 * gemma-2-2b; transformers `modeling_gemma2.py` Gemma2Model.forward). The table may be split into chunks of
 * contiguous rows, each its own buffer within maxStorageBufferBindingSize; one dispatch per chunk fills the tokens
 * whose ids fall in it. No gradient: the embedding is frozen in QLoRA and input-embedding grads are not needed.
 */
import source from "../../../kernels/embedding.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

const EMBEDDING = defineKernel({
  file: "embedding.wgsl",
  code: source,
  params: { tokens: "u32", dim: "u32", rowStart: "u32", rows: "u32", scale: "f32" },
});

/** Storage format of the table: f32, IEEE half, or bfloat16 (as in the safetensors file). */
export type TableFormat = "f32" | "f16" | "bf16";

export interface EmbeddingChunk {
  /** Rows [rowStart, rowStart + rows) of the table, row-major, starting at element 0 of the binding. */
  buffer: Binding;
  rowStart: number;
  rows: number;
}

export interface EmbeddingShape {
  /** Number of token ids (B·T). */
  tokens: number;
  /** hidden_size. */
  dim: number;
  /** Multiplier, sqrt(hidden_size) for Gemma-2. */
  scale: number;
  format: TableFormat;
}

const FMT: Record<TableFormat, number> = { f32: 0, f16: 1, bf16: 2 };
const WG = 256;

export function tableBytesPerElement(format: TableFormat): number {
  return format === "f32" ? 4 : 2;
}

/**
 * Row ranges for splitting a `[vocab, dim]` table so that no chunk exceeds `maxBindingBytes`: returns
 * `{rowStart, rows}` per chunk (the caller creates one buffer per range).
 */
export function embeddingChunkRows(
  vocab: number,
  dim: number,
  format: TableFormat,
  maxBindingBytes: number,
): { rowStart: number; rows: number }[] {
  // Each chunk's byte size is rounded up to 4 (half tables with odd rows·dim) and its buffer to 16.
  const rowBytes = dim * tableBytesPerElement(format);
  const perChunk = Math.floor((maxBindingBytes - 16) / rowBytes);
  if (perChunk < 1) throw new RangeError(`embedding: a row of ${rowBytes} bytes exceeds the binding limit`);
  const out: { rowStart: number; rows: number }[] = [];
  for (let r = 0; r < vocab; r += perChunk) out.push({ rowStart: r, rows: Math.min(perChunk, vocab - r) });
  return out;
}

/**
 * `out[n, :] = table[ids[n], :] · scale` (f32 `[tokens, dim]`). `ids` is u32 `[tokens]`. Ids outside every chunk
 * leave their output rows untouched: validate ids against the vocabulary before.
 */
export function embedding(
  rec: Recorder,
  ids: Binding,
  chunks: readonly EmbeddingChunk[],
  out: Binding,
  s: EmbeddingShape,
): void {
  let wg = 32;
  while (wg < WG && wg < s.dim) wg *= 2;
  const k = getKernel(rec.gpu, {
    ...EMBEDDING,
    constants: { WG: wg, FMT: FMT[s.format] },
  });
  for (const c of chunks) {
    if (c.rows <= 0) continue;
    rec.dispatch(k, [ids, c.buffer, out], {
      tokens: s.tokens,
      dim: s.dim,
      rowStart: c.rowStart,
      rows: c.rows,
      scale: s.scale,
    }, s.tokens);
  }
}
