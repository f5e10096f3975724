/**
 * `maieutic train`: validates everything before any download or GPU work, then loads the model, tokenizes the
 * dialogues, trains, and writes the output tree of docs/ARCHITECTURE.md#the-output-tree. `train` below is the
 * whole run in order; its pieces: the data (src/train/training_data.ts), the run directory
 * (src/train/run_dir.ts), where it starts (step 0 or a checkpoint, src/train/resume.ts), checkpoints in and
 * out (src/train/checkpointer.ts), the loop (src/train/loop.ts), what it says and logs (src/train/run_log.ts)
 * and the summary (src/train/summary.ts). Ctrl-C and SIGTERM finish the current step, checkpoint and exit
 * 130 / 143 (src/train/stop_signals.ts).
 */
import { join } from "node:path";
import type { Config } from "../config/schema.ts";
import { InterruptedError } from "../util/errors.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { versions } from "../util/versions.ts";
import { getGpu } from "../gpu/device.ts";
import { initLoraParams } from "../lora/params.ts";
import { openModelSource, openSession } from "../model/session.ts";
import { parseModelName } from "../hub/model_name.ts";
import { type ChatTokenizer, loadTokenizer } from "../tokenizer/tokenizer.ts";
import { tinyChatTokenizer } from "../tokenizer/tiny.ts";
import type { Gemma2Engine } from "../model/engine.ts";
import { checkBestMetric, evaluateStep } from "../eval/in_training.ts";
import { Checkpointer, loraFromCheckpoint } from "./checkpointer.ts";
import { finishedRun, resolveStart } from "./resume.ts";
import { prepareRunDir, type RunPaths, runPaths, writeTrainingConfig } from "./run_dir.ts";
import { runIdentity } from "./run_identity.ts";
import { RunLog, startLine } from "./run_log.ts";
import { EXIT_CODE, StopSignals } from "./stop_signals.ts";
import { type LoopResult, newTrainerState, trainLoop } from "./loop.ts";
import type { EvalResult } from "../eval/loss.ts";
import { planSteps } from "./schedule.ts";
import { allocOptimizer } from "./optimizer.ts";
import { GpuTrainEngine } from "./step_engine.ts";
import { finishedNormally, trainingSummary } from "./summary.ts";
import {
  epochBatches,
  evalBatches,
  prepareData,
  readTrainingInputs,
  type TrainingData,
} from "./training_data.ts";

export interface TrainOptions {
  config: Config;
  /** "latest" or a checkpoint directory. */
  resume?: string;
  overwrite?: boolean;
  /** Configuration keys --resume may find changed (--accept-changes). */
  accept?: ReadonlySet<string>;
  jsonLogs?: boolean;
  /** Extra hook for tests: called after every logged step. */
  onLog?: (step: number) => void;
}

export async function runTraining(o: TrainOptions): Promise<number> {
  // The signal listeners stay until the outputs are written, so a second Ctrl-C then still says what to resume.
  const stopper = new StopSignals();
  try {
    return await train(o, stopper);
  } finally {
    stopper.uninstall();
  }
}

async function train(o: TrainOptions, stopper: StopSignals): Promise<number> {
  const cfg = o.config;
  const t = cfg.training;
  const paths = runPaths(cfg);
  const out = new RunLog(o);

  // ---- validation before any download or GPU work ----
  checkBestMetric(t.metric_for_best_model, t.eval_generate_samples);
  const inputs = await readTrainingInputs(cfg);
  const start = await resolveStart(paths, {
    resume: o.resume,
    overwrite: o.overwrite,
    accept: o.accept,
    identity: runIdentity(cfg, inputs.fingerprints),
    seed: t.seed,
  });
  out.resumeNotes(start);
  const resumed = start.kind === "checkpoint" ? start : null;
  await parseModelName(cfg.model.name); // a bad --model is a usage error before any download or GPU work
  const gpu = await getGpu();
  await prepareRunDir(paths, o.overwrite);

  // ---- model source, tokenizer, data ----
  const source = await openModelSource(cfg);
  const tok: ChatTokenizer = source.randomWeights ? tinyChatTokenizer() : await loadTokenizer(source.dir);
  const data = prepareData(cfg, inputs, tok);
  out.say(data.report.text);
  await writeJsonAtomic(join(paths.logsDir, "data_report.json"), data.report.json);

  // ---- LoRA, engine, state ----
  const lora = resumed
    ? await loraFromCheckpoint(resumed.dir, source, cfg)
    : initLoraParams(source.config, cfg.lora, t.seed);
  const plan = planSteps(data.train.length, t);
  // A boot script relaunches the same command after the run ended: say so and stop before loading the model.
  if (resumed && await finishedRun(paths, resumed.state, plan.totalSteps, t.early_stopping_patience)) {
    out.say(
      `--resume: ${paths.runDir} is already complete (step ${resumed.state.global_step}/${plan.totalSteps}); ` +
        `the adapter is in ${paths.modelDir}`,
    );
    return 0;
  }
  const started = performance.now();
  const session = await openSession(cfg, {
    maxBatch: Math.max(t.per_device_train_batch_size, t.per_device_eval_batch_size),
    maxSeq: data.maxSeq,
    training: true,
    lora,
    source,
  });
  const { engine } = session;
  const opt = allocOptimizer(engine);
  const checkpoints = new Checkpointer(gpu, paths.modelDir, cfg, source.source, lora, opt);
  if (resumed) await checkpoints.restoreOptimizer(resumed.dir);
  const state = resumed ? resumed.state : newTrainerState(t, plan);
  state.max_steps = plan.totalSteps;
  const configHash = await writeTrainingConfig(paths, cfg, {
    fingerprints: inputs.fingerprints,
    source,
    plan,
  });

  // ---- train ----
  await out.open(paths, {
    resumed: resumed?.state ?? null,
    modelName: source.source,
    waitForPlots: gpu.isSoftware,
  });
  stopper.install(out.stopHandlers(paths.modelDir));
  out.startClock(state.global_step, plan.totalSteps);
  out.say(startLine({
    model: source.source,
    quantized: session.model.quantized,
    compute: engine.opts.compute,
    adapter: gpu.info,
    examples: data.train.length,
    plan,
    resumed: resumed && { dir: resumed.dir, step: state.global_step },
  }));
  let result: LoopResult;
  try {
    result = await trainLoop(new GpuTrainEngine(engine, opt), t, plan, state, {
      batchesForEpoch: epochBatches(data.train, t, tok.padId),
      evaluate: evaluation(engine, tok, data, paths, cfg),
      save: checkpoints.save,
      log: out.log,
      interrupted: () => stopper.stopping,
    });
  } finally {
    out.closeLive();
  }

  // ---- outputs ----
  if (finishedNormally(result)) await checkpoints.saveAdapter(paths.modelDir);
  const summary = trainingSummary({
    cfg,
    result,
    plan,
    runtimeSeconds: (performance.now() - started) / 1000,
    model: { name: source.source, revision: source.revision, quantized: session.model.quantized },
    trainableParameters: lora.layout.count,
    modelDir: paths.modelDir,
    pool: session.pool.stats(),
    configHash,
    hardware: { adapter: gpu.info, software: gpu.isSoftware, f16: gpu.f16 },
    versions: versions(),
  });
  await writeJsonAtomic(join(paths.logsDir, "training_summary.json"), summary);
  await out.finish(summary, paths);
  return exitStatus(result, stopper);
}

/** The loop's evaluate hook: eval loss + generation and the Socratic metrics (src/eval/in_training.ts). */
function evaluation(
  engine: Gemma2Engine,
  tok: ChatTokenizer,
  data: TrainingData,
  paths: RunPaths,
  cfg: Config,
): ((step: number) => Promise<EvalResult>) | undefined {
  const t = cfg.training;
  const batches = evalBatches(data.eval, t, tok.padId);
  if (!batches.length) return undefined;
  return (step) =>
    evaluateStep(engine, tok, batches, data.evalContexts, {
      step,
      logsDir: paths.logsDir, // samples go to logs/samples/
      // The prompt may be as long as a training example; the budget also holds the generated tokens (up to
      // the cap; a derived max_new_tokens below it leaves that much more room to the prompt).
      generation: {
        contexts: t.eval_generate_samples,
        consistencySamples: t.eval_consistency_samples,
        maxNewTokensCap: t.eval_max_new_tokens,
        seed: t.seed,
        maxPromptTokens: cfg.model.max_sequence_length + t.eval_max_new_tokens,
      },
    });
}

/** 0, or 143 after SIGTERM (resumable), 1 after the loss watchdog; Ctrl-C throws InterruptedError (130). */
function exitStatus(result: LoopResult, stopper: StopSignals): number {
  const step = result.state.global_step;
  if (result.reason === "interrupted" && stopper.signal === "SIGTERM") {
    console.error(`stopped by SIGTERM at step ${step}; --resume continues`);
    return EXIT_CODE.SIGTERM;
  }
  if (result.reason === "interrupted") {
    throw new InterruptedError(`interrupted at step ${step}; --resume continues`);
  }
  if (result.reason === "watchdog") {
    console.error(result.message);
    return 1;
  }
  return 0;
}
