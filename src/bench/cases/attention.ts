/**
 * Tiled attention cases (src/model/ops/attention.ts), forward and backward, on a global layer of the model
 * (the sliding layers equal it while T ≤ window) with every key real.
 */
import { createBuffer, upload } from "../../gpu/buffers.ts";
import { attentionHeads } from "../../model/layer.ts";
import {
  attentionBackward,
  attentionFlops,
  attentionForward,
  type AttentionShape,
} from "../../model/ops/attention.ts";
import type { CaseContext, KernelCase } from "./context.ts";

export function attentionCases(x: CaseContext): KernelCase[] {
  const { gpu, o, N, QD, KVD } = x;
  const as: AttentionShape = { B: o.batch, T: o.seq, ...attentionHeads(o.config, 0), window: null };
  const q = x.fill.f32("att.q", N * QD);
  const k = x.fill.f32("att.k", N * KVD);
  const v = x.fill.f32("att.v", N * KVD);
  const out = createBuffer(gpu, "att.o", N * QD * 4);
  const lse = createBuffer(gpu, "att.lse", N * as.Hq * 4);
  const dq = createBuffer(gpu, "att.dq", N * QD * 4);
  const dk = createBuffer(gpu, "att.dk", N * KVD * 4);
  const dv = createBuffer(gpu, "att.dv", N * KVD * 4);
  const scratch = createBuffer(gpu, "att.scratch", 2 * N * as.Hq * 4);
  const mask = upload(gpu, "att.mask", new Uint32Array(N).fill(1));
  const shape = `B ${o.batch}, T ${o.seq}, Hq ${as.Hq}, Hkv ${as.Hkv}, D ${as.D}, causal, softcap`;
  return [
    {
      name: "attention fwd",
      family: "attention",
      shape,
      flop: attentionFlops(as, "fwd"),
      bytes: (2 * N * QD + 2 * N * KVD + N * as.Hq) * 4,
      record: (rec) => attentionForward(rec, q, k, v, out, lse, mask, as),
    },
    {
      name: "attention bwd",
      family: "attention",
      shape,
      flop: attentionFlops(as, "bwd"),
      bytes: (5 * N * QD + 4 * N * KVD + N * as.Hq) * 4,
      record: (rec) => attentionBackward(rec, x.x32, q, k, v, out, lse, mask, dq, dk, dv, as, scratch),
    },
  ];
}
