/**
 * The evaluation loss: token-weighted mean NLL over every target token of a list of batches, forward only
 * (no dropout, no gradients), one readback at the end. Used by `maieutic eval` (src/eval/run.ts) and by the
 * trainer's evaluation at epoch ends (src/eval/in_training.ts).
 */
import type { Batch } from "../data/batch.ts";
import { readF32 } from "../gpu/readback.ts";
import { Recorder } from "../gpu/recorder.ts";
import type { Gemma2Engine } from "../model/engine.ts";

/** The fields of a batch the loss reads (the trainer's TrainBatch has them too). */
export type LossBatch = Pick<Batch, "inputIds" | "labels" | "attentionMask" | "rows" | "seqLen">;

/** What an evaluation reports (training_metrics.csv columns): loss, perplexity, and optional metrics. */
export interface EvalResult {
  eval_loss: number;
  eval_perplexity: number;
  [metric: string]: number;
}

/** Token-weighted mean NLL over all target tokens of `batches` (eval: no dropout). */
export async function evalLoss(
  engine: Gemma2Engine,
  batches: LossBatch[],
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
