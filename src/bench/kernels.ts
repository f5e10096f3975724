/**
 * Per-kernel throughput for `maieutic bench` on one model's shapes (tokens = batch × seq): every kernel family
 * the training step runs (dense matmul NT/NN/TN in f32 and f16, NF4 matmul and its dx, LoRA forward and
 * backward, the QLoRA projection as the engine records it, tiled attention forward and backward, the fused
 * lm_head + cross-entropy over a vocab slice, RMSNorm, RoPE, GEGLU, clip + AdamW), each timed alone
 * (src/bench/timing.ts) and reported as GFLOP/s and GB/s.
 *
 * FLOP counts are the useful multiply-adds × 2 (the ops' own flops helpers where they exist); elementwise
 * kernels get a nominal per-element count (stated next to each). Bytes are the compulsory traffic: every input
 * read once and every output written once (what a perfect kernel would move), so GB/s / copy ceiling says how
 * close a kernel is to being memory bound.
 *
 * The kernel cases use the engine's choice of kernels (src/gpu/ops/matmul.ts kernelVariant: by adapter, or
 * MAIEUTIC_KERNELS=tiled|regblock), plus decode-sized cases (1 token: the small-M paths).
 *
 * Also the kernel ladder (naive → tiled → fused) on one projection shape, the tiled family forced: a naive
 * one-thread-per-output matmul (kernels/bench/bench_matmul_naive.wgsl), the tiled kernels/matmul.wgsl in f32, the
 * first register-blocked prototype (kernels/bench/bench_matmul_regblock.wgsl), the tiled kernel with an f16 weight,
 * dequantize the NF4 weight to f16 then the tiled matmul (kernels/bench/bench_nf4_dequant.wgsl + matmul.wgsl, the
 * path docs/ARCHITECTURE.md#performance rules out), and the fused NF4 kernel (kernels/nf4_matmul.wgsl); then the register-blocked
 * family on the same shape (kernels/matmul_regblock.wgsl in f32 and with an f16 weight,
 * kernels/nf4_matmul_regblock.wgsl).
 */
import { idle } from "../gpu/readback.ts";
import naiveSource from "../../kernels/bench/bench_matmul_naive.wgsl" with { type: "text" };
import dequantSource from "../../kernels/bench/bench_nf4_dequant.wgsl" with { type: "text" };
import regblockSource from "../../kernels/bench/bench_matmul_regblock.wgsl" with { type: "text" };
import { createBuffer, upload } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { defineKernel, getKernel } from "../gpu/kernel.ts";
import { type FillMode, fillRandom } from "../model/ops/fill_random.ts";
import { type Elem, matmul, matmulFlops, type MatmulShape } from "../gpu/ops/matmul.ts";
import { type Binding, Recorder } from "../gpu/recorder.ts";
import type { Gemma2Config } from "../config/gemma2.ts";
import {
  attentionBackward,
  attentionFlops,
  attentionForward,
  type AttentionShape,
} from "../model/ops/attention.ts";
import {
  ceChunkFor,
  type CrossEntropyScratch,
  lmHeadCeBackward,
  lmHeadCeForward,
} from "../model/ops/cross_entropy.ts";
import { geglu, gegluBackward } from "../model/ops/geglu.ts";
import {
  linearBackward,
  linearFlops,
  linearForward,
  type LoraBranch,
  nf4Bytes,
  nf4Tables,
  type Nf4Weight,
  recordLoraDown,
  recordLoraGrad,
} from "../model/ops/linear.ts";
import { rmsnorm, rmsnormBackward } from "../model/ops/rmsnorm.ts";
import { rope } from "../model/ops/rope.ts";
import { ropeInvFreq } from "../model/ops/rope.ts";
import { type OptimizerBuffers, recordAdamW, recordClip } from "../train/optimizer.ts";
import { NORM_PARTIALS } from "../train/optimizer.ts";
import { loraLayout } from "../lora/params.ts";
import type { Ceilings } from "./ceilings.ts";
import type { Clock, GpuTimer, RecordFn, Timing } from "./timing.ts";

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

export interface KernelResult {
  name: string;
  family: string;
  shape: string;
  ms: number;
  reps: number;
  flop: number;
  bytes: number;
  gflops: number;
  gbps: number;
  /** gflops / FMA-loop ceiling. */
  frac_fma: number;
  /** gbps / streaming-copy ceiling. */
  frac_copy: number;
  /** The clock of `ms` (src/bench/timing.ts). */
  clock: Clock;
  flop_note?: string;
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

/** Fills buffers with deterministic pseudo-random values on the GPU (kernels/fill_random.wgsl). */
class Filler {
  private rec: Recorder;
  private seed = 99;
  constructor(readonly gpu: Gpu) {
    this.rec = new Recorder(gpu, { label: "bench-fill" });
  }
  fill(buf: GPUBuffer, words: number, mode: FillMode, lo = -1, hi = 1): GPUBuffer {
    fillRandom(this.rec, buf, { words, mode, lo, hi, seed: this.seed++ });
    return buf;
  }
  f32(label: string, n: number, lo = -1, hi = 1): GPUBuffer {
    return this.fill(createBuffer(this.gpu, label, n * 4), n, "f32", lo, hi);
  }
  f16(label: string, n: number, lo = -1, hi = 1): GPUBuffer {
    const words = Math.ceil(n / 2);
    return this.fill(createBuffer(this.gpu, label, words * 4), words, "f16", lo, hi);
  }
  nf4(label: string, out: number, inF: number): Nf4Weight {
    const b = nf4Bytes(out * inF);
    const scale = 0.01 / Math.sqrt(inF / 64);
    return {
      kind: "nf4",
      shape: [out, inF],
      packed: this.fill(createBuffer(this.gpu, `${label}.packed`, b.packed), b.packed / 4, "bits"),
      qabsmax: this.fill(createBuffer(this.gpu, `${label}.qabsmax`, b.qabsmax), b.qabsmax / 4, "bits"),
      absmax2: this.fill(
        createBuffer(this.gpu, `${label}.absmax2`, b.absmax2),
        b.absmax2 / 4,
        "f32",
        scale,
        scale,
      ),
      offset: 2 * scale,
    };
  }
  async done(): Promise<void> {
    this.rec.submit();
    await idle(this.gpu);
    this.rec = new Recorder(this.gpu, { label: "bench-fill" });
  }
}

/** Shapes of the benchmarked projections: q_proj (LoRA target) and gate_proj (the largest). */
function dims(c: Gemma2Config) {
  return {
    H: c.hidden_size,
    I: c.intermediate_size,
    QD: c.num_attention_heads * c.head_dim,
    KVD: c.num_key_value_heads * c.head_dim,
  };
}

function result(c: KernelCase, t: Timing, ceil: Ceilings): KernelResult {
  const gflops = c.flop / (t.ms * 1e6);
  const gbps = c.bytes / (t.ms * 1e6);
  return {
    name: c.name,
    family: c.family,
    shape: c.shape,
    ms: t.ms,
    reps: t.reps,
    flop: c.flop,
    bytes: c.bytes,
    gflops,
    gbps,
    frac_fma: gflops / ceil.fma_gflops,
    frac_copy: gbps / ceil.copy_gbps,
    clock: t.clock,
    ...(c.flopNote ? { flop_note: c.flopNote } : {}),
  };
}

/** Builds the cases (and their buffers) for one model's shapes. */
export async function kernelCases(gpu: Gpu, o: KernelBenchOptions): Promise<KernelCase[]> {
  const c = o.config;
  const { H, I, QD, KVD } = dims(c);
  const N = o.batch * o.seq;
  const r = o.r;
  const fill = new Filler(gpu);
  const cases: KernelCase[] = [];
  const wide = Math.max(H, I, QD);

  // ---- dense matmul (the lm_head's kernel; dense projections when load_in_4bit is false) ----
  const x32 = fill.f32("x32", N * wide);
  const x16 = fill.f16("x16", N * wide);
  const w32 = fill.f32("w32", QD * H, -0.05, 0.05);
  const w16 = fill.f16("w16", QD * H, -0.05, 0.05);
  const y = createBuffer(gpu, "y", N * wide * 4);
  const big = createBuffer(gpu, "c.big", QD * H * 4);
  const layouts: [string, string, Omit<MatmulShape, "aType" | "bType">, GPUBuffer][] = [
    // x·Wᵀ: forward of a projection (W [out, in]).
    ["NT", `C[${N},${QD}] = A[${N},${H}]·B[${QD},${H}]ᵀ`, { M: N, N: QD, K: H }, y],
    // dy·W: input gradient (W stored K×N).
    ["NN", `C[${N},${H}] = A[${N},${QD}]·B[${QD},${H}]`, { M: N, N: H, K: QD, transB: true }, y],
    // dyᵀ·x: weight gradient (both stored with tokens as rows).
    [
      "TN",
      `C[${QD},${H}] = A[${N},${QD}]ᵀ·B[${N},${H}]`,
      { M: QD, N: H, K: N, transA: true, transB: true },
      big,
    ],
  ];
  // f16 operands only where the device has shader-f16 (not on GL adapters, nor with MAIEUTIC_F16=0).
  const elems: Elem[] = gpu.f16 ? ["f32", "f16"] : ["f32"];
  for (const t of elems) {
    for (const [tag, shape, s, C] of layouts) {
      const A = t === "f32" ? x32 : x16;
      const B = tag === "TN" ? A : t === "f32" ? w32 : w16;
      const eb = t === "f32" ? 4 : 2;
      const full = { ...s, aType: t, bType: t };
      cases.push({
        name: `matmul ${tag} ${t}`,
        family: "matmul",
        shape,
        flop: matmulFlops(full),
        bytes: (s.M * s.K + s.N * s.K) * eb + s.M * s.N * 4,
        // Register-blocked kernels share A's rows through the subgroup; two layouts are compared.
        subgroups: (tag === "NT" && t === "f32") || (tag === "NN" && t === "f16"),
        record: (rec) => matmul(rec, A, B, C, full),
      });
    }
  }

  // ---- NF4 projections (frozen base weight) and the LoRA branch ----
  const wq = fill.nf4("q_proj", QD, H);
  const wg = fill.nf4("gate_proj", I, H);
  const nf4W = (out: number, inF: number) => {
    const b = nf4Bytes(out * inF);
    return b.packed + b.qabsmax + b.absmax2;
  };
  const loraA = fill.f32("lora.A", r * H, -0.02, 0.02);
  const loraB = fill.f32("lora.B", QD * r, -0.02, 0.02);
  const u = fill.f32("lora.u", N * r);
  const du = createBuffer(gpu, "lora.du", N * r * 4);
  const dA = createBuffer(gpu, "lora.dA", r * H * 4);
  const dB = createBuffer(gpu, "lora.dB", QD * r * 4);
  const dropout = o.loraDropout > 0 ? { p: o.loraDropout, seed: 0, step: 1, stream: 0 } : null;
  const branch: LoraBranch = { A: loraA, B: loraB, r, scaling: 2, dropout };
  const dx = createBuffer(gpu, "dx", N * wide * 4);
  const proj = (name: string, w: Nf4Weight, inF: number, outF: number) => ({
    name,
    w,
    inF,
    outF,
    s: { tokens: N, inF, outF, compute: o.compute },
  });
  const pq = proj("q_proj", wq, H, QD);
  const pg = proj("gate_proj", wg, H, I);
  for (const p of [pq, pg]) {
    cases.push({
      name: `nf4 matmul ${p.name}`,
      family: "nf4",
      shape: `y[${N},${p.outF}] = x[${N},${p.inF}]·W_nf4[${p.outF},${p.inF}]ᵀ, ${o.compute} operands`,
      flop: linearFlops(p.s),
      bytes: N * p.inF * 4 + nf4W(p.outF, p.inF) + N * p.outF * 4,
      subgroups: p === pq,
      record: (rec) => linearForward(rec, { x: x32, weight: p.w, y }, p.s),
    });
  }
  for (const p of [pq, pg]) {
    cases.push({
      name: `nf4 dx ${p.name}`,
      family: "nf4",
      shape: `dx[${N},${p.inF}] = dy[${N},${p.outF}]·W_nf4[${p.outF},${p.inF}], ${o.compute} operands`,
      flop: linearFlops(p.s),
      bytes: N * p.outF * 4 + nf4W(p.outF, p.inF) + N * p.inF * 4,
      subgroups: p === pq,
      record: (rec) => linearBackward(rec, { dy: x32, x: x32, weight: p.w, dx }, p.s),
    });
  }
  // Decode: one token (Decoder.step runs the projections with tokens = rows = 1, and the head on one row).
  const p1 = { ...pq.s, tokens: 1 };
  cases.push({
    name: "nf4 matmul q_proj 1 tok",
    family: "nf4",
    shape: `y[1,${QD}] = x[1,${H}]·W_nf4[${QD},${H}]ᵀ (decode), ${o.compute} operands`,
    flop: linearFlops(p1),
    bytes: H * 4 + nf4W(QD, H) + QD * 4,
    subgroups: true,
    record: (rec) => linearForward(rec, { x: x32, weight: wq, y }, p1),
  });
  const g1 = { ...pg.s, tokens: 1 };
  cases.push({
    name: "nf4 matmul gate 1 tok",
    family: "nf4",
    shape: `y[1,${I}] = x[1,${H}]·W_nf4[${I},${H}]ᵀ (decode), ${o.compute} operands`,
    flop: linearFlops(g1),
    bytes: H * 4 + nf4W(I, H) + I * 4,
    record: (rec) => linearForward(rec, { x: x32, weight: wg, y }, g1),
  });
  // The GPU family's small-M kernels (nf4_matvec.wgsl, matvec.wgsl: partial dot products added by
  // wg_sum_n), forced: software adapters choose register blocks for decode.
  cases.push({
    name: "nf4 matvec q_proj 1 tok (tiled family)",
    family: "nf4",
    shape: `y[1,${QD}] = x[1,${H}]·W_nf4[${QD},${H}]ᵀ (decode), ${o.compute} operands, nf4_matvec.wgsl`,
    flop: linearFlops(p1),
    bytes: H * 4 + nf4W(QD, H) + QD * 4,
    subgroups: true,
    record: (rec) => linearForward(rec, { x: x32, weight: wq, y }, { ...p1, kernels: "tiled" }),
  });
  if (gpu.f16) {
    cases.push({
      name: "matvec NT f16 1 row (tiled family)",
      family: "matmul",
      shape: `C[1,${QD}] = A[1,${H}]·B[${QD},${H}]ᵀ, f16 B, matvec.wgsl`,
      flop: 2 * QD * H,
      bytes: H * 2 + QD * H * 2 + QD * 4,
      subgroups: true,
      record: (rec) =>
        matmul(rec, x16, w16, y, { M: 1, N: QD, K: H, aType: "f16", bType: "f16", kernels: "tiled" }),
    });
    cases.push({
      name: "matmul NT f16 1 row",
      family: "matmul",
      shape: `C[1,${QD}] = A[1,${H}]·B[${QD},${H}]ᵀ, f16 B (decode: the head's product per vocab chunk)`,
      flop: 2 * QD * H,
      bytes: H * 2 + QD * H * 2 + QD * 4,
      subgroups: true,
      record: (rec) => matmul(rec, x16, w16, y, { M: 1, N: QD, K: H, aType: "f16", bType: "f16" }),
    });
  }
  cases.push({
    name: "lora fwd q_proj",
    family: "lora",
    shape: `u[${N},${r}] = dropout(x)[${N},${H}]·A[${r},${H}]ᵀ`,
    flop: 2 * N * r * H,
    bytes: (N * H + r * H + N * r) * 4,
    record: (rec) =>
      recordLoraDown(rec, x32, loraA, u, {
        M: N,
        R: r,
        K: H,
        ldx: H,
        offX: 0,
        transL: false,
        alpha: 1,
        dropout,
      }),
  });
  cases.push({
    name: "lora bwd q_proj",
    family: "lora",
    shape: `du = s·dy·B, dB += s·dyᵀ·u, dA += duᵀ·dropout(x); r ${r}, in ${H}, out ${QD}`,
    flop: 2 * N * r * (2 * QD + H),
    bytes: (2 * N * QD + N * H + 3 * N * r + 2 * (QD * r + r * H)) * 4,
    record: (rec) => {
      recordLoraDown(rec, x32, loraB, du, { M: N, R: r, K: QD, ldx: QD, offX: 0, transL: true, alpha: 2 });
      recordLoraGrad(rec, u, x32, dB, {
        M: N,
        R: r,
        C: QD,
        ldx: QD,
        offX: 0,
        alpha: 2,
        accumulate: true,
        transOut: true,
      });
      recordLoraGrad(rec, du, x32, dA, {
        M: N,
        R: r,
        C: H,
        ldx: H,
        offX: 0,
        alpha: 1,
        accumulate: true,
        transOut: false,
        dropout,
      });
    },
  });
  cases.push({
    name: "qlora fwd q_proj",
    family: "qlora",
    shape: `NF4 + LoRA r${r} as the engine records it (lora_down, then nf4_matmul with LoRA slabs)`,
    flop: linearFlops(pq.s, r),
    bytes: N * H * 4 + nf4W(QD, H) + N * QD * 4 + (r * H + QD * r + N * r) * 4,
    record: (rec) => linearForward(rec, { x: x32, weight: wq, lora: branch, y, u }, pq.s),
  });
  cases.push({
    name: "qlora bwd q_proj",
    family: "qlora",
    shape: `du, dB, dA, then nf4_matmul_dx with LoRA slabs; r ${r}`,
    flop: linearFlops(pq.s) + 2 * N * r * (2 * QD + 2 * H),
    bytes: N * QD * 4 + N * H * 4 + nf4W(QD, H) + N * H * 4 + (3 * N * r + 2 * (QD * r + r * H)) * 4,
    record: (rec) =>
      linearBackward(rec, {
        dy: x32,
        x: x32,
        weight: wq,
        lora: branch,
        u,
        du,
        grads: { dA, dB, accumulate: true },
        dx,
      }, pq.s),
  });

  // ---- attention (a global layer; sliding layers equal it while T ≤ window) ----
  const as: AttentionShape = {
    B: o.batch,
    T: o.seq,
    Hq: c.num_attention_heads,
    Hkv: c.num_key_value_heads,
    D: c.head_dim,
    scale: c.query_pre_attn_scalar ** -0.5,
    softcap: c.attn_logit_softcapping ?? null,
    window: null,
  };
  const q = fill.f32("att.q", N * QD);
  const k = fill.f32("att.k", N * KVD);
  const v = fill.f32("att.v", N * KVD);
  const ao = createBuffer(gpu, "att.o", N * QD * 4);
  const lse = createBuffer(gpu, "att.lse", N * c.num_attention_heads * 4);
  const dq = createBuffer(gpu, "att.dq", N * QD * 4);
  const dk = createBuffer(gpu, "att.dk", N * KVD * 4);
  const dv = createBuffer(gpu, "att.dv", N * KVD * 4);
  const scratch = createBuffer(gpu, "att.scratch", 2 * N * c.num_attention_heads * 4);
  const mask = upload(gpu, "att.mask", new Uint32Array(N).fill(1));
  const attShape = `B ${o.batch}, T ${o.seq}, Hq ${as.Hq}, Hkv ${as.Hkv}, D ${as.D}, causal, softcap`;
  cases.push({
    name: "attention fwd",
    family: "attention",
    shape: attShape,
    flop: attentionFlops(as, "fwd"),
    bytes: (2 * N * QD + 2 * N * KVD + N * as.Hq) * 4,
    record: (rec) => attentionForward(rec, q, k, v, ao, lse, mask, as),
  });
  cases.push({
    name: "attention bwd",
    family: "attention",
    shape: attShape,
    flop: attentionFlops(as, "bwd"),
    bytes: (5 * N * QD + 4 * N * KVD + N * as.Hq) * 4,
    record: (rec) => attentionBackward(rec, x32, q, k, v, ao, lse, mask, dq, dk, dv, as, scratch),
  });

  // ---- fused lm_head + softcap + cross-entropy over a vocab slice ----
  const tableType = o.compute;
  // One table piece, so at most one binding of rows.
  const fitRows = Math.floor(
    (gpu.limits.maxStorageBufferBindingSize - 16) / (H * (tableType === "f16" ? 2 : 4)),
  );
  const Vs = Math.min(c.vocab_size, o.ceVocab ?? 4096, fitRows);
  const table = tableType === "f16"
    ? fill.f16("ce.table", Vs * H, -0.05, 0.05)
    : fill.f32("ce.table", Vs * H, -0.05, 0.05);
  const chunk = ceChunkFor(N, gpu.limits.maxStorageBufferBindingSize);
  const ce: CrossEntropyScratch = {
    chunkLogits: createBuffer(gpu, "ce.chunk", N * chunk * 4),
    rowState: createBuffer(gpu, "ce.rowState", 3 * N * 4),
    rows: N,
    chunk,
  };
  const targets = upload(gpu, "ce.targets", Int32Array.from({ length: N }, (_, i) => (i * 7919) % Vs));
  const ceLse = createBuffer(gpu, "ce.lse", N * 4);
  const tokenLoss = createBuffer(gpu, "ce.tokenLoss", N * 4);
  const loss = createBuffer(gpu, "ce.loss", 16);
  const dh = createBuffer(gpu, "ce.dh", N * H * 4);
  const ceS = { N, dim: H, V: Vs, tableType, softcap: c.final_logit_softcapping ?? null };
  const pieces = [{ buffer: table, rowStart: 0, rows: Vs }];
  const tb = Vs * H * (tableType === "f16" ? 2 : 4);
  const ceShape =
    `h[${N},${H}]·E[${Vs},${H}]ᵀ (vocab slice of ${c.vocab_size}), chunks of ${chunk}, ${tableType} table`;
  cases.push({
    name: "cross_entropy fwd",
    family: "cross_entropy",
    shape: ceShape,
    flop: 2 * N * Vs * H,
    bytes: N * H * 4 + tb + 3 * N * 4,
    record: (rec) =>
      lmHeadCeForward(rec, { h: x32, table: pieces, targets, lse: ceLse, tokenLoss, loss }, ce, ceS),
  });
  cases.push({
    name: "cross_entropy bwd",
    family: "cross_entropy",
    shape: ceShape + " (logits recomputed, then dh)",
    flop: 4 * N * Vs * H,
    bytes: N * H * 4 + tb + 2 * N * 4 + N * H * 4,
    record: (rec) =>
      lmHeadCeBackward(rec, { h: x32, table: pieces, targets, lse: ceLse, dh }, ce, ceS, {
        gradScale: 1 / N,
      }),
  });

  // ---- elementwise / row kernels ----
  const normW = fill.f32("norm.w", H, -0.1, 0.1);
  const rstd = createBuffer(gpu, "norm.rstd", N * 4);
  const nH = N * H;
  cases.push({
    name: "rmsnorm fwd",
    family: "rmsnorm",
    shape: `[${N},${H}]`,
    flop: 4 * nH,
    flopNote: "nominal 4 FLOP per element",
    subgroups: true,
    bytes: 2 * nH * 4 + H * 4 + N * 4,
    record: (rec) => rmsnorm(rec, x32, normW, y, rstd, { rows: N, dim: H, eps: 1e-6 }),
  });
  cases.push({
    name: "rmsnorm bwd",
    family: "rmsnorm",
    shape: `[${N},${H}]`,
    flop: 8 * nH,
    flopNote: "nominal 8 FLOP per element",
    subgroups: true,
    bytes: 3 * nH * 4 + H * 4 + N * 4,
    record: (rec) => rmsnormBackward(rec, x32, y, normW, rstd, dx, { rows: N, dim: H }),
  });
  const invFreq = upload(gpu, "rope.invFreq", ropeInvFreq(c.head_dim, c.rope_theta));
  const rq = fill.f32("rope.q", N * QD);
  cases.push({
    name: "rope fwd",
    family: "rope",
    shape: `q [${N},${c.num_attention_heads},${c.head_dim}] in place`,
    flop: 3 * N * QD,
    flopNote: "nominal 6 FLOP per rotated pair",
    bytes: 2 * N * QD * 4,
    record: (rec) =>
      rope(rec, rq, invFreq, { B: o.batch, T: o.seq, H: c.num_attention_heads, D: c.head_dim }),
  });
  const gate = fill.f32("geglu.gate", N * I, -3, 3);
  const up = fill.f32("geglu.up", N * I);
  const hm = createBuffer(gpu, "geglu.h", N * I * 4);
  const dgate = createBuffer(gpu, "geglu.dgate", N * I * 4);
  const dup = createBuffer(gpu, "geglu.dup", N * I * 4);
  const nI = N * I;
  cases.push({
    name: "geglu fwd",
    family: "geglu",
    shape: `[${N},${I}]`,
    flop: 10 * nI,
    flopNote: "nominal 10 FLOP per element (tanh counted once)",
    bytes: 3 * nI * 4,
    record: (rec) => geglu(rec, gate, up, hm, { rows: N, cols: I }),
  });
  cases.push({
    name: "geglu bwd",
    family: "geglu",
    shape: `[${N},${I}]`,
    flop: 18 * nI,
    flopNote: "nominal 18 FLOP per element",
    bytes: 5 * nI * 4,
    record: (rec) => gegluBackward(rec, hm, gate, up, dgate, dup, { rows: N, cols: I }),
  });

  // ---- optimizer over the LoRA arena ----
  const n = o.optimizerElems ?? loraLayout(c, r, ["q_proj", "k_proj", "v_proj", "o_proj"]).total;
  const opt: OptimizerBuffers = {
    n,
    param: fill.f32("opt.param", n, -0.01, 0.01),
    grad: fill.f32("opt.grad", n, -1e-3, 1e-3),
    m: createBuffer(gpu, "opt.m", n * 4),
    v: createBuffer(gpu, "opt.v", n * 4),
    stats: createBuffer(gpu, "opt.stats", 16),
    partials: createBuffer(gpu, "opt.partials", NORM_PARTIALS * 4),
  };
  const hyper = { lr: 8e-5, weightDecay: 0.06, beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 };
  cases.push({
    name: "clip + adamw",
    family: "optimizer",
    shape: `${n} LoRA parameters (grad norm, clip, AdamW)`,
    flop: 16 * n,
    flopNote: "nominal 16 FLOP per parameter",
    subgroups: true,
    bytes: 8 * n * 4,
    record: (rec) => {
      recordClip(rec, opt, hyper.maxGradNorm);
      recordAdamW(rec, opt, hyper, 1);
    },
  });

  await fill.done();
  const only = o.only;
  return only?.length ? cases.filter((x) => only.some((s) => x.name.includes(s))) : cases;
}

/** Times every case alone. */
export async function benchKernels(
  gpu: Gpu,
  timer: GpuTimer,
  ceil: Ceilings,
  o: KernelBenchOptions,
  onResult?: (r: KernelResult) => void,
): Promise<{ results: KernelResult[]; cases: KernelCase[] }> {
  const cases = await kernelCases(gpu, o);
  const results: KernelResult[] = [];
  for (const c of cases) {
    const t = await timer.time(c.record, { minMs: o.minMs ?? 150, acceptPilotMs: 400, label: c.name });
    const r = result(c, t, ceil);
    results.push(r);
    onResult?.(r);
  }
  return { results, cases };
}

// ---- the ladder ----

const MNK = { M: "u32", N: "u32", K: "u32" } as const;
const BENCH_MATMUL_NAIVE = defineKernel({
  file: "bench/bench_matmul_naive.wgsl",
  code: naiveSource,
  params: MNK,
});
const BENCH_MATMUL_REGBLOCK = defineKernel({
  file: "bench/bench_matmul_regblock.wgsl",
  code: regblockSource,
  params: MNK,
});
const BENCH_NF4_DEQUANT = defineKernel({
  file: "bench/bench_nf4_dequant.wgsl",
  code: dequantSource,
  params: { words: "u32", offset: "f32", zero: "u32" },
});

/** C[M, N] = A[M, K]·B[N, K]ᵀ in f32 with kernels/bench/bench_matmul_naive.wgsl (one invocation per output). */
export function recordNaiveMatmul(
  rec: Recorder,
  A: Binding,
  B: Binding,
  C: Binding,
  s: { M: number; N: number; K: number },
): void {
  const k = getKernel(rec.gpu, BENCH_MATMUL_NAIVE);
  rec.dispatch(k, [A, B, C], { M: s.M, N: s.N, K: s.K }, [Math.ceil(s.N / 16), Math.ceil(s.M / 16)]);
}

/**
 * C[M, N] = A[M, K]·B[N, K]ᵀ in f32 with kernels/bench/bench_matmul_regblock.wgsl (4×4 register blocks, no workgroup
 * memory; K % 4 == 0 and A, B bound whole from offset 0).
 */
export function recordRegblockMatmul(
  rec: Recorder,
  A: Binding,
  B: Binding,
  C: Binding,
  s: { M: number; N: number; K: number },
): void {
  if (s.K % 4) throw new RangeError(`bench_matmul_regblock: K = ${s.K} is not a multiple of 4`);
  const k = getKernel(rec.gpu, BENCH_MATMUL_REGBLOCK);
  rec.dispatch(k, [A, B, C], { M: s.M, N: s.N, K: s.K }, [Math.ceil(s.N / 32), Math.ceil(s.M / 32)]);
}

/** out = the NF4 weight dequantized to f16, row-major [out, in], with kernels/bench/bench_nf4_dequant.wgsl. */
export function recordNf4Dequant(rec: Recorder, w: Nf4Weight, out: Binding): void {
  const words = Math.ceil((w.shape[0] * w.shape[1]) / 8);
  const k = getKernel(rec.gpu, { ...BENCH_NF4_DEQUANT, constants: { WG: 256 } });
  rec.dispatch(
    k,
    [w.packed, w.qabsmax, w.absmax2, nf4Tables(rec.gpu), out],
    { words, offset: w.offset, zero: 0 },
    Math.ceil(words / 256),
  );
}

export interface LadderRung {
  name: string;
  kernel: string;
  ms: number;
  gflops: number;
  /** Speed-up over the naive rung. */
  speedup: number;
  /** Extra device memory the rung needs beyond x, y and the stored weight. */
  extra_bytes: number;
  /** A benchmark-only kernel the engine does not use (left out of the step-efficiency target). */
  prototype: boolean;
  /** The clock of `ms` (src/bench/timing.ts). */
  clock: Clock;
}

export interface Ladder {
  shape: string;
  flop: number;
  rungs: LadderRung[];
  /** The register-blocked engine kernels on the same shape (f32, f16 weight, fused NF4). */
  regblock?: LadderRung[];
}

/**
 * One projection shape (tokens × out × in) computed five (six with the prototype) ways with the tiled kernels
 * forced, then three more with the register-blocked family (`regblock`). The dequantize-then-matmul rung includes the
 * dequantize dispatch in its time (it runs every step: the full weight cannot be kept, docs/ARCHITECTURE.md#performance).
 */
export async function benchLadder(
  gpu: Gpu,
  timer: GpuTimer,
  o: { M: number; N: number; K: number; compute: "f16" | "f32"; minMs?: number },
): Promise<Ladder> {
  const { M, N, K } = o;
  const fill = new Filler(gpu);
  const x = fill.f32("ladder.x", M * K);
  const w32 = fill.f32("ladder.w32", N * K, -0.05, 0.05);
  const w16 = fill.f16("ladder.w16", N * K, -0.05, 0.05);
  const wq = fill.nf4("ladder.nf4", N, K);
  const deq = createBuffer(gpu, "ladder.dequant", N * K * 2);
  const y = createBuffer(gpu, "ladder.y", M * N * 4);
  await fill.done();
  const flop = 2 * M * N * K;
  type Rung = { name: string; kernel: string; extra: number; prototype?: boolean; fn: RecordFn };
  const rungs: Rung[] = [
    {
      name: "naive f32",
      kernel: "bench_matmul_naive.wgsl",
      extra: 0,
      fn: (rec) => recordNaiveMatmul(rec, x, w32, y, { M, N, K }),
    },
    {
      name: "tiled f32",
      kernel: "matmul.wgsl",
      extra: 0,
      fn: (rec) => matmul(rec, x, w32, y, { M, N, K, kernels: "tiled" }),
    },
    ...(K % 4 === 0
      ? [{
        name: "register-blocked f32, no workgroup memory (prototype)",
        kernel: "bench_matmul_regblock.wgsl",
        extra: 0,
        prototype: true,
        fn: (rec: Recorder) => recordRegblockMatmul(rec, x, w32, y, { M, N, K }),
      }]
      : []),
    ...(!gpu.f16 ? [] : [
      <Rung> {
        name: "tiled, f16 weight",
        kernel: "matmul.wgsl (B f16)",
        extra: 0,
        fn: (rec) => matmul(rec, x, w16, y, { M, N, K, bType: "f16", kernels: "tiled" }),
      },
    ]),
    ...(!gpu.f16 ? [] : [
      <Rung> {
        name: "dequantize NF4 to f16, then tiled",
        kernel: "bench_nf4_dequant.wgsl + matmul.wgsl",
        extra: N * K * 2,
        fn: (rec) => {
          recordNf4Dequant(rec, wq, deq);
          matmul(rec, x, deq, y, { M, N, K, bType: "f16", kernels: "tiled" });
        },
      },
    ]),
    {
      name: "fused NF4 (dequantized in the tile)",
      kernel: "nf4_matmul.wgsl",
      extra: 0,
      fn: (rec) =>
        linearForward(rec, { x, weight: wq, y }, {
          tokens: M,
          inF: K,
          outF: N,
          compute: o.compute,
          kernels: "tiled",
        }),
    },
  ];
  // The register-blocked family on the same shape (the engine's kernels on CPU adapters).
  const regRungs: Rung[] = [
    {
      name: "register-blocked f32",
      kernel: "matmul_regblock.wgsl",
      extra: 0,
      fn: (rec) => matmul(rec, x, w32, y, { M, N, K, kernels: "regblock" }),
    },
    ...(!gpu.f16 ? [] : [
      <Rung> {
        name: "register-blocked, f16 weight",
        kernel: "matmul_regblock.wgsl (B f16)",
        extra: 0,
        fn: (rec) => matmul(rec, x, w16, y, { M, N, K, bType: "f16", kernels: "regblock" }),
      },
    ]),
    {
      name: "fused NF4, register-blocked",
      kernel: "nf4_matmul_regblock.wgsl",
      extra: 0,
      fn: (rec) =>
        linearForward(rec, { x, weight: wq, y }, {
          tokens: M,
          inF: K,
          outF: N,
          compute: o.compute,
          kernels: "regblock",
        }),
    },
  ];
  const time = async (r: Rung): Promise<LadderRung> => {
    const t = await timer.time(r.fn, { minMs: o.minMs ?? 150, acceptPilotMs: 400, label: r.name });
    return {
      name: r.name,
      kernel: r.kernel,
      ms: t.ms,
      gflops: flop / (t.ms * 1e6),
      speedup: 0,
      extra_bytes: r.extra,
      prototype: r.prototype ?? false,
      clock: t.clock,
    };
  };
  const out: LadderRung[] = [];
  for (const r of rungs) out.push(await time(r));
  const reg: LadderRung[] = [];
  for (const r of regRungs) reg.push(await time(r));
  for (const r of [...out, ...reg]) r.speedup = out[0].ms / r.ms;
  for (const b of [x, w32, w16, wq.packed, wq.qabsmax, wq.absmax2, deq, y]) b.destroy();
  return { shape: `y[${M},${N}] = x[${M},${K}]·W[${N},${K}]ᵀ`, flop, rungs: out, regblock: reg };
}
