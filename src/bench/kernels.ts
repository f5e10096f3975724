/**
 * Per-kernel throughput for `maieutic bench` on one model's shapes (tokens = batch × seq): every kernel family
 * the training step runs (dense matmul NT/NN/TN in f32 and f16, NF4 matmul and its dx, LoRA forward and
 * backward, the QLoRA projection as the engine records it, tiled attention forward and backward, the fused
 * lm_head + cross-entropy over a vocab slice, RMSNorm, RoPE, GEGLU, clip + AdamW), each timed alone
 * (src/bench/timing.ts) and reported as GFLOP/s and GB/s. Each family's cases are built in its own file under
 * src/bench/cases/ from a shared context (src/bench/cases/context.ts) and the seeded filler (src/bench/filler.ts).
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
import naiveSource from "../../kernels/bench/bench_matmul_naive.wgsl" with { type: "text" };
import dequantSource from "../../kernels/bench/bench_nf4_dequant.wgsl" with { type: "text" };
import regblockSource from "../../kernels/bench/bench_matmul_regblock.wgsl" with { type: "text" };
import { createBuffer } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { defineKernel, getKernel } from "../gpu/kernel.ts";
import { matmul } from "../gpu/ops/matmul.ts";
import type { Binding, Recorder } from "../gpu/recorder.ts";
import { linearForward, nf4Tables, type Nf4Weight } from "../model/ops/linear.ts";
import { attentionCases } from "./cases/attention.ts";
import { caseContext, type KernelBenchOptions, type KernelCase } from "./cases/context.ts";
import { crossEntropyCases } from "./cases/cross_entropy.ts";
import { denseCases, denseDecodeCases, denseWeights } from "./cases/dense.ts";
import { gegluCases, normCases, ropeCases } from "./cases/elementwise.ts";
import { loraBuffers, loraCases, qloraCases } from "./cases/lora.ts";
import { nf4Cases, nf4Projections } from "./cases/nf4.ts";
import { optimizerCases } from "./cases/optimizer.ts";
import type { Ceilings } from "./ceilings.ts";
import { Filler } from "./filler.ts";
import type { Clock, GpuTimer, RecordFn, Timing } from "./timing.ts";

export type { KernelBenchOptions, KernelCase };

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

/**
 * Builds the cases (and their buffers) for one model's shapes, family by family (src/bench/cases/). The
 * buffers are filled in this order (the filler's seeds follow it), and the cases are listed in it.
 */
export async function kernelCases(gpu: Gpu, o: KernelBenchOptions): Promise<KernelCase[]> {
  const fill = new Filler(gpu);
  const x = caseContext(gpu, o, fill);
  const dense = denseWeights(x);
  const nf4 = nf4Projections(x);
  const lora = loraBuffers(x);
  const cases = [
    ...denseCases(x, dense),
    ...nf4Cases(x, nf4),
    ...denseDecodeCases(x, dense),
    ...loraCases(x, lora),
    ...qloraCases(x, nf4.q, lora),
    ...attentionCases(x),
    ...crossEntropyCases(x),
    ...normCases(x),
    ...ropeCases(x),
    ...gegluCases(x),
    ...optimizerCases(x),
  ];
  await fill.done();
  const only = o.only;
  return only?.length ? cases.filter((c) => only.some((s) => c.name.includes(s))) : cases;
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
type Mnk = { M: number; N: number; K: number };
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
export function recordNaiveMatmul(rec: Recorder, A: Binding, B: Binding, C: Binding, s: Mnk): void {
  const k = getKernel(rec.gpu, BENCH_MATMUL_NAIVE);
  rec.dispatch(k, [A, B, C], { M: s.M, N: s.N, K: s.K }, [Math.ceil(s.N / 16), Math.ceil(s.M / 16)]);
}

/**
 * C[M, N] = A[M, K]·B[N, K]ᵀ in f32 with kernels/bench/bench_matmul_regblock.wgsl (4×4 register blocks, no workgroup
 * memory; K % 4 == 0 and A, B bound whole from offset 0).
 */
export function recordRegblockMatmul(rec: Recorder, A: Binding, B: Binding, C: Binding, s: Mnk): void {
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
  const fusedNf4 = (kernels: "tiled" | "regblock"): RecordFn => (rec) =>
    linearForward(rec, { x, weight: wq, y }, { tokens: M, inF: K, outF: N, compute: o.compute, kernels });
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
      fn: fusedNf4("tiled"),
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
      fn: fusedNf4("regblock"),
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
