/**
 * The trainer's optimizer state over one flat arena of all LoRA parameters (docs/ARCHITECTURE.md#one-training-step):
 * AdamW's moments, the norm statistics and the snapshot the loss watchdog restores. The step's kernels
 * (clip_grad_norm_ + AdamW) are src/gpu/ops/adamw.ts; the trainer reads `stats` with the loss once per step.
 */
import type { Recorder } from "../gpu/recorder.ts";
import { NORM_PARTIALS, type OptimizerBuffers } from "../gpu/ops/adamw.ts";
import type { Gemma2Engine } from "../model/engine.ts";

/** The buffers plus copies of param, m and v from before the last step (the loss watchdog restores them). */
export interface OptimizerState extends OptimizerBuffers {
  snapshot: readonly [GPUBuffer, GPUBuffer, GPUBuffer];
}

/**
 * The optimizer's state for a training engine's LoRA arena, from the engine's pool (kind "optimizer", so the
 * memory plan counts it): AdamW's m and v, the norm statistics and partials, and the snapshot.
 */
export function allocOptimizer(engine: Pick<Gemma2Engine, "pool" | "lora">): OptimizerState {
  const lora = engine.lora;
  if (!lora?.grad) throw new Error("allocOptimizer needs a training engine with LoRA parameters");
  const bytes = lora.layout.total * 4;
  const pool = engine.pool;
  const opt = (label: string) => pool.persistent(label, "optimizer", bytes);
  return {
    n: lora.layout.total,
    param: lora.param,
    grad: lora.grad,
    m: opt("adam.m"),
    v: opt("adam.v"),
    stats: pool.persistent("opt.stats", "optimizer", 16),
    partials: pool.persistent("opt.partials", "optimizer", NORM_PARTIALS * 4),
    snapshot: [opt("snap.param"), opt("snap.m"), opt("snap.v")],
  };
}

/** Copies param/m/v aside (the loss watchdog restores them when a step goes bad). */
export function recordSnapshot(rec: Recorder, o: OptimizerState): void {
  const bytes = o.n * 4;
  rec.copy(o.param, 0, o.snapshot[0], 0, bytes);
  rec.copy(o.m, 0, o.snapshot[1], 0, bytes);
  rec.copy(o.v, 0, o.snapshot[2], 0, bytes);
}

export function recordRestore(rec: Recorder, o: OptimizerState): void {
  const bytes = o.n * 4;
  rec.copy(o.snapshot[0], 0, o.param, 0, bytes);
  rec.copy(o.snapshot[1], 0, o.m, 0, bytes);
  rec.copy(o.snapshot[2], 0, o.v, 0, bytes);
}
