/** training_summary.json (src/train/summary.ts) and the lines that start and end a run (src/train/run_log.ts). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigSchema } from "../../src/config/schema.ts";
import { type LoopResult, newTrainerState } from "../../src/train/loop.ts";
import { planSteps } from "../../src/train/schedule.ts";
import { finishedNormally, trainingSummary } from "../../src/train/summary.ts";
import { endLines, startLine } from "../../src/train/run_log.ts";
import type { RunPaths } from "../../src/train/run_dir.ts";

const cfg = ConfigSchema.parse({
  data: "d/run.json",
  training: { per_device_train_batch_size: 2, gradient_accumulation_steps: 3 },
});
const plan = planSteps(30, cfg.training);
const paths: RunPaths = {
  runDir: "out/run",
  modelDir: join("out/run", "model"),
  logsDir: join("out/run", "logs"),
};

function result(reason: LoopResult["reason"]): LoopResult {
  const state = newTrainerState(cfg.training, plan);
  Object.assign(state, {
    global_step: 4,
    epoch: 0.8,
    train_tokens: 300,
    train_padding_tokens: 100,
    train_seconds: 2,
    eval_seconds: 5,
    save_seconds: 1,
    best_metric: 1.5,
    best_model_checkpoint: "checkpoint-2",
  });
  state.log_history = [
    { step: 1, epoch: 0.2, loss: 3, learning_rate: 1e-4, grad_norm: 0.5 },
    { step: 2, epoch: 0.4, eval_loss: 1.5, eval_perplexity: Math.exp(1.5), eval_socratic_score: 0.25 },
    { step: 4, epoch: 0.8, loss: 2, learning_rate: 5e-5, grad_norm: 0.25 },
    { step: 4, epoch: 0.8, eval_loss: 1.75, eval_perplexity: Math.exp(1.75) },
  ];
  return { state, reason };
}

function summaryOf(reason: LoopResult["reason"]) {
  return trainingSummary({
    cfg,
    result: result(reason),
    plan,
    runtimeSeconds: 10,
    model: { name: "tiny", quantized: true },
    trainableParameters: 1234,
    modelDir: paths.modelDir,
    pool: { peakBytes: 3 * 2 ** 20, byKind: { optimizer: 1 } },
    configHash: "0123456789abcdef",
    hardware: {
      adapter: { vendor: "v", architecture: "", device: "", description: "llvmpipe" },
      software: true,
      f16: false,
    },
    versions: { maieutic: "x" },
  });
}

Deno.test("trainingSummary: status, throughput, final and best (with its Socratic figures), adapter path", () => {
  const s = summaryOf("completed");
  assert.equal(s.model_version, "run");
  assert.equal(s.status, "completed");
  assert.equal(s.message, null);
  assert.deepEqual(s.model, { name: "tiny", revision: null, quantized: true });
  assert.equal(s.total_steps, 4);
  assert.equal(s.planned_steps, plan.totalSteps);
  assert.equal(s.padding_share, 0.25);
  assert.equal(s.train_tokens_per_second, 150);
  assert.equal(s.train_samples_per_second, (4 * 2 * 3) / 2);
  assert.deepEqual(s.wall_seconds, { train: 2, eval: 5, save: 1 });
  assert.deepEqual(
    [s.final.step, s.final.loss, s.final.learning_rate, s.final.grad_norm, s.final.eval_loss],
    [4, 2, 5e-5, 0.25, 1.75],
  );
  assert.equal(s.final.socratic, null, "the last eval generated nothing");
  assert.equal(s.best.step, 2);
  assert.equal(s.best.checkpoint, join(paths.modelDir, "checkpoint-2"));
  assert.deepEqual(s.best.socratic, { eval_socratic_score: 0.25 });
  assert.equal(s.adapter.path, paths.modelDir);
  assert.equal(s.adapter.trainable_parameters, 1234);
  const stopped = summaryOf("interrupted");
  assert.equal(stopped.adapter.path, null, "no final adapter after a stop: the checkpoints hold it");
  assert.equal(finishedNormally(result("early_stopping")), true);
  assert.equal(finishedNormally(result("watchdog")), false);
});

Deno.test("startLine and endLines say what runs and where the outputs are", () => {
  const line = startLine({
    model: "tiny",
    quantized: false,
    compute: "f32",
    adapter: { description: "", vendor: "mesa" },
    examples: 30,
    plan,
    resumed: { dir: "out/run/model/checkpoint-2", step: 2 },
  });
  assert.equal(
    line,
    `training tiny (dense, f32 operands) on mesa: 30 examples, ${plan.totalSteps} steps (${plan.stepsPerEpoch}/epoch, ` +
      `warmup ${plan.warmupSteps}), resuming from out/run/model/checkpoint-2 at step 2`,
  );
  const done = endLines(summaryOf("completed"), paths);
  assert.match(
    done[0],
    new RegExp(`^done: 4/${plan.totalSteps} steps in .+, final loss 2\\.0000, eval_loss 1\\.7500$`),
  );
  assert.equal(done[1], `  adapter      ${paths.modelDir}`);
  assert.equal(done[6], "  GPU buffers  peak 3.0 MiB");
  assert.equal(endLines(summaryOf("interrupted"), paths)[1], "  adapter      (see checkpoints)");
  assert.match(endLines(summaryOf("interrupted"), paths)[0], /^interrupted: /);
});
