/**
 * The engine as the training loop sees it (TrainEngine): one command buffer per micro-batch, one for the
 * optimizer step, and a single readback per step (the loss sum and the gradient norm copied side by side).
 * Plus the evaluation loss over a list of batches (forward only, one readback at the end).
 */
import type { Gemma2Engine } from "../model/engine.ts";
import { Recorder } from "../gpu/recorder.ts";
import { readF32 } from "../gpu/readback.ts";
import { createBuffer } from "../gpu/buffers.ts";
import type { TrainBatch, TrainEngine } from "./loop.ts";
import { type AdamWHyper, recordAdamW, recordClip } from "./optimizer.ts";

export class GpuTrainEngine implements TrainEngine {
  private readonly scalars: GPUBuffer;

  constructor(readonly engine: Gemma2Engine) {
    if (!engine.gpu || !engine.optimizer) throw new Error("GpuTrainEngine needs a training engine on a GPU");
    this.scalars = createBuffer(engine.gpu, "step-scalars", 16);
  }

  private rec(label: string): Recorder {
    return new Recorder(this.engine.gpu!, { label });
  }

  beginStep(): void {
    const r = this.rec("zero-grad");
    this.engine.recordZeroGrad(r);
    r.submit();
  }

  microBatch(b: TrainBatch, gradScale: number, dropoutSeed: number): void {
    const s = { B: b.rows, T: b.seqLen };
    this.engine.setBatch(b.inputIds, b.labels, b.attentionMask, s);
    const r = this.rec("micro-batch");
    this.engine.recordForward(r, s, { dropoutStep: dropoutSeed, accumulateLoss: true });
    this.engine.recordBackward(r, s, gradScale, dropoutSeed);
    r.submit();
  }

  optimizerStep(h: AdamWHyper, step: number): void {
    const o = this.engine.optimizer!;
    const r = this.rec("optimizer");
    this.engine.recordSnapshot(r);
    recordClip(r, o, h.maxGradNorm);
    recordAdamW(r, o, h, step);
    r.copy(this.engine.loss, 0, this.scalars, 0, 8);
    r.copy(o.stats, 0, this.scalars, 8, 8);
    r.submit();
  }

  async readStep(): Promise<{ lossSum: number; gradNorm: number }> {
    const v = await readF32(this.engine.gpu!, this.scalars, 0, 4);
    return { lossSum: v[0], gradNorm: v[2] };
  }

  restoreSnapshot(): void {
    const r = this.rec("restore");
    this.engine.recordRestore(r);
    r.submit();
  }
}

/** Token-weighted mean NLL over all target tokens of `batches` (eval: no dropout). */
export async function evalLoss(
  engine: Gemma2Engine,
  batches: TrainBatch[],
): Promise<{ lossSum: number; count: number }> {
  const gpu = engine.gpu!;
  const r0 = new Recorder(gpu, { label: "eval-zero" });
  r0.clear(engine.loss);
  r0.submit();
  for (const b of batches) {
    const s = { B: b.rows, T: b.seqLen };
    engine.setBatch(b.inputIds, b.labels, b.attentionMask, s);
    const r = new Recorder(gpu, { label: "eval" });
    engine.recordForward(r, s, { dropoutStep: null, accumulateLoss: true });
    r.submit();
  }
  const v = await readF32(gpu, engine.loss, 0, 2);
  return { lossSum: v[0], count: v[1] };
}
