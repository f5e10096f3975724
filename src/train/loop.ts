/**
 * The training loop (docs/ARCHITECTURE.md#one-training-step, transformers' Trainer semantics):
 * - every epoch is one pass over that epoch's batches (a pure function of (seed, epoch));
 * - an optimizer step is a window of `gradient_accumulation_steps` micro-batches; the trailing partial window
 *   of an epoch steps too; the loss of a step is normalized by the target tokens of its whole window;
 * - LR of step k is the schedule at k-1; clipping and AdamW run on the GPU; one readback per optimizer step
 *   (TrainEngine.readStep: the loss sum and gradient norm together, for the loss watchdog and the log).
 * The loop is engine-agnostic (TrainEngine) so it can be tested with a fake engine.
 *
 * Throughput (issue #19): tokens_per_second counts real tokens (attention mask 1) only; the padding positions
 * the GPU also computed are logged apart (padded_tokens_per_second), so the two add up to the positions
 * processed. The window clock counts only the optimizer steps themselves (from recording the first micro-batch
 * to the step's readback), never evaluate (eval loss and generation, and the eval's log: the plots),
 * save (checkpoints) or log: a window that follows an eval is not slower for it. The state keeps train, eval
 * (its log included) and save seconds apart, so the summary splits the wall time and a resumed run reports
 * totals.
 */
import type { TrainingConfig } from "../config/schema.ts";
import { lrAtStep, type StepPlan } from "./schedule.ts";
import type { LogEntry, TrainerState } from "./state.ts";
import type { AdamWHyper } from "../gpu/ops/adamw.ts";
import type { EvalResult } from "../eval/loss.ts";

export interface TrainBatch {
  inputIds: Int32Array;
  labels: Int32Array;
  attentionMask: Uint8Array;
  rows: number;
  seqLen: number;
  /** Counted targets after the shift (labels[t+1] != -100 over real rows). */
  targetTokens: number;
}

export interface TrainEngine {
  /** Records zeroing of the LoRA gradients and the step's loss accumulator. */
  beginStep(): void;
  /** Forward + backward of one micro-batch; gradients and the loss sum accumulate, scaled by gradScale. */
  microBatch(batch: TrainBatch, gradScale: number, dropoutSeed: number): void;
  /** Clip + AdamW (after snapshotting the pre-step state for the watchdog). */
  optimizerStep(h: AdamWHyper, step: number): void;
  /** One readback: the window's summed token loss and the pre-clip gradient norm. */
  readStep(): Promise<{ lossSum: number; gradNorm: number }>;
  /** Restores the parameters and optimizer state from before the last optimizer step. */
  restoreSnapshot(): void;
}

export interface LoopHooks {
  /** Batches of an epoch, in order (a pure function of seed and epoch). */
  batchesForEpoch(epoch: number): TrainBatch[];
  evaluate?(step: number): Promise<EvalResult>;
  /** Saves a checkpoint for `step`; returns its directory. */
  save(step: number, state: TrainerState): Promise<string>;
  log(
    entry: LogEntry & {
      tokens_per_second?: number;
      padded_tokens_per_second?: number;
      elapsed_seconds?: number;
    },
    state: TrainerState,
  ): Promise<void>;
  /** Checked after every optimizer step: true stops the run after a checkpoint (Ctrl-C). */
  interrupted(): boolean;
  /** Milliseconds of a monotonic clock (default performance.now; tests pass a fake one). */
  clock?: () => number;
}

/** Real (attention-mask 1) and padding positions of a batch. */
export function batchTokens(b: TrainBatch): { real: number; padding: number } {
  let real = 0;
  for (let i = 0; i < b.attentionMask.length; i++) real += b.attentionMask[i] ? 1 : 0;
  return { real, padding: b.rows * b.seqLen - real };
}

export type StopReason = "completed" | "interrupted" | "early_stopping" | "watchdog";

export interface LoopResult {
  state: TrainerState;
  reason: StopReason;
  message?: string;
}

/** Dropout seed of a micro-batch: a pure function of (seed, step, micro index), so a resumed run matches. */
export function dropoutSeed(seed: number, step: number, micro: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [step, micro]) {
    h = Math.imul(h ^ v, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

export function newTrainerState(t: TrainingConfig, plan: StepPlan): TrainerState {
  return {
    global_step: 0,
    epoch: 0,
    max_steps: plan.totalSteps,
    num_train_epochs: t.num_train_epochs,
    logging_steps: t.logging_steps,
    eval_steps: t.eval_steps,
    save_steps: t.save_steps,
    train_batch_size: t.per_device_train_batch_size,
    log_history: [],
    best_metric: null,
    best_model_checkpoint: null,
    early_stopping_patience_counter: 0,
    train_tokens: 0,
    train_padding_tokens: 0,
    train_seconds: 0,
    eval_seconds: 0,
    save_seconds: 0,
    eval_pending: false,
  };
}

/** Windows (lists of batch indices) of one epoch: accumulation windows, the last one possibly partial. */
export function epochWindows(nBatches: number, accum: number): number[][] {
  const w: number[][] = [];
  for (let i = 0; i < nBatches; i += accum) {
    w.push(Array.from({ length: Math.min(accum, nBatches - i) }, (_, j) => i + j));
  }
  return w;
}

export async function trainLoop(
  engine: TrainEngine,
  t: TrainingConfig,
  plan: StepPlan,
  state: TrainerState,
  hooks: LoopHooks,
): Promise<LoopResult> {
  const h = (lr: number): AdamWHyper => ({
    lr,
    weightDecay: t.weight_decay,
    beta1: t.adam_beta1,
    beta2: t.adam_beta2,
    eps: t.adam_epsilon,
    maxGradNorm: t.max_grad_norm,
  });
  const evalEvery = t.eval_steps > 0 ? t.eval_steps : plan.stepsPerEpoch;
  const saveEvery = t.save_steps > 0 ? t.save_steps : plan.stepsPerEpoch;
  const higherIsBetter = !/loss|perplexity/.test(t.metric_for_best_model);
  let badLossRun = 0;
  let logLossSum = 0;
  let logLossSteps = 0;
  let logTokens = 0;
  let logPadding = 0;
  /** Milliseconds of optimizer steps in the current log window. */
  let logTrainMs = 0;
  const clock = hooks.clock ?? (() => performance.now());
  const runStart = clock() - (state.train_seconds + state.eval_seconds + state.save_seconds) * 1000;
  const timed = async <T>(kind: "eval_seconds" | "save_seconds", f: () => Promise<T>): Promise<T> => {
    const t0 = clock();
    try {
      return await f();
    } finally {
      state[kind] += (clock() - t0) / 1000;
    }
  };
  const evaluate = hooks.evaluate;
  // training.save_every_minutes: a checkpoint at least that often whatever save_steps says, so a preempted VM
  // loses at most that much work.
  const saveEveryMs = t.save_every_minutes * 60_000;
  let lastSave = clock();
  const save = async (step: number) => {
    const dir = await timed("save_seconds", () => hooks.save(step, state));
    lastSave = clock();
    return dir;
  };
  /** Evaluates the weights of `step`: logs the row, tracks the best metric and early stopping. */
  const runEval = async (evaluate: (step: number) => Promise<EvalResult>, step: number) => {
    const ev = await timed("eval_seconds", () => evaluate(step));
    const entry = { step, epoch: state.epoch, ...ev };
    state.log_history.push(entry);
    const metric = ev[t.metric_for_best_model];
    const improved = metric !== undefined &&
      (state.best_metric === null ||
        (higherIsBetter ? metric > state.best_metric : metric < state.best_metric));
    if (improved) {
      state.best_metric = metric;
      state.early_stopping_patience_counter = 0;
    } else if (metric !== undefined) {
      state.early_stopping_patience_counter++;
    }
    await timed("eval_seconds", () => hooks.log(entry, state)); // e.g. the plot render
    // The best checkpoint is the one saved at this step (the caller forces a save so that it exists).
    if (improved) state.best_model_checkpoint = `checkpoint-${step}`;
    const stopEarly = t.early_stopping_patience > 0 &&
      state.early_stopping_patience_counter >= t.early_stopping_patience;
    return { improved, stopEarly };
  };
  const earlyStop = (): LoopResult => ({
    state,
    reason: "early_stopping",
    message: `early stopping: no eval improvement for ${t.early_stopping_patience} evaluations`,
  });

  if (t.eval_on_start && state.global_step === 0 && evaluate) {
    const ev = await timed("eval_seconds", () => evaluate(0));
    const entry = { step: 0, epoch: 0, ...ev };
    state.log_history.push(entry);
    await timed("eval_seconds", () => hooks.log(entry, state)); // e.g. the plot render
  }
  // A run stopped by a signal when an eval was due saved before that eval: evaluate those weights now, then
  // save the same step again so that its checkpoint records the eval.
  if (state.eval_pending) {
    const r = evaluate ? await runEval(evaluate, state.global_step) : null;
    state.eval_pending = false;
    await save(state.global_step);
    if (r?.stopEarly) return earlyStop();
  } else if (
    t.early_stopping_patience > 0 && state.early_stopping_patience_counter >= t.early_stopping_patience
  ) {
    return earlyStop(); // resumed from the checkpoint that stopped early: nothing more to train
  }

  while (state.global_step < plan.totalSteps) {
    const step = state.global_step + 1;
    const epoch = Math.floor((step - 1) / plan.stepsPerEpoch);
    const windowIndex = (step - 1) % plan.stepsPerEpoch;
    const batches = hooks.batchesForEpoch(epoch);
    const windows = epochWindows(batches.length, t.gradient_accumulation_steps);
    const window = windows[windowIndex].map((i) => batches[i]);
    const targets = window.reduce((a, b) => a + b.targetTokens, 0);
    const lr = lrAtStep(step, plan, t);

    const stepStart = clock();
    engine.beginStep();
    window.forEach((b, micro) =>
      engine.microBatch(b, targets > 0 ? 1 / targets : 0, dropoutSeed(t.seed, step, micro))
    );
    engine.optimizerStep(h(lr), step);
    const counts = window.map(batchTokens);
    const tokens = counts.reduce((a, c) => a + c.real, 0);
    const padding = counts.reduce((a, c) => a + c.padding, 0);

    const needLog = step % t.logging_steps === 0 || step === plan.totalSteps;
    const { lossSum, gradNorm } = await engine.readStep();
    const stepMs = clock() - stepStart;
    const loss = targets > 0 ? lossSum / targets : 0;
    state.global_step = step;
    state.epoch = epoch + (windowIndex + 1) / plan.stepsPerEpoch;
    state.train_tokens += tokens;
    state.train_padding_tokens += padding;
    state.train_seconds += stepMs / 1000;
    logTokens += tokens;
    logPadding += padding;
    logTrainMs += stepMs;

    // Watchdog: a NaN/Inf loss, or a loss above the threshold for `patience` steps in a row.
    const bad = !Number.isFinite(loss) || !Number.isFinite(gradNorm);
    badLossRun = bad || loss > t.loss_watchdog_threshold ? badLossRun + 1 : 0;
    if (bad || badLossRun >= t.loss_watchdog_patience) {
      engine.restoreSnapshot();
      state.global_step = step - 1;
      state.epoch = (step - 1) / plan.stepsPerEpoch;
      const dir = await save(state.global_step);
      return {
        state,
        reason: "watchdog",
        message: `loss watchdog at step ${step}: loss ${loss}, grad_norm ${gradNorm} ` +
          `(threshold ${t.loss_watchdog_threshold}, patience ${t.loss_watchdog_patience}); the last good state is saved in ${dir}. ` +
          `Lower training.learning_rate or check the data, then --resume.`,
      };
    }

    logLossSum += loss;
    logLossSteps++;
    if (needLog) {
      const seconds = Math.max(1e-9, logTrainMs / 1000);
      const entry = {
        step,
        epoch: state.epoch,
        loss: logLossSum / logLossSteps,
        // transformers logs the LR after the scheduler step, i.e. the LR of the next step.
        learning_rate: step < plan.totalSteps ? lrAtStep(step + 1, plan, t) : 0,
        grad_norm: gradNorm,
        tokens_per_second: logTokens / seconds,
        padded_tokens_per_second: logPadding / seconds,
        // Wall clock since the run started (eval and save included), as before.
        elapsed_seconds: (clock() - runStart) / 1000,
      };
      state.log_history.push({
        step: entry.step,
        epoch: entry.epoch,
        loss: entry.loss,
        learning_rate: entry.learning_rate,
        grad_norm: entry.grad_norm,
      });
      await hooks.log(entry, state);
      logLossSum = 0;
      logLossSteps = 0;
      logTokens = 0;
      logPadding = 0;
      logTrainMs = 0;
    }

    const evalDue = evaluate !== undefined && (step % evalEvery === 0 || step === plan.totalSteps);
    // A stop request (a preemption notice gives seconds; an eval with generation takes minutes) checkpoints
    // before a due eval; the resumed run evaluates first (state.eval_pending).
    const deferEval = evalDue && hooks.interrupted();
    const r = evalDue && !deferEval ? await runEval(evaluate, step) : null;
    state.eval_pending = deferEval;
    const interrupted = hooks.interrupted();
    const byTime = saveEveryMs > 0 && clock() - lastSave >= saveEveryMs;
    if (
      step % saveEvery === 0 || step === plan.totalSteps || r?.stopEarly || interrupted || r?.improved ||
      byTime
    ) {
      await save(step);
    }
    if (r?.stopEarly) return earlyStop();
    if (interrupted) return { state, reason: "interrupted" };
  }
  return { state, reason: "completed" };
}
