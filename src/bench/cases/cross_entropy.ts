/**
 * The fused lm_head + softcap + cross-entropy cases (src/model/ops/cross_entropy.ts), forward and backward,
 * over a slice of the vocabulary held in one table piece (at most one binding of rows).
 */
import { createBuffer, upload } from "../../gpu/buffers.ts";
import {
  ceChunkFor,
  type CrossEntropyScratch,
  lmHeadCeBackward,
  lmHeadCeForward,
} from "../../model/ops/cross_entropy.ts";
import type { CaseContext, KernelCase } from "./context.ts";

export function crossEntropyCases(x: CaseContext): KernelCase[] {
  const { gpu, o, N, H, x32 } = x;
  const c = o.config;
  const tableType = o.compute;
  const eb = tableType === "f16" ? 2 : 4;
  const maxBinding = gpu.limits.maxStorageBufferBindingSize;
  const Vs = Math.min(c.vocab_size, o.ceVocab ?? 4096, Math.floor((maxBinding - 16) / (H * eb)));
  const table = tableType === "f16"
    ? x.fill.f16("ce.table", Vs * H, -0.05, 0.05)
    : x.fill.f32("ce.table", Vs * H, -0.05, 0.05);
  const chunk = ceChunkFor(N, maxBinding);
  const ce: CrossEntropyScratch = {
    chunkLogits: createBuffer(gpu, "ce.chunk", N * chunk * 4),
    rowState: createBuffer(gpu, "ce.rowState", 3 * N * 4),
    rows: N,
    chunk,
  };
  const targets = upload(gpu, "ce.targets", Int32Array.from({ length: N }, (_, i) => (i * 7919) % Vs));
  const lse = createBuffer(gpu, "ce.lse", N * 4);
  const tokenLoss = createBuffer(gpu, "ce.tokenLoss", N * 4);
  const loss = createBuffer(gpu, "ce.loss", 16);
  const dh = createBuffer(gpu, "ce.dh", N * H * 4);
  const s = { N, dim: H, V: Vs, tableType, softcap: c.final_logit_softcapping ?? null };
  const pieces = [{ buffer: table, rowStart: 0, rows: Vs }];
  const tb = Vs * H * eb;
  const shape =
    `h[${N},${H}]·E[${Vs},${H}]ᵀ (vocab slice of ${c.vocab_size}), chunks of ${chunk}, ${tableType} table`;
  return [
    {
      name: "cross_entropy fwd",
      family: "cross_entropy",
      shape,
      flop: 2 * N * Vs * H,
      bytes: N * H * 4 + tb + 3 * N * 4,
      record: (rec) => lmHeadCeForward(rec, { h: x32, table: pieces, targets, lse, tokenLoss, loss }, ce, s),
    },
    {
      name: "cross_entropy bwd",
      family: "cross_entropy",
      shape: shape + " (logits recomputed, then dh)",
      flop: 4 * N * Vs * H,
      bytes: N * H * 4 + tb + 2 * N * 4 + N * H * 4,
      record: (rec) =>
        lmHeadCeBackward(rec, { h: x32, table: pieces, targets, lse, dh }, ce, s, { gradScale: 1 / N }),
    },
  ];
}
