/**
 * The projection layers of QLoRA (q/k/v/o and the MLP projections), forward and backward:
 *
 *   y = x·Wᵀ + scaling · B(A(dropout(x)))          PEFT lora/layer.py Linear.forward, scaling = lora_alpha / r
 *
 * W is frozen: NF4 (bitsandbytes layout, dequantized inside the matmul tile: kernels/nf4_matmul.wgsl and
 * nf4_matmul_dx.wgsl) or dense f32/f16 (src/gpu/ops/matmul.ts). A [r, in] and B [out, r] are the f32 LoRA
 * weights (PEFT's lora_A / lora_B nn.Linear weights). Activations are row-major [tokens, features] f32.
 *
 * Forward (2 dispatches for NF4): u = dropout(x)·Aᵀ (kernels/lora_down.wgsl), then y = x·Wᵀ + scaling·u·Bᵀ with
 * the LoRA product as extra K-slabs of the NF4 tile loop. u [tokens, r] is kept for the backward.
 * Backward (4 dispatches for NF4), with W frozen:
 *   du  = scaling · dy·B                          lora_down.wgsl (transposed operand)
 *   dB (+)= scaling · dyᵀ·u                       lora_grad.wgsl (transposed store, [out, r])
 *   dA (+)= duᵀ·dropout(x)                        lora_grad.wgsl, mask regenerated
 *   dx (+)= dy·W + dropout'(du·A)                 nf4_matmul_dx.wgsl (LoRA slabs first, masked, then the base)
 * The LoRA kernels are recorded by src/model/ops/lora.ts. The dropout mask is never stored: it is a function of
 * DropoutSpec (src/lora/dropout.ts), so forward and backward of one micro-batch must get the same spec. Operand
 * precision of the base product: `compute` (f16 where the adapter has shader-f16, as bnb_4bit_compute_dtype
 * float16: x and the dequantized weight are rounded to f16, products accumulate in f32); the LoRA branch is f32
 * throughout (PEFT keeps LoRA weights in f32).
 */
import nf4Source from "../../../kernels/nf4_matmul.wgsl" with { type: "text" };
import nf4DxSource from "../../../kernels/nf4_matmul_dx.wgsl" with { type: "text" };
import nf4RegblockSource from "../../../kernels/nf4_matmul_regblock.wgsl" with { type: "text" };
import nf4DxRegblockSource from "../../../kernels/nf4_matmul_dx_regblock.wgsl" with { type: "text" };
import nf4MatvecSource from "../../../kernels/nf4_matvec.wgsl" with { type: "text" };
import type { BufferPool } from "../../gpu/buffers.ts";
import { upload } from "../../gpu/buffers.ts";
import type { Gpu } from "../../gpu/device.ts";
import { defineKernel, getKernel, type Kernel, type KernelSpec } from "../../gpu/kernel.ts";
import { matmul, REGBLOCK_WG } from "../../gpu/ops/matmul.ts";
import { type KernelVariant, kernelVariant, SELECT } from "../../gpu/variants.ts";
import type { ParamSchema } from "../../gpu/params.ts";
import { type Binding, foldGrid, type Recorder } from "../../gpu/recorder.ts";
import { DYNAMIC_MAP, NF4_CODE } from "../../quant/nf4_tables.ts";
import { DROPOUT_PARAMS, dropoutParams } from "../../lora/dropout.ts";
import type { LoraBranch } from "../../lora/params.ts";
import { recordLoraDown, recordLoraGrad, recordLoraUp } from "./lora.ts";

export { recordLoraDown, recordLoraGrad, recordLoraUp };

/** The forward kernels' Params (nf4_matmul, its register-blocked and small-M variants: same semantics). */
const NF4_FWD_PARAMS = {
  M: "u32",
  N: "u32",
  K: "u32",
  ldx: "u32",
  ldy: "u32",
  offX: "u32",
  offY: "u32",
  beta: "f32",
  offset: "f32",
  zero: "u32",
  R: "u32",
  scaling: "f32",
} as const;
/** The input-gradient kernels' Params (nf4_matmul_dx and its register-blocked variant). */
const NF4_DX_PARAMS = {
  M: "u32",
  N: "u32",
  K: "u32",
  ldy: "u32",
  ldx: "u32",
  offY: "u32",
  offX: "u32",
  beta: "f32",
  offset: "f32",
  zero: "u32",
  R: "u32",
  ...DROPOUT_PARAMS,
} as const;
const NF4_MATMUL = defineKernel({ file: "nf4_matmul.wgsl", code: nf4Source, params: NF4_FWD_PARAMS });
const NF4_MATMUL_REGBLOCK = defineKernel({
  file: "nf4_matmul_regblock.wgsl",
  code: nf4RegblockSource,
  params: NF4_FWD_PARAMS,
});
const NF4_MATVEC = defineKernel({ file: "nf4_matvec.wgsl", code: nf4MatvecSource, params: NF4_FWD_PARAMS });
const NF4_MATMUL_DX = defineKernel({ file: "nf4_matmul_dx.wgsl", code: nf4DxSource, params: NF4_DX_PARAMS });
const NF4_MATMUL_DX_REGBLOCK = defineKernel({
  file: "nf4_matmul_dx_regblock.wgsl",
  code: nf4DxRegblockSource,
  params: NF4_DX_PARAMS,
});

export type { DropoutSpec } from "../../lora/dropout.ts";
export type ComputeType = "f32" | "f16";

/** An NF4 + double-quant weight on the GPU (bitsandbytes layout, golden README §NF4). */
export interface Nf4Weight {
  kind: "nf4";
  /** [out_features, in_features], the nn.Linear layout. */
  shape: readonly [number, number];
  /** The packed bytes (2 codes per byte, first element in the high nibble), read as little-endian u32 words. */
  packed: GPUBuffer;
  /** One byte per 64-block: the double-quantized absmax code. */
  qabsmax: GPUBuffer;
  /** f32 per 256 absmax blocks. */
  absmax2: GPUBuffer;
  /** The double-quant offset (mean of the raw absmax), added after the product. */
  offset: number;
}

/** A dense frozen weight [out, in] (load_in_4bit = false), f32 or f16 storage. */
export interface DenseWeight {
  kind: "dense";
  shape: readonly [number, number];
  buffer: Binding;
  dtype: "f32" | "f16";
}

export type LinearWeight = Nf4Weight | DenseWeight;

// The LoRA branch of one projection is declared with the LoRA parameters (src/lora/params.ts).
export type { LoraBranch };

export interface LinearShape {
  /** Rows of x and y (batch × sequence). */
  tokens: number;
  inF: number;
  outF: number;
  /** Operand type of the base product: default f16 when the adapter has shader-f16. Ignored for dense weights,
   *  whose product uses the stored dtypes (src/gpu/ops/matmul.ts). */
  compute?: ComputeType;
  /** Storage type of x and dy (default f32). The LoRA branch needs f32. */
  actType?: "f32" | "f16";
  /** Row strides and element offsets of x / dx (default inF, 0) and y / dy (default outF, 0), for views into
   *  wider buffers (e.g. q, k, v written side by side). */
  ldx?: number;
  offX?: number;
  ldy?: number;
  offY?: number;
  /** Kernel family (default: the device's, src/gpu/variants.ts); tests force both. */
  kernels?: KernelVariant;
}

export interface LinearForwardArgs {
  x: Binding;
  weight: LinearWeight;
  lora?: LoraBranch | null;
  /** Output [tokens, outF] f32. */
  y: Binding;
  /** Scratch [tokens, r] f32 receiving u = dropout(x)·Aᵀ; needed with `lora`, and kept for the backward. */
  u?: Binding | null;
  /** y += instead of y = (default false). */
  accumulate?: boolean;
}

export interface LinearBackwardArgs {
  /** Gradient of y [tokens, outF] f32. */
  dy: Binding;
  /** The forward's input [tokens, inF] (for dA; not read otherwise). */
  x: Binding;
  weight: LinearWeight;
  lora?: LoraBranch | null;
  /** The forward's u [tokens, r] (for dB). */
  u?: Binding | null;
  /** Scratch [tokens, r] f32 receiving du = scaling·dy·B; needed with `lora`. */
  du?: Binding | null;
  /** Where the LoRA gradients go: dA [r, inF], dB [outF, r] f32. Omit for no weight gradients. */
  grads?: { dA: Binding; dB: Binding; accumulate?: boolean } | null;
  /** Input gradient [tokens, inF] f32, or null when not needed. */
  dx?: Binding | null;
  /** dx += instead of dx = (default false); q/k/v share x, so their dx add up. */
  accumulateDx?: boolean;
}

const TILE = 64;

// ---- per-device constants ----

const tablesCache = new WeakMap<GPUDevice, GPUBuffer>();
const dummyCache = new WeakMap<GPUDevice, GPUBuffer>();

/** NF4_CODE (16) then DYNAMIC_MAP (256) as one f32 storage buffer, uploaded once per device. */
export function nf4Tables(gpu: Gpu): GPUBuffer {
  let b = tablesCache.get(gpu.device);
  if (!b) {
    const t = new Float32Array(16 + 256);
    t.set(NF4_CODE, 0);
    t.set(DYNAMIC_MAP, 16);
    b = upload(gpu, "nf4-tables", t);
    tablesCache.set(gpu.device, b);
  }
  return b;
}

/** A 16-byte placeholder bound where a kernel's optional operand (LoRA without a branch) is unused. */
function dummy(gpu: Gpu): GPUBuffer {
  let b = dummyCache.get(gpu.device);
  if (!b) {
    b = upload(gpu, "unused", new Float32Array(4));
    dummyCache.set(gpu.device, b);
  }
  return b;
}

// ---- NF4 upload ----

/** What uploadNf4 needs of src/quant/nf4.ts `Nf4Tensor` (structurally the same fields). */
export interface Nf4Data {
  shape: readonly number[];
  n: number;
  packed: Uint8Array;
  qabsmax: Uint8Array;
  absmax2: Float32Array;
  offset: number;
}

/** Byte sizes of an NF4 weight's GPU buffers (for the memory plan), each padded to 4 bytes. */
export function nf4Bytes(n: number): { packed: number; qabsmax: number; absmax2: number } {
  const blocks = Math.ceil(n / 64);
  const pad4 = (b: number) => Math.ceil(b / 4) * 4;
  return { packed: pad4(Math.ceil(n / 2)), qabsmax: pad4(blocks), absmax2: Math.ceil(blocks / 256) * 4 };
}

/**
 * Uploads a quantized [out, in] weight as-is (bytes padded to 4). With a pool the buffers are persistent
 * "weights" allocations (counted by the memory plan).
 */
export function uploadNf4(gpu: Gpu, t: Nf4Data, label: string, pool?: BufferPool): Nf4Weight {
  if (t.shape.length !== 2) throw new RangeError(`${label}: NF4 linear weight must be 2-D, got [${t.shape}]`);
  const [out, inF] = t.shape;
  const n = out * inF;
  const blocks = Math.ceil(n / 64);
  if (
    t.n !== n || t.packed.length !== Math.ceil(n / 2) || t.qabsmax.length !== blocks ||
    t.absmax2.length !== Math.ceil(blocks / 256)
  ) {
    throw new RangeError(
      `${label}: inconsistent NF4 tensor (n ${t.n}, packed ${t.packed.length}, qabsmax ${t.qabsmax.length}, ` +
        `absmax2 ${t.absmax2.length}) for shape [${t.shape}]`,
    );
  }
  const max = gpu.limits.maxStorageBufferBindingSize;
  if (t.packed.length > max) {
    throw new RangeError(
      `${label}: ${t.packed.length} packed bytes exceed one binding (${max}); split the weight`,
    );
  }
  const put = (name: string, data: Uint8Array | Float32Array): GPUBuffer => {
    if (!pool) return upload(gpu, `${label}.${name}`, data);
    const buf = pool.persistent(`${label}.${name}`, "weights", Math.ceil(data.byteLength / 4) * 4);
    const bytes = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    gpu.device.queue.writeBuffer(buf, 0, bytes);
    return buf;
  };
  return {
    kind: "nf4",
    shape: [out, inF],
    packed: put("packed", t.packed),
    qabsmax: put("qabsmax", t.qabsmax),
    absmax2: put("absmax2", t.absmax2),
    offset: t.offset,
  };
}

// ---- kernels ----

function computeTypes(gpu: Gpu, compute: ComputeType | undefined): { OP_T: string; OP_MAX: string } {
  const c = compute ?? (gpu.f16 ? "f16" : "f32");
  if (c === "f16" && !gpu.f16) throw new Error("compute f16 requested but the adapter lacks shader-f16");
  // OP_MAX: f16 operands are clamped to the largest finite f16, so they never become Inf (docs/ARCHITECTURE.md#numerics).
  return c === "f16" ? { OP_T: "f16", OP_MAX: "65504.0" } : { OP_T: "f32", OP_MAX: "3.4028234e38" };
}

function kernel<S extends ParamSchema>(
  gpu: Gpu,
  spec: KernelSpec<S>,
  constants: Record<string, number>,
  types = {},
): Kernel<S> {
  return getKernel(gpu, { ...spec, constants, types });
}

function checkShape(w: LinearWeight, s: LinearShape, lora: LoraBranch | null | undefined): void {
  const [out, inF] = w.shape;
  if (out !== s.outF || inF !== s.inF) {
    throw new RangeError(`linear: weight [${w.shape}] does not match in ${s.inF} -> out ${s.outF}`);
  }
  if (lora && (!Number.isInteger(lora.r) || lora.r < 1)) {
    throw new RangeError(`linear: bad LoRA rank ${lora.r}`);
  }
  if (lora && s.actType === "f16") throw new RangeError("linear: the LoRA branch needs f32 activations");
}

function strides(s: LinearShape) {
  return { ldx: s.ldx ?? s.inF, offX: s.offX ?? 0, ldy: s.ldy ?? s.outF, offY: s.offY ?? 0 };
}

/** Which NF4 forward kernel linearForward records for a shape (see the module comment). */
export function linearForwardPath(gpu: Gpu, s: LinearShape): "tiled" | "matvec" | "regblock" {
  return SELECT.nf4Forward(kernelVariant(gpu, s.kernels), s);
}

/**
 * Records y (+)= x·Wᵀ + scaling·B(A(dropout(x))). `a.u` receives dropout(x)·Aᵀ (keep it for the backward).
 * Dispatches: NF4 without LoRA 1, NF4 with LoRA 2, dense 1 (+2 with LoRA).
 */
export function linearForward(rec: Recorder, a: LinearForwardArgs, s: LinearShape): void {
  const { gpu } = rec;
  const lora = a.lora ?? null;
  checkShape(a.weight, s, lora);
  const { ldx, offX, ldy, offY } = strides(s);
  const M = s.tokens;
  if (lora) {
    if (!a.u) throw new Error("linearForward: a LoRA branch needs the u scratch [tokens, r]");
    recordLoraDown(rec, a.x, lora.A, a.u, {
      M,
      R: lora.r,
      K: s.inF,
      ldx,
      offX,
      transL: false,
      alpha: 1,
      dropout: lora.dropout,
    });
  }
  const beta = a.accumulate ? 1 : 0;
  const w = a.weight;
  if (w.kind === "nf4") {
    const bindings = [
      a.x,
      w.packed,
      w.qabsmax,
      w.absmax2,
      nf4Tables(gpu),
      lora ? a.u! : dummy(gpu),
      lora ? lora.B : dummy(gpu),
      a.y,
    ];
    const params = {
      M,
      N: s.outF,
      K: s.inF,
      ldx,
      ldy,
      offX,
      offY,
      beta,
      offset: w.offset,
      zero: 0, // opaque to the compiler (no fma contraction in the absmax dequant)
      R: lora ? lora.r : 0,
      scaling: lora ? lora.scaling : 0,
    };
    const types = { X_T: s.actType ?? "f32", ...computeTypes(gpu, s.compute) };
    const FAST = s.inF % 8 === 0 ? 1 : 0;
    const path = linearForwardPath(gpu, s);
    if (path === "regblock") {
      const TM = Math.max(1, Math.min(M, 8));
      const k = kernel(gpu, NF4_MATMUL_REGBLOCK, {
        FAST,
        A64: s.inF % 64 === 0 ? 1 : 0,
        F16: types.OP_T === "f16" ? 1 : 0,
        TM,
        WG: REGBLOCK_WG,
      }, types);
      rec.dispatch(k, bindings, params, [Math.ceil(s.outF / (8 * REGBLOCK_WG)), Math.ceil(M / TM)]);
    } else if (path === "matvec") {
      const k = kernel(gpu, NF4_MATVEC, { FAST, MR: M }, types);
      // Blocks of 4 features over a 1-D grid folded into x/y.
      rec.dispatch(
        k,
        bindings,
        params,
        foldGrid(Math.ceil(s.outF / 4), gpu.limits.maxComputeWorkgroupsPerDimension),
      );
    } else {
      const k = kernel(gpu, NF4_MATMUL, { FAST }, types);
      rec.dispatch(k, bindings, params, [Math.ceil(s.outF / TILE), Math.ceil(M / TILE)]);
    }
    return;
  }
  matmul(rec, a.x, w.buffer, a.y, {
    M,
    N: s.outF,
    K: s.inF,
    beta,
    lda: ldx,
    offA: offX,
    ldc: ldy,
    offC: offY,
    aType: s.actType ?? "f32",
    bType: w.dtype,
    kernels: s.kernels,
  });
  if (lora) {
    recordLoraUp(rec, a.u!, lora.B, a.y, {
      M,
      C: s.outF,
      R: lora.r,
      ldy,
      offY,
      transL: false,
      alpha: lora.scaling,
      accumulate: true,
    });
  }
}

/**
 * Records the backward of linearForward with W frozen: du = scaling·dy·B, dB (+)= scaling·dyᵀ·u,
 * dA (+)= duᵀ·dropout(x), dx (+)= dy·W + dropout'(du·A). `lora.dropout` must be the forward's spec.
 * LoRA gradients accumulate (+=) unless grads.accumulate === false (the first micro-batch of a window may
 * overwrite instead of clearing first).
 */
export function linearBackward(rec: Recorder, a: LinearBackwardArgs, s: LinearShape): void {
  const { gpu } = rec;
  const lora = a.lora ?? null;
  checkShape(a.weight, s, lora);
  const { ldx, offX, ldy, offY } = strides(s);
  const M = s.tokens;
  if (lora) {
    if (!a.du) throw new Error("linearBackward: a LoRA branch needs the du scratch [tokens, r]");
    recordLoraDown(rec, a.dy, lora.B, a.du, {
      M,
      R: lora.r,
      K: s.outF,
      ldx: ldy,
      offX: offY,
      transL: true,
      alpha: lora.scaling,
    });
    if (a.grads) {
      if (!a.u) throw new Error("linearBackward: LoRA gradients need the forward's u [tokens, r]");
      const accumulate = a.grads.accumulate ?? true;
      recordLoraGrad(rec, a.u, a.dy, a.grads.dB, {
        M,
        R: lora.r,
        C: s.outF,
        ldx: ldy,
        offX: offY,
        alpha: lora.scaling,
        accumulate,
        transOut: true,
      });
      recordLoraGrad(rec, a.du, a.x, a.grads.dA, {
        M,
        R: lora.r,
        C: s.inF,
        ldx,
        offX,
        alpha: 1,
        accumulate,
        transOut: false,
        dropout: lora.dropout,
      });
    }
  }
  if (!a.dx) return;
  const beta = a.accumulateDx ? 1 : 0;
  const w = a.weight;
  if (w.kind === "nf4") {
    const bindings = [
      a.dy,
      w.packed,
      w.qabsmax,
      w.absmax2,
      nf4Tables(gpu),
      lora ? a.du! : dummy(gpu),
      lora ? lora.A : dummy(gpu),
      a.dx,
    ];
    const params = {
      M,
      N: s.inF,
      K: s.outF,
      ldy,
      ldx,
      offY,
      offX,
      beta,
      offset: w.offset,
      zero: 0,
      R: lora ? lora.r : 0,
      ...dropoutParams(lora?.dropout),
    };
    const types = { Y_T: s.actType ?? "f32", ...computeTypes(gpu, s.compute) };
    const FAST = s.inF % 8 === 0 ? 1 : 0;
    if (SELECT.nf4InputGrad(kernelVariant(gpu, s.kernels)) === "regblock") {
      const TM = Math.max(1, Math.min(M, 8));
      const k = kernel(gpu, NF4_MATMUL_DX_REGBLOCK, {
        FAST,
        F16: types.OP_T === "f16" ? 1 : 0,
        TM,
        WG: REGBLOCK_WG,
      }, types);
      rec.dispatch(k, bindings, params, [Math.ceil(s.inF / (8 * REGBLOCK_WG)), Math.ceil(M / TM)]);
    } else {
      const k = kernel(gpu, NF4_MATMUL_DX, { FAST }, types);
      rec.dispatch(k, bindings, params, [Math.ceil(s.inF / TILE), Math.ceil(M / TILE)]);
    }
    return;
  }
  matmul(rec, a.dy, w.buffer, a.dx, {
    M,
    N: s.inF,
    K: s.outF,
    transB: true,
    beta,
    lda: ldy,
    offA: offY,
    ldc: ldx,
    offC: offX,
    aType: s.actType ?? "f32",
    bType: w.dtype,
    kernels: s.kernels,
  });
  if (lora) {
    recordLoraUp(rec, a.du!, lora.A, a.dx, {
      M,
      C: s.inF,
      R: lora.r,
      ldy: ldx,
      offY: offX,
      transL: true,
      alpha: 1,
      accumulate: true,
      dropout: lora.dropout,
    });
  }
}

/** Useful FLOP of one forward (base + LoRA), for benchmarks. */
export function linearFlops(s: LinearShape, r = 0): number {
  const f = linearPassFlops(s, r, "fwd", false);
  return f.base + f.lora;
}

/**
 * FLOP of one projection's forward or backward (rank r, 0 = no LoRA), split by the kernels that run them:
 * `base` is the base product's kernel (nf4_matmul / nf4_matmul_dx, or the dense matmul), which for NF4 weights
 * also runs the LoRA products fused in as extra K-slabs; `lora` is the LoRA kernels' own work.
 * Forward: y = x·Wᵀ (2·n·in·out), u = x·Aᵀ (lora_down, 2·n·r·in), + u·Bᵀ (2·n·r·out: fused for NF4, else lora_up).
 * Backward: dx = dy·W, du = dy·B and dB = dyᵀ·u (lora_down / lora_grad, 2·n·r·out each), dA = duᵀ·x
 * (lora_grad, 2·n·r·in), dx += du·A (2·n·r·in: fused for NF4, else lora_up).
 */
export function linearPassFlops(
  s: LinearShape,
  r: number,
  pass: "fwd" | "bwd",
  nf4: boolean,
): { base: number; lora: number } {
  const n = s.tokens, inF = s.inF, outF = s.outF;
  const base = 2 * n * inF * outF;
  if (!r) return { base, lora: 0 };
  const own = pass === "fwd" ? 2 * n * r * inF : 2 * n * r * (2 * outF + inF);
  const slabs = pass === "fwd" ? 2 * n * r * outF : 2 * n * r * inF;
  return nf4 ? { base: base + slabs, lora: own } : { base, lora: own + slabs };
}
