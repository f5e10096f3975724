/**
 * What every kernel case family of `maieutic bench` (src/bench/kernels.ts kernelCases) is built from: the
 * case record, the options, and the shared context (the model's widths, the filler, and the activations
 * every family reads and writes).
 */
import { createBuffer } from "../../gpu/buffers.ts";
import type { Gpu } from "../../gpu/device.ts";
import type { Gemma2Config } from "../../config/gemma2.ts";
import type { Filler } from "../filler.ts";
import type { RecordFn } from "../timing.ts";

export interface KernelCase {
  name: string;
  family: string;
  shape: string;
  flop: number;
  bytes: number;
  /** How the FLOP count was made when it is not a matmul count. */
  flopNote?: string;
  /** Its kernels use subgroup operations where the device has them (compared in src/bench/subgroups.ts). */
  subgroups?: boolean;
  record: RecordFn;
}

export interface KernelBenchOptions {
  config: Gemma2Config;
  /** Sequences × positions of the benchmarked activations. */
  batch: number;
  seq: number;
  r: number;
  loraDropout: number;
  compute: "f16" | "f32";
  /** Vocab rows of the lm_head + cross-entropy slice (default min(V, 4096)). */
  ceVocab?: number;
  /** LoRA arena elements for the optimizer case (default: the config's q/k/v/o arena at rank r). */
  optimizerElems?: number;
  minMs?: number;
  /** Only the cases whose name contains one of these (tests, --kernels). */
  only?: string[];
}

/** The shared context of the case families. */
export interface CaseContext {
  gpu: Gpu;
  o: KernelBenchOptions;
  fill: Filler;
  /** Tokens (batch × seq). */
  N: number;
  /** hidden, intermediate, q (Hq·D) and kv (Hkv·D) widths; `wide` the largest of H, I, QD. */
  H: number;
  I: number;
  QD: number;
  KVD: number;
  wide: number;
  /** Random activations [N, wide] in f32 and f16 (every case's input and upstream gradient). */
  x32: GPUBuffer;
  x16: GPUBuffer;
  /** Outputs [N, wide] f32: y (forwards) and dx (input gradients). */
  y: GPUBuffer;
  dx: GPUBuffer;
}

/** The context for one model's shapes; fills x32 and x16 first (their seeds come first). */
export function caseContext(gpu: Gpu, o: KernelBenchOptions, fill: Filler): CaseContext {
  const c = o.config;
  const H = c.hidden_size, I = c.intermediate_size;
  const QD = c.num_attention_heads * c.head_dim, KVD = c.num_key_value_heads * c.head_dim;
  const N = o.batch * o.seq;
  const wide = Math.max(H, I, QD);
  return {
    gpu,
    o,
    fill,
    N,
    H,
    I,
    QD,
    KVD,
    wide,
    x32: fill.f32("x32", N * wide),
    x16: fill.f16("x16", N * wide),
    y: createBuffer(gpu, "y", N * wide * 4),
    dx: createBuffer(gpu, "dx", N * wide * 4),
  };
}
