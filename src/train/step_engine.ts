/**
 * The engine as the training loop sees it (TrainEngine): one command buffer per micro-batch (the first also
 * zeroes the gradients), one for the optimizer step, and a single readback per step: the optimizer's command
 * buffer copies the loss sum and the gradient norm side by side into a mappable buffer the engine keeps, so
 * reading them costs one mapAsync and allocates nothing (docs/ARCHITECTURE.md#one-training-step: no allocation in the steady state).
 * The evaluation loss over a list of batches is src/eval/loss.ts.
 */
import type { Gemma2Engine } from "../model/engine.ts";
import { Recorder } from "../gpu/recorder.ts";
import { checkKernels } from "../gpu/kernel.ts";
import { waitGpu } from "../gpu/device.ts";
import type { TrainBatch, TrainEngine } from "./loop.ts";
import { allocOptimizer, type OptimizerState, recordRestore, recordSnapshot } from "./optimizer.ts";
import { type AdamWHyper, recordAdamW, recordClip } from "../gpu/ops/adamw.ts";

export class GpuTrainEngine implements TrainEngine {
  /** [loss sum, target count, grad norm, clip factor] of the last optimizer step, mappable. */
  private readonly scalars: GPUBuffer;
  private zeroGradPending = false;
  private reading = false;

  /** The optimizer state (AdamW moments, snapshot); allocated from the engine's pool unless given. */
  readonly optimizer: OptimizerState;

  constructor(readonly engine: Gemma2Engine, optimizer?: OptimizerState) {
    if (!engine.gpu || !engine.lora?.grad) throw new Error("GpuTrainEngine needs a training engine on a GPU");
    this.optimizer = optimizer ?? allocOptimizer(engine);
    this.scalars = engine.gpu.device.createBuffer({
      label: "step-scalars",
      size: 16,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  private rec(label: string): Recorder {
    return new Recorder(this.engine.gpu!, { label });
  }

  /** The gradients are zeroed at the start of the step's first micro-batch (no command buffer of its own). */
  beginStep(): void {
    this.zeroGradPending = true;
  }

  microBatch(b: TrainBatch, gradScale: number, dropoutSeed: number): void {
    const s = { B: b.rows, T: b.seqLen };
    this.engine.setBatch(b.inputIds, b.labels, b.attentionMask, s);
    const r = this.rec("micro-batch");
    if (this.zeroGradPending) {
      this.engine.recordZeroGrad(r);
      this.zeroGradPending = false;
    }
    this.engine.recordForward(r, s, { dropoutStep: dropoutSeed, accumulateLoss: true });
    this.engine.recordBackward(r, s, gradScale, dropoutSeed);
    r.submit();
  }

  optimizerStep(h: AdamWHyper, step: number): void {
    // The copy into the mappable buffer below is invalid while it is mapped: readStep must have finished.
    if (this.reading) throw new Error("optimizerStep while the previous step's readStep is still reading");
    const o = this.optimizer;
    const r = this.rec("optimizer");
    if (this.zeroGradPending) {
      // A step without micro-batches still starts from zero gradients.
      this.engine.recordZeroGrad(r);
      this.zeroGradPending = false;
    }
    recordSnapshot(r, o);
    recordClip(r, o, h.maxGradNorm);
    recordAdamW(r, o, h, step);
    r.copy(this.engine.loss, 0, this.scalars, 0, 8);
    r.copy(o.stats, 0, this.scalars, 8, 8);
    r.submit();
  }

  async readStep(): Promise<{ lossSum: number; gradNorm: number }> {
    this.reading = true;
    try {
      await checkKernels(this.engine.gpu!);
      await waitGpu(this.engine.gpu!, this.scalars.mapAsync(GPUMapMode.READ), "a training step");
      const v = new Float32Array(this.scalars.getMappedRange(0, 16).slice(0));
      this.scalars.unmap();
      return { lossSum: v[0], gradNorm: v[2] };
    } finally {
      this.reading = false;
    }
  }

  restoreSnapshot(): void {
    const r = this.rec("restore");
    recordRestore(r, this.optimizer);
    r.submit();
  }
}
