// The loop's side of preemptible training (src/train/loop.ts): checkpoints by time, a stop request that defers a
// due eval to the resumed run, and a resumed run that had stopped early.
import { type LoopHooks, newTrainerState, type TrainEngine, trainLoop } from "../../src/train/loop.ts";
import { planSteps } from "../../src/train/schedule.ts";
import { TrainingSchema } from "../../src/config/schema.ts";
import type { TrainerState } from "../../src/train/state.ts";
import { oneRowTraining, tokenBatch } from "./loop_fakes.ts";

const batch = tokenBatch(1);

/** Loss 1 every step; each step advances the fake clock by `stepMs`. */
function engine(clock: { now: number }, stepMs: number): TrainEngine {
  return {
    beginStep() {},
    microBatch() {},
    optimizerStep() {
      clock.now += stepMs;
    },
    readStep: () => Promise.resolve({ lossSum: 1, gradNorm: 1 }),
    restoreSnapshot() {},
  };
}

interface Trace {
  saved: number[];
  evals: number[];
  rows: string[];
}

function hooks(trace: Trace, clock: { now: number }, o: { stopAfterLogOf?: number; evalLoss?: number } = {}) {
  let stop = false;
  const h: LoopHooks = {
    batchesForEpoch: () => Array.from({ length: 50 }, () => batch),
    evaluate: (step) => {
      trace.evals.push(step);
      return Promise.resolve({ eval_loss: o.evalLoss ?? 5 - step / 100, eval_perplexity: 1 });
    },
    save: (step) => {
      trace.saved.push(step);
      return Promise.resolve(`checkpoint-${step}`);
    },
    log: (entry) => {
      trace.rows.push(`${entry.step}${entry.eval_loss !== undefined ? "e" : ""}`);
      if (entry.step === o.stopAfterLogOf && entry.eval_loss === undefined) stop = true;
      return Promise.resolve();
    },
    interrupted: () => stop,
    clock: () => clock.now,
  };
  return h;
}

const newTrace = (): Trace => ({ saved: [], evals: [], rows: [] });

/**
 * One-row steps over 50 batches an epoch, no checkpoints by time, with `over` on top; its plan, a fake clock
 * at 0, and `run`: the loop from `state` with 1 ms steps, recording into `trace`.
 */
function setup(over: Record<string, unknown>) {
  const t = oneRowTraining({ save_every_minutes: 0, ...over });
  const plan = planSteps(50, t);
  const clock = { now: 0 };
  const run = (state: TrainerState, trace: Trace, o?: Parameters<typeof hooks>[2]) =>
    trainLoop(engine(clock, 1), t, plan, state, hooks(trace, clock, o));
  return { t, plan, clock, run };
}

Deno.test("save_every_minutes checkpoints by wall-clock time between step-based saves", async () => {
  const { t, plan, clock } = setup({
    max_steps: 10,
    save_steps: 100,
    eval_steps: 100,
    save_every_minutes: 1,
  });
  const trace = newTrace();
  // 25 s per step: a minute has passed after steps 3, 6 and 9 (each checkpoint restarts the minute).
  await trainLoop(engine(clock, 25_000), t, plan, newTrainerState(t, plan), {
    ...hooks(trace, clock),
    evaluate: undefined,
  });
  if (trace.saved.join() !== "3,6,9,10") throw new Error(`saved at ${trace.saved}`);
  const off = newTrace();
  const t0 = TrainingSchema.parse({ ...t, save_every_minutes: 0 });
  await trainLoop(engine(clock, 25_000), t0, plan, newTrainerState(t0, plan), {
    ...hooks(off, clock),
    evaluate: undefined,
  });
  if (off.saved.join() !== "10") throw new Error(`save_every_minutes=0 saved at ${off.saved}`);
});

Deno.test("a stop request when an eval is due checkpoints first; the resumed run evaluates those weights first", async () => {
  const { t, plan, run } = setup({ max_steps: 8, save_steps: 100, eval_steps: 4 });
  const first = newTrace();
  const r1 = await run(newTrainerState(t, plan), first, { stopAfterLogOf: 4 });
  if (
    r1.reason !== "interrupted" || first.evals.length || first.saved.join() !== "4" || !r1.state.eval_pending
  ) {
    throw new Error(JSON.stringify({ r1: r1.reason, first, pending: r1.state.eval_pending }));
  }
  // The checkpoint round-trips through JSON, as trainer_state.json does.
  const resumed: TrainerState = JSON.parse(JSON.stringify(r1.state));
  const second = newTrace();
  const r2 = await run(resumed, second);
  if (r2.reason !== "completed" || r2.state.eval_pending) throw new Error(r2.reason);
  // Eval of step 4 first, then step 4 saved again (recording the eval and the best checkpoint), then steps 5..8.
  if (second.rows.join() !== "4e,5,6,7,8,8e" || second.saved.join() !== "4,8") {
    throw new Error(JSON.stringify(second));
  }
  if (r2.state.best_model_checkpoint !== "checkpoint-8") throw new Error(`${r2.state.best_model_checkpoint}`);
  // The same rows and history as a run never stopped.
  const whole = newTrace();
  const r3 = await run(newTrainerState(t, plan), whole);
  if ([...first.rows, ...second.rows].join() !== whole.rows.join()) {
    throw new Error(`${first.rows},${second.rows} != ${whole.rows}`);
  }
  const strip = (s: TrainerState) => JSON.stringify(s.log_history.map((e) => ({ ...e, elapsed_seconds: 0 })));
  if (strip(r2.state) !== strip(r3.state)) throw new Error("log_history differs from an uninterrupted run");
});

Deno.test("a run resumed from the checkpoint where it stopped early trains no further", async () => {
  const { t, plan, run } = setup({ max_steps: 20, eval_steps: 2, early_stopping_patience: 2 });
  const r1 = await run(newTrainerState(t, plan), newTrace(), { evalLoss: 3 });
  if (r1.reason !== "early_stopping") throw new Error(r1.reason);
  const again = newTrace();
  const r2 = await run(JSON.parse(JSON.stringify(r1.state)), again);
  if (
    r2.reason !== "early_stopping" || again.rows.length || again.saved.length || r2.state.global_step !== 6
  ) {
    throw new Error(JSON.stringify({ reason: r2.reason, again, step: r2.state.global_step }));
  }
});
