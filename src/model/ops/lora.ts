/**
 * The LoRA branch's own kernels (PEFT lora/layer.py: lora_B(lora_A(dropout(x))) · scaling), recorded by the
 * projections of src/model/ops/linear.ts: the down-projection u = dropout(x)·Aᵀ (kernels/lora_down.wgsl, also
 * du = dy·B with the operand transposed), the weight gradients (kernels/lora_grad.wgsl) and, for dense weights,
 * the up-projection (kernels/lora_up.wgsl). f32 throughout (PEFT keeps LoRA weights in f32); the dropout mask
 * is regenerated in each kernel (kernels/lib/dropout.wgsl). CPU reference: src/model/ref/linear.ts.
 */
import loraDownSource from "../../../kernels/lora_down.wgsl" with { type: "text" };
import loraGradSource from "../../../kernels/lora_grad.wgsl" with { type: "text" };
import loraUpSource from "../../../kernels/lora_up.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";
import { DROPOUT_PARAMS, dropoutParams, type DropoutSpec } from "../../lora/dropout.ts";

const LORA_DOWN = defineKernel({
  file: "lora_down.wgsl",
  code: loraDownSource,
  params: { M: "u32", R: "u32", K: "u32", ldx: "u32", offX: "u32", alpha: "f32", ...DROPOUT_PARAMS },
});
const LORA_GRAD = defineKernel({
  file: "lora_grad.wgsl",
  code: loraGradSource,
  params: {
    M: "u32",
    R: "u32",
    C: "u32",
    ldx: "u32",
    offX: "u32",
    alpha: "f32",
    beta: "f32",
    ...DROPOUT_PARAMS,
  },
});
const LORA_UP = defineKernel({
  file: "lora_up.wgsl",
  code: loraUpSource,
  params: {
    M: "u32",
    C: "u32",
    R: "u32",
    ldy: "u32",
    offY: "u32",
    alpha: "f32",
    beta: "f32",
    ...DROPOUT_PARAMS,
  },
});

interface DownShape {
  M: number;
  R: number;
  K: number;
  ldx: number;
  offX: number;
  /** L stored [K, R] (lora_B) instead of [R, K] (lora_A). */
  transL: boolean;
  alpha: number;
  dropout?: DropoutSpec | null;
}

/** U [M, R] = alpha · (mask ∘ X)·op(L)ᵀ (kernels/lora_down.wgsl). */
export function recordLoraDown(rec: Recorder, X: Binding, L: Binding, U: Binding, s: DownShape): void {
  const k = getKernel(rec.gpu, { ...LORA_DOWN, constants: { TRANS_L: s.transL ? 1 : 0 } });
  rec.dispatch(
    k,
    [X, L, U],
    { M: s.M, R: s.R, K: s.K, ldx: s.ldx, offX: s.offX, alpha: s.alpha, ...dropoutParams(s.dropout) },
    [Math.ceil(s.R / 16), Math.ceil(s.M / 64)],
  );
}

interface GradShape {
  M: number;
  R: number;
  C: number;
  ldx: number;
  offX: number;
  alpha: number;
  accumulate: boolean;
  /** Store G(j, c) at c*R + j ([C, R], lora_B's layout) instead of j*C + c. */
  transOut: boolean;
  dropout?: DropoutSpec | null;
}

/** G (+)= alpha · Lᵀ·(mask ∘ X) (kernels/lora_grad.wgsl). */
export function recordLoraGrad(rec: Recorder, L: Binding, X: Binding, G: Binding, s: GradShape): void {
  const k = getKernel(rec.gpu, { ...LORA_GRAD, constants: { TRANS_OUT: s.transOut ? 1 : 0 } });
  rec.dispatch(
    k,
    [L, X, G],
    {
      M: s.M,
      R: s.R,
      C: s.C,
      ldx: s.ldx,
      offX: s.offX,
      alpha: s.alpha,
      beta: s.accumulate ? 1 : 0,
      ...dropoutParams(s.dropout),
    },
    [Math.ceil(s.C / 64), Math.ceil(s.R / 16)],
  );
}

interface UpShape {
  M: number;
  C: number;
  R: number;
  ldy: number;
  offY: number;
  /** L stored [R, C] (lora_A) instead of [C, R] (lora_B). */
  transL: boolean;
  alpha: number;
  accumulate: boolean;
  dropout?: DropoutSpec | null;
}

/** Y (+)= alpha · mask ∘ (U·op(L)) (kernels/lora_up.wgsl), the dense-weight path. */
export function recordLoraUp(rec: Recorder, U: Binding, L: Binding, Y: Binding, s: UpShape): void {
  const k = getKernel(rec.gpu, { ...LORA_UP, constants: { TRANS_L: s.transL ? 1 : 0 } });
  rec.dispatch(
    k,
    [U, L, Y],
    {
      M: s.M,
      C: s.C,
      R: s.R,
      ldy: s.ldy,
      offY: s.offY,
      alpha: s.alpha,
      beta: s.accumulate ? 1 : 0,
      ...dropoutParams(s.dropout),
    },
    [Math.ceil(s.C / 64), Math.ceil(s.M / 4)],
  );
}
