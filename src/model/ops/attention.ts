/**
 * Causal GQA attention for Gemma-2, tiled (FlashAttention-2 style, online softmax) forward and backward
 * (docs/ARCHITECTURE.md#numerics, #performance). No T×T score or probability matrix is ever stored: the forward keeps (out, lse) and the
 * backward recomputes the scores tile by tile.
 *
 * Semantics: transformers 4.45 `modeling_gemma2.py` Gemma2Attention (eager), as `src/model/ref/attention.ts`:
 * `s = (q·kᵀ)·scale` with scale = query_pre_attn_scalar^−0.5 (not head_dim), then the softcap
 * `tanh(s/cap)·cap` BEFORE the mask, then the additive finfo.min-style mask (causal j ≤ i; sliding window
 * i − window < j on sliding layers; key padding keyMask == 0 masks keys only), f32 softmax, `out = P·v`.
 * A masked score is a large finite negative, so a row with no visible key is a uniform softmax over all T keys
 * (HF's behaviour), never NaN; its lse is then ≈ −1e30 and the backward gives it P = 1/T and lets the gradient
 * flow through every one of its scores (the mask is added after the softcap, gradient 1 through the add).
 *
 * Layouts (row-major f32): q, out, dout, dq `[B, T, Hq, D]`; k, v, dk, dv `[B, T, Hkv, D]`; lse `[B, Hq, T]`;
 * keyMask `[B*T]` **u32** (nonzero = real token) or null for no padding. Query head h reads kv head
 * `floor(h / (Hq/Hkv))`; dk/dv are summed over the Hq/Hkv query heads of each kv head.
 *
 * Kernels (each one concern):
 *   kernels/attention_fwd.wgsl        grid (⌈T/BR⌉, Hq, B): out, lse
 *   kernels/attention_bwd_pre.wgsl    scratch = [Drow = rowsum(dout∘out) | lse], each `[B, Hq, T]`
 *   kernels/attention_bwd_dkdv.wgsl   grid (⌈T/BC⌉, Hkv, B): dk, dv (outer loop over keys, inner over queries)
 *   kernels/attention_bwd_dq.wgsl     grid (⌈T/BR⌉, Hq, B): dq (outer loop over queries, inner over keys)
 * Tile sizes are `override` constants picked from D so the workgroup memory fits the device limit
 * (32 KiB on lavapipe; D = 256 gives fwd 16×8, dkdv 4×8, dq 8×8). Only the key/query tiles inside the
 * causal/window band are visited, except for tiles holding a fully masked row.
 *
 * Memory: the backward needs one scratch buffer of `attentionScratchBytes(s)` = 2·B·Hq·T·4 bytes
 * ([Drow | copy of lse]); the forward none. gemma-2-2b (B 8, T 512, Hq 8): 256 KiB.
 */
import fwdSource from "../../../kernels/attention_fwd.wgsl" with { type: "text" };
import preSource from "../../../kernels/attention_bwd_pre.wgsl" with { type: "text" };
import dkdvSource from "../../../kernels/attention_bwd_dkdv.wgsl" with { type: "text" };
import dqSource from "../../../kernels/attention_bwd_dq.wgsl" with { type: "text" };
import { createBuffer } from "../../gpu/buffers.ts";
import type { Gpu } from "../../gpu/device.ts";
import { defineKernel, getKernel, type KernelParams, type KernelSpec } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

/**
 * The uniform block the three tiled kernels share (kernels/lib/attention_scores.wgsl reads it). hd, br, bc: the
 * kernels' inner loops run to these runtime copies of the overrides HD, BR, BC (no full unrolling: lavapipe's
 * LLVM took ~45 s to compile one fully unrolled D = 8 pipeline).
 */
const TILED_PARAMS = {
  B: "u32",
  T: "u32",
  Hq: "u32",
  Hkv: "u32",
  scale: "f32",
  cap: "f32",
  useCap: "u32",
  window: "u32",
  useMask: "u32",
  invT: "f32",
  hd: "u32",
  br: "u32",
  bc: "u32",
} as const;
const ATTENTION_FWD = defineKernel({ file: "attention_fwd.wgsl", code: fwdSource, params: TILED_PARAMS });
const ATTENTION_BWD_DKDV = defineKernel({
  file: "attention_bwd_dkdv.wgsl",
  code: dkdvSource,
  params: TILED_PARAMS,
});
const ATTENTION_BWD_DQ = defineKernel({
  file: "attention_bwd_dq.wgsl",
  code: dqSource,
  params: TILED_PARAMS,
});
const ATTENTION_BWD_PRE = defineKernel({
  file: "attention_bwd_pre.wgsl",
  code: preSource,
  params: { B: "u32", T: "u32", Hq: "u32", HD: "u32" },
});

export interface AttentionShape {
  B: number;
  T: number;
  Hq: number;
  Hkv: number;
  /** Head dim (Gemma-2: 256; the tiny model: 24). */
  D: number;
  /** query_pre_attn_scalar^−0.5 (Gemma-2's config scalar, not head_dim). */
  scale: number;
  /** attn_logit_softcapping (Gemma-2: 50), or null for none. */
  softcap: number | null;
  /** Sliding window (key j visible to query i iff i − window < j ≤ i), or null for plain causal. */
  window: number | null;
  /** Tile sizes, for tests and benchmarks only; normally chosen from D by `attentionTiles`. */
  tiles?: AttentionTiles;
}

/** Query rows (BR) × keys (BC) per tile of each kernel, and the workgroup size. */
export interface AttentionTiles {
  fwd: { BR: number; BC: number };
  dkdv: { BR: number; BC: number };
  dq: { BR: number; BC: number };
  WG: number;
}

/** Invocations per workgroup of the three tiled kernels. */
const WG = 128;
/** Register accumulator capacity per invocation (MAXEL in the kernels). */
const MAXEL = 32;
const PRE_WG = 64;

/**
 * Workgroup-memory bytes of each kernel: its `var<workgroup>` declarations (tile rows padded to D + 1 floats),
 * each rounded up to 16 bytes as WebGPU counts them against maxComputeWorkgroupStorageSize.
 */
export function attentionSharedBytes(
  kernel: "fwd" | "dkdv" | "dq",
  D: number,
  BR: number,
  BC: number,
): number {
  const HP = D + 1;
  const vars = {
    // Qs, KVs, Ss, Mrow, Lrow, Arow, flag
    fwd: [BR * HP, BC * HP, BR * BC, BR, BR, BR, 1],
    // Ks, Vs, Qs, dOs, Ps, dSs, Lr, Dr, flag
    dkdv: [BC * HP, BC * HP, BR * HP, BR * HP, BR * BC, BR * BC, BR, BR, 1],
    // Qs, dOs, KVs, Ss, Lr, Dr, flag
    dq: [BR * HP, BR * HP, BC * HP, BR * BC, BR, BR, 1],
  }[kernel];
  return vars.reduce((sum, n) => sum + Math.ceil((4 * n) / 16) * 16, 0);
}

// Largest tiles first; the forward and dq prefer tall query tiles, dK/dV wide key tiles.
const QUERY_MAJOR: [number, number][] = [
  [32, 32],
  [32, 16],
  [16, 16],
  [16, 8],
  [8, 8],
  [8, 4],
  [4, 4],
  [2, 2],
  [1, 1],
];
const KEY_MAJOR: [number, number][] = QUERY_MAJOR.map(([a, b]) => [b, a]);

/**
 * Tile sizes for head dim D within `maxBytes` of workgroup memory (maxComputeWorkgroupStorageSize):
 * the first candidate whose memory fits and whose per-invocation accumulators fit MAXEL registers.
 */
export function attentionTiles(D: number, maxBytes: number): AttentionTiles {
  const pick = (kernel: "fwd" | "dkdv" | "dq", list: [number, number][]) => {
    for (const [BR, BC] of list) {
      const owned = kernel === "dkdv" ? BC : BR; // rows of the accumulator this workgroup holds
      if (Math.ceil(owned * D / WG) > MAXEL) continue;
      if (attentionSharedBytes(kernel, D, BR, BC) <= maxBytes) return { BR, BC };
    }
    throw new RangeError(
      `attention: head dim ${D} does not fit the ${maxBytes}-byte workgroup memory (or ${MAXEL}·${WG} registers)`,
    );
  };
  return { fwd: pick("fwd", QUERY_MAJOR), dkdv: pick("dkdv", KEY_MAJOR), dq: pick("dq", QUERY_MAJOR), WG };
}

function validate(s: AttentionShape): void {
  const ints = [s.B, s.T, s.Hq, s.Hkv, s.D];
  if (!ints.every((x) => Number.isInteger(x) && x >= 1)) {
    throw new RangeError(`attention: B, T, Hq, Hkv, D must be positive integers (${ints.join(", ")})`);
  }
  if (s.Hq % s.Hkv !== 0) throw new RangeError(`attention: Hq ${s.Hq} is not a multiple of Hkv ${s.Hkv}`);
  if (s.window !== null && !(Number.isInteger(s.window) && s.window >= 1)) {
    throw new RangeError(`attention: window must be a positive integer or null (${s.window})`);
  }
  if (s.softcap !== null && !(s.softcap > 0)) throw new RangeError(`attention: softcap ${s.softcap} <= 0`);
}

function tilesFor(gpu: Gpu, s: AttentionShape): AttentionTiles {
  const t = s.tiles ?? attentionTiles(s.D, gpu.limits.maxComputeWorkgroupStorageSize);
  for (const [kernel, { BR, BC }] of Object.entries({ fwd: t.fwd, dkdv: t.dkdv, dq: t.dq })) {
    const bytes = attentionSharedBytes(kernel as "fwd", s.D, BR, BC);
    const owned = kernel === "dkdv" ? BC : BR;
    if (
      bytes > gpu.limits.maxComputeWorkgroupStorageSize || BR > t.WG ||
      Math.ceil(owned * s.D / t.WG) > MAXEL || t.WG > gpu.limits.maxComputeInvocationsPerWorkgroup
    ) {
      throw new RangeError(
        `attention ${kernel}: tiles ${BR}×${BC} (WG ${t.WG}, D ${s.D}) need ${bytes} B of workgroup memory ` +
          `and ${Math.ceil(owned * s.D / t.WG)} accumulators per invocation (max ${MAXEL})`,
      );
    }
  }
  return t;
}

/** The shared uniform block of the three tiled kernels (TILED_PARAMS). */
function params(
  s: AttentionShape,
  useMask: boolean,
  tile: { BR: number; BC: number },
): KernelParams<typeof ATTENTION_FWD> {
  // A window ≥ T masks nothing beyond causality; clamping keeps the kernels' index arithmetic in range.
  const window = Math.min(s.window ?? s.T, s.T);
  return {
    B: s.B,
    T: s.T,
    Hq: s.Hq,
    Hkv: s.Hkv,
    scale: s.scale,
    cap: s.softcap ?? 1,
    useCap: s.softcap === null ? 0 : 1,
    window,
    useMask: useMask ? 1 : 0,
    invT: 1 / s.T,
    hd: s.D,
    br: tile.BR,
    bc: tile.BC,
  };
}

// A 16-byte stand-in bound as keyMask when there is none (the kernels do not read it then).
const noMask = new WeakMap<GPUDevice, GPUBuffer>();
function maskBinding(gpu: Gpu, keyMask: Binding | null): Binding {
  if (keyMask) return keyMask;
  let buf = noMask.get(gpu.device);
  if (!buf) noMask.set(gpu.device, buf = createBuffer(gpu, "attention-no-mask", 16));
  return buf;
}

function tiledKernel(
  gpu: Gpu,
  spec: KernelSpec<typeof TILED_PARAMS>,
  D: number,
  BR: number,
  BC: number,
  wg: number,
) {
  return getKernel(gpu, { ...spec, constants: { HD: D, BR, BC, WG: wg } });
}

/**
 * Forward: writes `out` [B, T, Hq, D] and `lse` [B, Hq, T] (log Σ_j exp(s_ij) per query row, ≈ −1e30 for a
 * row with no visible key). `keyMask` [B*T] u32 (1 = real token) or null.
 */
export function attentionForward(
  rec: Recorder,
  q: Binding,
  k: Binding,
  v: Binding,
  out: Binding,
  lse: Binding,
  keyMask: Binding | null,
  s: AttentionShape,
): void {
  validate(s);
  const t = tilesFor(rec.gpu, s);
  const { BR, BC } = t.fwd;
  const kernel = tiledKernel(rec.gpu, ATTENTION_FWD, s.D, BR, BC, t.WG);
  const grid = [Math.ceil(s.T / BR), s.Hq, s.B] as const;
  const mask = maskBinding(rec.gpu, keyMask);
  rec.dispatch(kernel, [q, k, v, mask, out, lse], params(s, keyMask !== null, t.fwd), grid);
}

/** Bytes of the backward's scratch buffer: [Drow = rowsum(dout∘out) | a copy of lse], f32 2 × [B, Hq, T]. */
export function attentionScratchBytes(s: Pick<AttentionShape, "B" | "T" | "Hq">): number {
  return 2 * s.B * s.Hq * s.T * 4;
}

/**
 * Backward: from `dout` and the forward's inputs and outputs (`out`, `lse`), writes (overwrites) `dq`
 * [B, T, Hq, D], `dk` and `dv` [B, T, Hkv, D]. `scratch` holds ≥ `attentionScratchBytes(s)` bytes; its
 * content is clobbered. `keyMask` must be the one given to the forward.
 */
export function attentionBackward(
  rec: Recorder,
  dout: Binding,
  q: Binding,
  k: Binding,
  v: Binding,
  out: Binding,
  lse: Binding,
  keyMask: Binding | null,
  dq: Binding,
  dk: Binding,
  dv: Binding,
  s: AttentionShape,
  scratch: Binding,
): void {
  validate(s);
  const t = tilesFor(rec.gpu, s);
  const rows = s.B * s.Hq * s.T;
  const pre = getKernel(rec.gpu, ATTENTION_BWD_PRE);
  const preParams = { B: s.B, T: s.T, Hq: s.Hq, HD: s.D };
  rec.dispatch(pre, [dout, out, lse, scratch], preParams, Math.ceil(rows / PRE_WG));
  const mask = maskBinding(rec.gpu, keyMask);
  const useMask = keyMask !== null;
  const kv = t.dkdv;
  const dkdv = tiledKernel(rec.gpu, ATTENTION_BWD_DKDV, s.D, kv.BR, kv.BC, t.WG);
  const kvGrid = [Math.ceil(s.T / kv.BC), s.Hkv, s.B] as const;
  rec.dispatch(dkdv, [dout, q, k, v, scratch, mask, dk, dv], params(s, useMask, kv), kvGrid);
  const qq = t.dq;
  const dqk = tiledKernel(rec.gpu, ATTENTION_BWD_DQ, s.D, qq.BR, qq.BC, t.WG);
  const qGrid = [Math.ceil(s.T / qq.BR), s.Hq, s.B] as const;
  rec.dispatch(dqk, [dout, q, k, v, scratch, mask, dq], params(s, useMask, qq), qGrid);
}

/**
 * Useful FLOPs (multiply-adds × 2) over the visible (i, j) pairs, for benchmarks: forward q·k and P·v;
 * backward q·k, dO·v, P·dO, dS·q, dS·k.
 */
export function attentionFlops(s: AttentionShape, pass: "fwd" | "bwd"): number {
  const w = Math.min(s.window ?? s.T, s.T);
  let pairs = 0;
  for (let i = 0; i < s.T; i++) pairs += Math.min(i + 1, w);
  const perPair = pass === "fwd" ? 2 : 5;
  return 2 * s.D * perPair * pairs * s.B * s.Hq;
}
