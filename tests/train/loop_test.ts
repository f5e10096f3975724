import {
  epochWindows,
  type LoopHooks,
  newTrainerState,
  type TrainBatch,
  type TrainEngine,
  trainLoop,
} from "../../src/train/loop.ts";
import { planSteps } from "../../src/train/schedule.ts";
import { TrainingSchema } from "../../src/config/schema.ts";
import type { AdamWHyper } from "../../src/gpu/ops/adamw.ts";
import { tokenBatch } from "./loop_fakes.ts";

/** Records what the loop asks for; the "loss" of a micro-batch is its id per target token. */
class FakeEngine implements TrainEngine {
  calls: string[] = [];
  lossSum = 0;
  nanAtStep = -1;
  steps: { step: number; lr: number; scales: number[] }[] = [];
  private scales: number[] = [];
  restored = 0;
  beginStep() {
    this.lossSum = 0;
    this.scales = [];
  }
  microBatch(b: TrainBatch, gradScale: number) {
    this.lossSum += b.inputIds[0] * b.targetTokens;
    this.scales.push(gradScale);
  }
  optimizerStep(h: AdamWHyper, step: number) {
    this.steps.push({ step, lr: h.lr, scales: this.scales });
    if (step === this.nanAtStep) this.lossSum = NaN;
  }
  readStep() {
    return Promise.resolve({ lossSum: this.lossSum, gradNorm: 1 });
  }
  restoreSnapshot() {
    this.restored++;
  }
}

function hooks(nBatches: number, saved: number[], opts: { interruptAt?: number } = {}): LoopHooks {
  let last = 0;
  return {
    batchesForEpoch: (e) => Array.from({ length: nBatches }, (_, i) => tokenBatch(100 * e + i, 1 + (i % 3))),
    save: (step) => {
      saved.push(step);
      return Promise.resolve(`checkpoint-${step}`);
    },
    log: (entry) => {
      last = entry.step;
      return Promise.resolve();
    },
    interrupted: () => opts.interruptAt !== undefined && last >= opts.interruptAt,
  };
}

Deno.test("epoch windows: full windows then a trailing partial one", () => {
  const w = epochWindows(10, 8);
  if (JSON.stringify(w) !== JSON.stringify([[0, 1, 2, 3, 4, 5, 6, 7], [8, 9]])) {
    throw new Error(JSON.stringify(w));
  }
});

Deno.test("loop: 10 batches, accumulation 8 -> 2 steps per epoch, token-normalized loss, LR schedule", async () => {
  const t = TrainingSchema.parse({ num_train_epochs: 3, per_device_train_batch_size: 4 });
  const plan = planSteps(37, t);
  const engine = new FakeEngine();
  const saved: number[] = [];
  const r = await trainLoop(engine, t, plan, newTrainerState(t, plan), hooks(10, saved));
  if (r.reason !== "completed" || r.state.global_step !== 6) {
    throw new Error(`${r.reason} ${r.state.global_step}`);
  }
  if (engine.steps.map((s) => s.scales.length).join() !== "8,2,8,2,8,2") throw new Error("window sizes");
  // Window 1 of epoch 0 holds batches 0..7 with targets 1,2,3,1,2,3,1,2 = 15
  if (Math.abs(engine.steps[0].scales[0] - 1 / 15) > 1e-15) throw new Error("grad scale");
  if (engine.steps[0].lr !== 0) throw new Error("step 1 uses lr 0 with warmup");
  const loss1 = r.state.log_history[0].loss!;
  const want = [0, 1, 2, 3, 4, 5, 6, 7].reduce((a, i) => a + i * (1 + (i % 3)), 0) / 15;
  if (Math.abs(loss1 - want) > 1e-12) throw new Error(`loss ${loss1} != ${want}`);
  if (saved.join() !== "2,4,6") throw new Error(`saves ${saved}`);
});

Deno.test("loop: interrupt saves a checkpoint and stops", async () => {
  const t = TrainingSchema.parse({ num_train_epochs: 3 });
  const plan = planSteps(37, t);
  const saved: number[] = [];
  const r = await trainLoop(
    new FakeEngine(),
    t,
    plan,
    newTrainerState(t, plan),
    hooks(10, saved, { interruptAt: 3 }),
  );
  if (r.reason !== "interrupted" || r.state.global_step !== 3 || saved.at(-1) !== 3) {
    throw new Error(`${r.reason} ${saved}`);
  }
});

Deno.test("loop: NaN loss fires the watchdog, restores and saves the last good step", async () => {
  const t = TrainingSchema.parse({ num_train_epochs: 3 });
  const plan = planSteps(37, t);
  const engine = new FakeEngine();
  engine.nanAtStep = 3;
  const saved: number[] = [];
  const r = await trainLoop(engine, t, plan, newTrainerState(t, plan), hooks(10, saved));
  if (r.reason !== "watchdog" || engine.restored !== 1 || saved.at(-1) !== 2) {
    throw new Error(`${r.reason} ${saved}`);
  }
  if (!r.message?.includes("step 3")) throw new Error(r.message);
});

Deno.test("loop: resuming from a saved state replays the same steps", async () => {
  const t = TrainingSchema.parse({ num_train_epochs: 2 });
  const plan = planSteps(37, t);
  const full = new FakeEngine();
  await trainLoop(full, t, plan, newTrainerState(t, plan), hooks(10, []));
  const first = new FakeEngine();
  const r1 = await trainLoop(first, t, plan, newTrainerState(t, plan), hooks(10, [], { interruptAt: 1 }));
  const second = new FakeEngine();
  await trainLoop(second, t, plan, structuredClone(r1.state), hooks(10, []));
  const replay = [...first.steps, ...second.steps];
  if (JSON.stringify(replay) !== JSON.stringify(full.steps)) throw new Error("resume differs");
});

Deno.test("loop: early stopping after `patience` evaluations without improvement; the best checkpoint is saved", async () => {
  const t = TrainingSchema.parse({
    num_train_epochs: 10,
    eval_steps: 1,
    save_steps: 100,
    early_stopping_patience: 2,
  });
  const plan = planSteps(37, t);
  const saved: number[] = [];
  const evalLosses = [5, 4, 4.5, 4.2, 3];
  let calls = 0;
  const h = {
    ...hooks(10, saved),
    evaluate: () => Promise.resolve({ eval_loss: evalLosses[calls++], eval_perplexity: 0 }),
  };
  const r = await trainLoop(new FakeEngine(), t, plan, newTrainerState(t, plan), h);
  if (r.reason !== "early_stopping" || r.state.global_step !== 4) {
    throw new Error(`${r.reason} at ${r.state.global_step}`);
  }
  if (r.state.best_model_checkpoint !== "checkpoint-2" || r.state.best_metric !== 4) throw new Error("best");
  if (!saved.includes(2) || saved.at(-1) !== 4) throw new Error(`saves ${saved}`);
});

Deno.test("loop throughput: real tokens only, padding apart, no dip after an eval or a save (fake clock)", async () => {
  // Every optimizer step takes 100 ms; an eval 5 s, a checkpoint 2 s, a log write 50 ms. Each batch is 2 rows
  // x 4 positions with 5 real tokens and 3 padding positions.
  let now = 0;
  const padded = (id: number): TrainBatch => ({
    inputIds: new Int32Array(8).fill(id),
    labels: new Int32Array(8).fill(id),
    attentionMask: new Uint8Array([1, 1, 1, 0, 1, 1, 0, 0]),
    rows: 2,
    seqLen: 4,
    targetTokens: 2,
  });
  class TimedEngine extends FakeEngine {
    override async readStep() {
      now += 100;
      return await super.readStep();
    }
  }
  const t = TrainingSchema.parse({
    num_train_epochs: 1,
    per_device_train_batch_size: 2,
    gradient_accumulation_steps: 2,
    logging_steps: 1,
    eval_steps: 3,
    save_steps: 4,
  });
  const plan = planSteps(24, t); // 12 batches of 2 -> 6 steps of 2 micro-batches
  const rows: Record<string, number | undefined>[] = [];
  const r = await trainLoop(new TimedEngine(), t, plan, newTrainerState(t, plan), {
    batchesForEpoch: () => Array.from({ length: 12 }, (_, i) => padded(i)),
    evaluate: () => {
      now += 5000;
      return Promise.resolve({ eval_loss: 1, eval_perplexity: Math.E });
    },
    save: (step) => {
      now += 2000;
      return Promise.resolve(`checkpoint-${step}`);
    },
    log: (entry) => {
      now += 50;
      rows.push(entry);
      return Promise.resolve();
    },
    interrupted: () => false,
    clock: () => now,
  });
  const train = rows.filter((e) => e.loss !== undefined);
  if (train.map((e) => e.step).join() !== "1,2,3,4,5,6") throw new Error(JSON.stringify(rows));
  // 2 micro-batches x 5 real tokens in 0.1 s = 100 tok/s at every step, the ones after an eval (4) and after
  // a save (5) included; 2 x 3 padding positions = 60/s.
  for (const e of train) {
    if (e.tokens_per_second !== 100 || e.padded_tokens_per_second !== 60) {
      throw new Error(`step ${e.step}: ${e.tokens_per_second} tok/s, ${e.padded_tokens_per_second} pad/s`);
    }
  }
  const s = r.state;
  if (s.train_tokens !== 60 || s.train_padding_tokens !== 36) {
    throw new Error(`${s.train_tokens} ${s.train_padding_tokens}`);
  }
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-9;
  // Evals at steps 3 and 6 (5 s each, plus their 50 ms log rows: the eval's plots), saves at 3 (best), 4, 6.
  if (!close(s.train_seconds, 0.6) || !close(s.eval_seconds, 10.1) || !close(s.save_seconds, 6)) {
    throw new Error(`train ${s.train_seconds} eval ${s.eval_seconds} save ${s.save_seconds}`);
  }
  // elapsed_seconds stays the wall clock (eval and save included).
  if (!(train[3].elapsed_seconds! > 7)) throw new Error(`elapsed ${train[3].elapsed_seconds}`);
});
