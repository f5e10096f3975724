/**
 * Row and elementwise cases: RMSNorm forward and backward, RoPE on q, GEGLU forward and backward
 * (src/model/ops/rmsnorm.ts, rope.ts, geglu.ts). Their FLOP counts are nominal per element (stated in each
 * case's flopNote); their bytes are what decides their speed.
 */
import { createBuffer, upload } from "../../gpu/buffers.ts";
import { geglu, gegluBackward } from "../../model/ops/geglu.ts";
import { rmsnorm, rmsnormBackward } from "../../model/ops/rmsnorm.ts";
import { rope, ropeInvFreq } from "../../model/ops/rope.ts";
import type { CaseContext, KernelCase } from "./context.ts";

export function normCases(x: CaseContext): KernelCase[] {
  const { gpu, N, H, x32, y, dx } = x;
  const w = x.fill.f32("norm.w", H, -0.1, 0.1);
  const rstd = createBuffer(gpu, "norm.rstd", N * 4);
  const nH = N * H;
  return [
    {
      name: "rmsnorm fwd",
      family: "rmsnorm",
      shape: `[${N},${H}]`,
      flop: 4 * nH,
      flopNote: "nominal 4 FLOP per element",
      subgroups: true,
      bytes: 2 * nH * 4 + H * 4 + N * 4,
      record: (rec) => rmsnorm(rec, x32, w, y, rstd, { rows: N, dim: H, eps: 1e-6 }),
    },
    {
      name: "rmsnorm bwd",
      family: "rmsnorm",
      shape: `[${N},${H}]`,
      flop: 8 * nH,
      flopNote: "nominal 8 FLOP per element",
      subgroups: true,
      bytes: 3 * nH * 4 + H * 4 + N * 4,
      record: (rec) => rmsnormBackward(rec, x32, y, w, rstd, dx, { rows: N, dim: H }),
    },
  ];
}

export function ropeCases(x: CaseContext): KernelCase[] {
  const { gpu, o, N, QD } = x;
  const c = o.config;
  const invFreq = upload(gpu, "rope.invFreq", ropeInvFreq(c.head_dim, c.rope_theta));
  const q = x.fill.f32("rope.q", N * QD);
  const s = { B: o.batch, T: o.seq, H: c.num_attention_heads, D: c.head_dim };
  return [{
    name: "rope fwd",
    family: "rope",
    shape: `q [${N},${s.H},${s.D}] in place`,
    flop: 3 * N * QD,
    flopNote: "nominal 6 FLOP per rotated pair",
    bytes: 2 * N * QD * 4,
    record: (rec) => rope(rec, q, invFreq, s),
  }];
}

export function gegluCases(x: CaseContext): KernelCase[] {
  const { gpu, N, I } = x;
  const gate = x.fill.f32("geglu.gate", N * I, -3, 3);
  const up = x.fill.f32("geglu.up", N * I);
  const h = createBuffer(gpu, "geglu.h", N * I * 4);
  const dgate = createBuffer(gpu, "geglu.dgate", N * I * 4);
  const dup = createBuffer(gpu, "geglu.dup", N * I * 4);
  const nI = N * I;
  const shape = `[${N},${I}]`;
  return [
    {
      name: "geglu fwd",
      family: "geglu",
      shape,
      flop: 10 * nI,
      flopNote: "nominal 10 FLOP per element (tanh counted once)",
      bytes: 3 * nI * 4,
      record: (rec) => geglu(rec, gate, up, h, { rows: N, cols: I }),
    },
    {
      name: "geglu bwd",
      family: "geglu",
      shape,
      flop: 18 * nI,
      flopNote: "nominal 18 FLOP per element",
      bytes: 5 * nI * 4,
      record: (rec) => gegluBackward(rec, h, gate, up, dgate, dup, { rows: N, cols: I }),
    },
  ];
}
