/**
 * NF4 projection cases (the frozen base weight, src/model/ops/linear.ts): the forward and the input gradient
 * of q_proj (a LoRA target) and gate_proj (the largest), then the decode-sized forwards with one token
 * (Decoder.step runs the projections with tokens = rows = 1).
 */
import {
  linearBackward,
  linearFlops,
  linearForward,
  nf4Bytes,
  type Nf4Weight,
} from "../../model/ops/linear.ts";
import type { CaseContext, KernelCase } from "./context.ts";

/** Bytes of an NF4 weight [out, inF]: packed codes, block scales, second-level scales. */
export function nf4WeightBytes(out: number, inF: number): number {
  const b = nf4Bytes(out * inF);
  return b.packed + b.qabsmax + b.absmax2;
}

/** One benchmarked projection: its NF4 weight and its shape over the context's tokens. */
export interface Nf4Projection {
  name: string;
  w: Nf4Weight;
  inF: number;
  outF: number;
  s: { tokens: number; inF: number; outF: number; compute: "f16" | "f32" };
}

export function nf4Projections(x: CaseContext): { q: Nf4Projection; gate: Nf4Projection } {
  const proj = (name: string, inF: number, outF: number): Nf4Projection => ({
    name,
    w: x.fill.nf4(name, outF, inF),
    inF,
    outF,
    s: { tokens: x.N, inF, outF, compute: x.o.compute },
  });
  return { q: proj("q_proj", x.H, x.QD), gate: proj("gate_proj", x.H, x.I) };
}

export function nf4Cases(x: CaseContext, p: { q: Nf4Projection; gate: Nf4Projection }): KernelCase[] {
  const { N, x32, y, dx } = x;
  const ops = `${x.o.compute} operands`;
  const both = [p.q, p.gate];
  return [
    ...both.map((q): KernelCase => ({
      name: `nf4 matmul ${q.name}`,
      family: "nf4",
      shape: `y[${N},${q.outF}] = x[${N},${q.inF}]·W_nf4[${q.outF},${q.inF}]ᵀ, ${ops}`,
      flop: linearFlops(q.s),
      bytes: N * q.inF * 4 + nf4WeightBytes(q.outF, q.inF) + N * q.outF * 4,
      subgroups: q === p.q,
      record: (rec) => linearForward(rec, { x: x32, weight: q.w, y }, q.s),
    })),
    ...both.map((q): KernelCase => ({
      name: `nf4 dx ${q.name}`,
      family: "nf4",
      shape: `dx[${N},${q.inF}] = dy[${N},${q.outF}]·W_nf4[${q.outF},${q.inF}], ${ops}`,
      flop: linearFlops(q.s),
      bytes: N * q.outF * 4 + nf4WeightBytes(q.outF, q.inF) + N * q.inF * 4,
      subgroups: q === p.q,
      record: (rec) => linearBackward(rec, { dy: x32, x: x32, weight: q.w, dx }, q.s),
    })),
    ...nf4DecodeCases(x, p),
  ];
}

/**
 * One token: q_proj and gate_proj with the device's kernels, and q_proj with the GPU family's small-M kernel
 * (nf4_matvec.wgsl: partial dot products added by wg_sum_n) forced, since software adapters choose register
 * blocks for decode.
 */
function nf4DecodeCases(x: CaseContext, p: { q: Nf4Projection; gate: Nf4Projection }): KernelCase[] {
  const { H, x32, y } = x;
  const one = (q: Nf4Projection) => ({
    s: { ...q.s, tokens: 1 },
    shape: `y[1,${q.outF}] = x[1,${H}]·W_nf4[${q.outF},${H}]ᵀ (decode), ${x.o.compute} operands`,
    bytes: H * 4 + nf4WeightBytes(q.outF, H) + q.outF * 4,
  });
  const q1 = one(p.q), g1 = one(p.gate);
  return [
    {
      name: "nf4 matmul q_proj 1 tok",
      family: "nf4",
      shape: q1.shape,
      flop: linearFlops(q1.s),
      bytes: q1.bytes,
      subgroups: true,
      record: (rec) => linearForward(rec, { x: x32, weight: p.q.w, y }, q1.s),
    },
    {
      name: "nf4 matmul gate 1 tok",
      family: "nf4",
      shape: g1.shape,
      flop: linearFlops(g1.s),
      bytes: g1.bytes,
      record: (rec) => linearForward(rec, { x: x32, weight: p.gate.w, y }, g1.s),
    },
    {
      name: "nf4 matvec q_proj 1 tok (tiled family)",
      family: "nf4",
      shape: `${q1.shape}, nf4_matvec.wgsl`,
      flop: linearFlops(q1.s),
      bytes: q1.bytes,
      subgroups: true,
      record: (rec) => linearForward(rec, { x: x32, weight: p.q.w, y }, { ...q1.s, kernels: "tiled" }),
    },
  ];
}
