/**
 * Tied lm_head + Gemma-2 final softcap + causal-LM cross-entropy, fused over vocab chunks (docs/ARCHITECTURE.md#numerics, #performance:
 * "No full logits"). transformers 4.45 `modeling_gemma2.py` Gemma2ForCausalLM.forward computes
 * `logits = lm_head(h)`, `tanh(logits/30)·30`, then CrossEntropyLoss(ignore_index=−100); here the [N, V]
 * logits exist only one vocab chunk at a time.
 *
 *   Pass 1 (forward, `lmHeadCeForward`), per chunk of ≤ `chunk` vocab rows of the table:
 *     z = h · E_chunkᵀ                       matmul.wgsl, f32 accumulation (f16 table read as f16)
 *     cross_entropy_chunk_lse.wgsl           softcap, online (max, Σexp) per row, pick the target logit
 *   then cross_entropy_finalize.wgsl         lse, per-row token loss, loss = [Σ token loss, count]
 *   Pass 2 (backward, `lmHeadCeBackward`), per chunk:
 *     z = h · E_chunkᵀ                       recomputed (cheaper than keeping [N, V])
 *     cross_entropy_chunk_grad.wgsl          dz = gradScale·(softmax − onehot)·(1 − tanh²(z/c)) in place
 *     dh (+)= dz · E_chunk                   matmul.wgsl (transB), f32 accumulation across chunks
 *
 * Everything is recorded into the caller's Recorder; nothing is read back. The trainer reads the 8 bytes of
 * `loss` (f32 [Σ token loss, target count]) once per optimizer step: run the forward with
 * `accumulateLoss: true` on a buffer cleared at the start of the accumulation window.
 *
 * Targets are the already-shifted labels (row t holds labels[t+1]); a target outside [0, V) (the data
 * pipeline only produces −100) is ignored: token loss 0, dh row 0, not counted.
 *
 * Memory (besides the caller's h, dh, outputs): `crossEntropyScratchBytes(N, chunk)` = N·chunk·4 bytes for
 * the transient chunk logits plus 3·N·4 bytes of row state. gemma-2-2b with N = 4×512 = 2048 rows and
 * chunk 8192: 64 MiB + 24 KiB. Outputs: lse, tokenLoss (and labelLogprob) N·4 bytes each, loss 8 bytes,
 * dh N·dim·4, full logits (optional, small models only) N·V·4.
 */
import lseSource from "../../../kernels/cross_entropy_chunk_lse.wgsl" with { type: "text" };
import gradSource from "../../../kernels/cross_entropy_chunk_grad.wgsl" with { type: "text" };
import finalizeSource from "../../../kernels/cross_entropy_finalize.wgsl" with { type: "text" };
import type { BufferPool } from "../../gpu/buffers.ts";
import type { Gpu } from "../../gpu/device.ts";
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import { matmul } from "../../gpu/ops/matmul.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

const CE_CHUNK_LSE = defineKernel({
  file: "cross_entropy_chunk_lse.wgsl",
  code: lseSource,
  params: { rows: "u32", cols: "u32", v0: "u32", V: "u32", first: "u32", cap: "f32" },
});
const CE_CHUNK_GRAD = defineKernel({
  file: "cross_entropy_chunk_grad.wgsl",
  code: gradSource,
  params: { rows: "u32", cols: "u32", v0: "u32", V: "u32", cap: "f32", scale: "f32" },
});
const CE_FINALIZE = defineKernel({
  file: "cross_entropy_finalize.wgsl",
  code: finalizeSource,
  params: { rows: "u32", V: "u32" },
});

/** Gemma-2 `final_logit_softcapping`. */
export const FINAL_SOFTCAP = 30;
/** Default vocab columns per chunk (a multiple of the 64-wide matmul tile). */
export const DEFAULT_CE_CHUNK = 8192;

/** A contiguous row range [rowStart, rowStart + rows) of the tied embedding table, stored from byte 0. */
export interface TableChunk {
  buffer: GPUBuffer;
  rowStart: number;
  rows: number;
}

export interface LmHeadCeShape {
  /** Rows (tokens = batch × seq). */
  N: number;
  /** Hidden size (2304 for gemma-2-2b). */
  dim: number;
  /** Vocabulary size (256000 for gemma-2-2b); the table pieces must cover [0, V). */
  V: number;
  /** Element type of the table buffers. */
  tableType: "f32" | "f16";
  /** Final logit softcap c (`tanh(z/c)·c`; Gemma-2: 30), or null for none. */
  softcap: number | null;
}

/** Transient buffers of the fused head (see `crossEntropyScratchBytes`). */
export interface CrossEntropyScratch {
  /** [rows, chunk] f32: one chunk of logits, then of d loss / d logits. */
  chunkLogits: GPUBuffer;
  /** [3, rows] f32: running max, running Σexp, target logit. */
  rowState: GPUBuffer;
  /** The largest N this scratch serves. */
  rows: number;
  /** Vocab columns per chunk. */
  chunk: number;
}

export interface LmHeadCeForwardIO {
  /** [N, dim] f32: the final-norm output. */
  h: Binding;
  table: readonly TableChunk[];
  /** [N] i32: shifted targets, −100 = ignored. */
  targets: Binding;
  /** Out [N] f32: logsumexp of each row's capped logits (pass 2 reads it). */
  lse: Binding;
  /** Out [N] f32: lse − logit[target], 0 for ignored rows. */
  tokenLoss: Binding;
  /** Out [2] f32: [Σ token loss, counted rows] (overwritten, or added to with accumulateLoss). */
  loss: Binding;
  /** Optional out [N] f32: log_softmax at the label (0 for ignored rows), like the goldens' label_logprobs. */
  labelLogprob?: Binding;
  /** Optional out [N, V] f32: the full capped logits (small models only: N·V·4 ≤ maxStorageBufferBindingSize). */
  logits?: Binding;
}

export interface LmHeadCeForwardOptions {
  /** Add into loss[0..1] instead of overwriting (accumulation windows, eval splits). */
  accumulateLoss?: boolean;
}

export interface LmHeadCeBackwardIO {
  h: Binding;
  table: readonly TableChunk[];
  targets: Binding;
  /** [N] f32 from lmHeadCeForward (same h, table and targets). */
  lse: Binding;
  /** Out [N, dim] f32: d(gradScale · Σ token loss) / dh. */
  dh: Binding;
}

export interface LmHeadCeBackwardOptions {
  /** Multiplies the gradient, e.g. 1 / target tokens of the accumulation window. */
  gradScale: number;
  /** Add into dh instead of overwriting it. */
  accumulateDh?: boolean;
}

const ELEM_BYTES = { f32: 4, f16: 2 } as const;
const align16 = (n: number) => Math.ceil(n / 16) * 16;

/** Transient bytes of the fused head for N rows and `chunk` vocab columns per chunk. */
export function crossEntropyScratchBytes(N: number, chunk: number): number {
  return align16(N * chunk * 4) + align16(3 * N * 4);
}

/**
 * The chunk width for N rows: DEFAULT_CE_CHUNK (or `preferred`), lowered to a multiple of 64 so that the
 * [N, chunk] f32 chunk fits one storage binding.
 */
export function ceChunkFor(N: number, maxBindingBytes: number, preferred = DEFAULT_CE_CHUNK): number {
  const fit = Math.floor(maxBindingBytes / (4 * Math.max(1, N)));
  if (fit < 1) {
    throw new RangeError(`cross-entropy: ${N} rows do not fit one binding of ${maxBindingBytes} bytes`);
  }
  const c = Math.min(preferred, fit);
  return c >= 64 ? Math.floor(c / 64) * 64 : c;
}

/** Takes the scratch from the engine's pool (plan mode included). Give it back with releaseCrossEntropyScratch. */
export function acquireCrossEntropyScratch(
  pool: BufferPool,
  rows: number,
  chunk: number,
): CrossEntropyScratch {
  return {
    chunkLogits: pool.acquire("ce.chunkLogits", "activations", rows * chunk * 4),
    rowState: pool.acquire("ce.rowState", "activations", 3 * rows * 4),
    rows,
    chunk,
  };
}

export function releaseCrossEntropyScratch(pool: BufferPool, s: CrossEntropyScratch): void {
  pool.release(s.chunkLogits);
  pool.release(s.rowState);
}

function bindingBytes(b: Binding): number {
  if (b instanceof GPUBuffer) return b.size;
  return b.size ?? b.buffer.size - (b.offset ?? 0);
}

/** Checks the shape, the table split and the scratch; returns the vocab chunks in order. */
function plan(
  gpu: Gpu,
  table: readonly TableChunk[],
  scratch: CrossEntropyScratch,
  s: LmHeadCeShape,
): { piece: TableChunk; bytes: number; r0: number; cols: number }[] {
  const { N, dim, V } = s;
  for (const [k, v] of Object.entries({ N, dim, V })) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`cross-entropy: ${k} = ${v} must be a positive integer`);
    }
  }
  if (s.softcap !== null && !(s.softcap > 0)) {
    throw new RangeError(`cross-entropy: softcap ${s.softcap} must be positive or null`);
  }
  if (s.tableType === "f16" && !gpu.f16) throw new Error("cross-entropy: f16 table needs shader-f16");
  if (N > scratch.rows) {
    throw new RangeError(`cross-entropy: N = ${N} exceeds the scratch's ${scratch.rows} rows`);
  }
  const maxBind = gpu.limits.maxStorageBufferBindingSize;
  if (scratch.chunkLogits.size < N * scratch.chunk * 4 || N * scratch.chunk * 4 > maxBind) {
    throw new RangeError(
      `cross-entropy: chunk logits [${N}, ${scratch.chunk}] do not fit the scratch or one binding`,
    );
  }
  if (scratch.rowState.size < 3 * N * 4) throw new RangeError("cross-entropy: rowState scratch too small");
  const eb = ELEM_BYTES[s.tableType];
  const out: { piece: TableChunk; bytes: number; r0: number; cols: number }[] = [];
  let next = 0;
  for (const piece of table) {
    if (piece.rowStart !== next || !Number.isInteger(piece.rows) || piece.rows < 1) {
      throw new RangeError(
        `cross-entropy: table pieces must be contiguous from row 0; got rows ${piece.rowStart}+${piece.rows} ` +
          `where row ${next} was expected`,
      );
    }
    const bytes = Math.ceil((piece.rows * dim * eb) / 4) * 4;
    if (piece.buffer.size < bytes) {
      throw new RangeError(
        `cross-entropy: table piece at row ${piece.rowStart} holds ${piece.buffer.size} < ${bytes} bytes`,
      );
    }
    if (bytes > maxBind) {
      throw new RangeError(
        `cross-entropy: table piece at row ${piece.rowStart} (${bytes} bytes) exceeds maxStorageBufferBindingSize ` +
          `${maxBind}: split the table into more pieces`,
      );
    }
    for (let r0 = 0; r0 < piece.rows; r0 += scratch.chunk) {
      out.push({ piece, bytes, r0, cols: Math.min(scratch.chunk, piece.rows - r0) });
    }
    next += piece.rows;
  }
  if (next !== V) throw new RangeError(`cross-entropy: table pieces cover ${next} rows, V = ${V}`);
  return out;
}

/** z[N, cols] = h · E[piece rows r0 .. r0+cols)ᵀ into the chunk scratch. */
function chunkLogits(
  rec: Recorder,
  h: Binding,
  c: { piece: TableChunk; bytes: number; r0: number; cols: number },
  scratch: CrossEntropyScratch,
  s: LmHeadCeShape,
): void {
  matmul(rec, h, { buffer: c.piece.buffer, offset: 0, size: c.bytes }, scratch.chunkLogits, {
    M: s.N,
    N: c.cols,
    K: s.dim,
    offB: c.r0 * s.dim,
    bType: s.tableType,
  });
}

/**
 * Pass 1: loss, per-row lse and token loss (and optionally full logits and label log-probs). Eval runs only
 * this. Records 2 dispatches per vocab chunk + 1.
 */
export function lmHeadCeForward(
  rec: Recorder,
  io: LmHeadCeForwardIO,
  scratch: CrossEntropyScratch,
  s: LmHeadCeShape,
  opts: LmHeadCeForwardOptions = {},
): void {
  const gpu = rec.gpu;
  const chunks = plan(gpu, io.table, scratch, s);
  if (
    io.logits && s.N * s.V * 4 > Math.min(bindingBytes(io.logits), gpu.limits.maxStorageBufferBindingSize)
  ) {
    throw new RangeError(`cross-entropy: full logits [${s.N}, ${s.V}] do not fit the logits binding`);
  }
  const cap = s.softcap ?? 0;
  const lseKernel = getKernel(gpu, {
    ...CE_CHUNK_LSE,
    entry: io.logits ? "main_logits" : "main",
  });
  const state = { buffer: scratch.rowState, offset: 0, size: 3 * s.N * 4 };
  const z = { buffer: scratch.chunkLogits, offset: 0, size: s.N * scratch.chunk * 4 };
  chunks.forEach((c, i) => {
    chunkLogits(rec, io.h, c, scratch, s);
    const bindings: Binding[] = [z, io.targets, state];
    if (io.logits) bindings.push(io.logits);
    const v0 = c.piece.rowStart + c.r0;
    rec.dispatch(lseKernel, bindings, {
      rows: s.N,
      cols: c.cols,
      v0,
      V: s.V,
      first: i === 0 ? 1 : 0,
      cap,
    }, s.N);
  });
  const fin = getKernel(gpu, {
    ...CE_FINALIZE,
    entry: io.labelLogprob ? "main_logprob" : "main",
    constants: { ACCUMULATE: opts.accumulateLoss ? 1 : 0 },
  });
  const outs: Binding[] = [io.targets, state, io.lse, io.tokenLoss, io.loss];
  if (io.labelLogprob) outs.push(io.labelLogprob);
  rec.dispatch(fin, outs, { rows: s.N, V: s.V }, 1);
}

/**
 * Pass 2: dh = gradScale · Σ_v (softmax − onehot)·(1 − tanh²(z/c))·E[v] for counted rows, 0 for ignored
 * rows. Needs the lse of lmHeadCeForward recorded earlier (same or an earlier submitted Recorder).
 * Records 3 dispatches per vocab chunk.
 */
export function lmHeadCeBackward(
  rec: Recorder,
  io: LmHeadCeBackwardIO,
  scratch: CrossEntropyScratch,
  s: LmHeadCeShape,
  opts: LmHeadCeBackwardOptions,
): void {
  const gpu = rec.gpu;
  const chunks = plan(gpu, io.table, scratch, s);
  if (!Number.isFinite(opts.gradScale)) throw new RangeError(`cross-entropy: gradScale ${opts.gradScale}`);
  const cap = s.softcap ?? 0;
  const gradKernel = getKernel(gpu, { ...CE_CHUNK_GRAD });
  chunks.forEach((c, i) => {
    chunkLogits(rec, io.h, c, scratch, s);
    const v0 = c.piece.rowStart + c.r0;
    const z = { buffer: scratch.chunkLogits, offset: 0, size: s.N * c.cols * 4 };
    rec.dispatch(
      gradKernel,
      [z, io.targets, io.lse],
      { rows: s.N, cols: c.cols, v0, V: s.V, cap, scale: opts.gradScale },
      Math.ceil((s.N * c.cols) / 256),
    );
    // dh[N, dim] (+)= dz[N, cols] · E[cols, dim]: B stored K×N (transB), f32 accumulation in C.
    matmul(rec, z, { buffer: c.piece.buffer, offset: 0, size: c.bytes }, io.dh, {
      M: s.N,
      N: s.dim,
      K: c.cols,
      transB: true,
      ldb: s.dim,
      offB: c.r0 * s.dim,
      bType: s.tableType,
      beta: i === 0 && !opts.accumulateDh ? 0 : 1,
    });
  });
}

/** A training step's head: pass 1 then pass 2 into the same Recorder. */
export function lmHeadCrossEntropy(
  rec: Recorder,
  io: LmHeadCeForwardIO & { dh: Binding },
  scratch: CrossEntropyScratch,
  s: LmHeadCeShape,
  opts: LmHeadCeForwardOptions & LmHeadCeBackwardOptions,
): void {
  lmHeadCeForward(rec, io, scratch, s, opts);
  lmHeadCeBackward(rec, io, scratch, s, opts);
}
