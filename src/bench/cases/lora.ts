/**
 * LoRA cases on q_proj's shape (PEFT `lora/layer.py`; src/model/ops/linear.ts): the branch alone (u =
 * dropout(x)·Aᵀ forward; du, dB, dA backward) and the whole QLoRA projection as the engine records it (NF4
 * base product with the LoRA slabs, forward and backward).
 */
import { createBuffer } from "../../gpu/buffers.ts";
import {
  linearBackward,
  linearFlops,
  linearForward,
  type LoraBranch,
  recordLoraDown,
  recordLoraGrad,
} from "../../model/ops/linear.ts";
import type { CaseContext, KernelCase } from "./context.ts";
import { type Nf4Projection, nf4WeightBytes } from "./nf4.ts";

/** q_proj's LoRA branch (rank o.r, scaling 2, the configured dropout), u and the gradient buffers. */
export interface LoraBuffers {
  branch: LoraBranch;
  u: GPUBuffer;
  du: GPUBuffer;
  dA: GPUBuffer;
  dB: GPUBuffer;
}

export function loraBuffers(x: CaseContext): LoraBuffers {
  const { gpu, N, H, QD } = x;
  const r = x.o.r;
  const A = x.fill.f32("lora.A", r * H, -0.02, 0.02);
  const B = x.fill.f32("lora.B", QD * r, -0.02, 0.02);
  const u = x.fill.f32("lora.u", N * r);
  const p = x.o.loraDropout;
  return {
    branch: { A, B, r, scaling: 2, dropout: p > 0 ? { p, seed: 0, step: 1, stream: 0 } : null },
    u,
    du: createBuffer(gpu, "lora.du", N * r * 4),
    dA: createBuffer(gpu, "lora.dA", r * H * 4),
    dB: createBuffer(gpu, "lora.dB", QD * r * 4),
  };
}

export function loraCases(x: CaseContext, l: LoraBuffers): KernelCase[] {
  const { N, H, QD, x32 } = x;
  const { r, dropout } = l.branch;
  return [
    {
      name: "lora fwd q_proj",
      family: "lora",
      shape: `u[${N},${r}] = dropout(x)[${N},${H}]·A[${r},${H}]ᵀ`,
      flop: 2 * N * r * H,
      bytes: (N * H + r * H + N * r) * 4,
      record: (rec) =>
        recordLoraDown(rec, x32, l.branch.A, l.u, {
          M: N,
          R: r,
          K: H,
          ldx: H,
          offX: 0,
          transL: false,
          alpha: 1,
          dropout,
        }),
    },
    {
      name: "lora bwd q_proj",
      family: "lora",
      shape: `du = s·dy·B, dB += s·dyᵀ·u, dA += duᵀ·dropout(x); r ${r}, in ${H}, out ${QD}`,
      flop: 2 * N * r * (2 * QD + H),
      bytes: (2 * N * QD + N * H + 3 * N * r + 2 * (QD * r + r * H)) * 4,
      record: (rec) => {
        const grad = { M: N, R: r, offX: 0, accumulate: true };
        recordLoraDown(rec, x32, l.branch.B, l.du, {
          M: N,
          R: r,
          K: QD,
          ldx: QD,
          offX: 0,
          transL: true,
          alpha: 2,
        });
        recordLoraGrad(rec, l.u, x32, l.dB, { ...grad, C: QD, ldx: QD, alpha: 2, transOut: true });
        recordLoraGrad(rec, l.du, x32, l.dA, { ...grad, C: H, ldx: H, alpha: 1, transOut: false, dropout });
      },
    },
  ];
}

/** q_proj with its NF4 weight and LoRA branch, as Gemma2Engine records it. */
export function qloraCases(x: CaseContext, q: Nf4Projection, l: LoraBuffers): KernelCase[] {
  const { N, H, QD, x32, y, dx } = x;
  const r = l.branch.r;
  const w = nf4WeightBytes(QD, H);
  return [
    {
      name: "qlora fwd q_proj",
      family: "qlora",
      shape: `NF4 + LoRA r${r} as the engine records it (lora_down, then nf4_matmul with LoRA slabs)`,
      flop: linearFlops(q.s, r),
      bytes: N * H * 4 + w + N * QD * 4 + (r * H + QD * r + N * r) * 4,
      record: (rec) => linearForward(rec, { x: x32, weight: q.w, lora: l.branch, y, u: l.u }, q.s),
    },
    {
      name: "qlora bwd q_proj",
      family: "qlora",
      shape: `du, dB, dA, then nf4_matmul_dx with LoRA slabs; r ${r}`,
      flop: linearFlops(q.s) + 2 * N * r * (2 * QD + 2 * H),
      bytes: N * QD * 4 + N * H * 4 + w + N * H * 4 + (3 * N * r + 2 * (QD * r + r * H)) * 4,
      record: (rec) =>
        linearBackward(rec, {
          dy: x32,
          x: x32,
          weight: q.w,
          lora: l.branch,
          u: l.u,
          du: l.du,
          grads: { dA: l.dA, dB: l.dB, accumulate: true },
          dx,
        }, q.s),
    },
  ];
}
