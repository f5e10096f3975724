/**
 * `maieutic train`: validates everything before any download or GPU work, then loads the model, tokenizes the
 * dialogues, trains, and writes the output tree of docs/ARCHITECTURE.md#the-output-tree (checkpoints, training_config.json, the live
 * metrics CSV, the summary, the plots). Where it starts (step 0 or a checkpoint) is src/train/resume.ts; Ctrl-C
 * and SIGTERM finish the current step, checkpoint and exit 130 / 143 (src/train/stop_signals.ts).
 */
import { join, resolve } from "node:path";
import type { Config } from "../config/schema.ts";
import { InterruptedError, UsageError } from "../util/errors.ts";
import { ProgressLine } from "../util/progress.ts";
import { formatDuration, formatMemory } from "../util/format.ts";
import {
  type Dialogue,
  epochOrder,
  type Example,
  loadDialogues,
  makeBatches,
  modelVersion,
  splitDialogues,
  tokenizeDialogues,
} from "../data/mod.ts";
import { dataReport } from "../data/report.ts";
import { readDataFile } from "../data/load.ts";
import { getGpu } from "../gpu/device.ts";
import { readF32 } from "../gpu/readback.ts";
import { initLoraParams, type LoraParams } from "../lora/params.ts";
import { adapterToParams, loadAdapter, makeAdapterConfig, saveAdapter } from "../lora/peft.ts";
import { openModelSource, openSession } from "../model/session.ts";
import { parseModelName } from "../hub/load.ts";
import { readSafetensorsFile } from "../safetensors/read_file.ts";
import { writeSafetensors } from "../safetensors/write.ts";
import { type ChatTokenizer, loadTokenizer } from "../tokenizer/tokenizer.ts";
import { tinyChatTokenizer } from "../tokenizer/tiny.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { MetricsCsv } from "../report/metrics_csv.ts";
import { closeReportRenderer, ReportScheduler } from "../report/plot.ts";
import { latestCheckpointSync, pruneCheckpoints, saveCheckpoint } from "./checkpoint.ts";
import { cleanKilledWrites, dropPendingEvalRows, finishedRun, hasRun, resolveStart } from "./resume.ts";
import { runIdentity } from "./run_identity.ts";
import { EXIT_CODE, StopSignals } from "./stop_signals.ts";
import { type EvalResult, type LoopResult, newTrainerState, type TrainBatch, trainLoop } from "./loop.ts";
import { planSteps } from "./schedule.ts";
import type { RngState, TrainerState } from "./state.ts";
import { allocOptimizer } from "./optimizer.ts";
import { GpuTrainEngine } from "./step_engine.ts";
import { checkBestMetric, evalContextsFrom, evaluateStep, socraticColumns } from "../eval/in_training.ts";
import { versions } from "../util/versions.ts";

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

export interface RunPaths {
  runDir: string;
  modelDir: string;
  logsDir: string;
}

export function runPaths(cfg: Config): RunPaths {
  const runDir = join(cfg.output_dir, modelVersion(cfg.data));
  return { runDir, modelDir: join(runDir, "model"), logsDir: join(runDir, "logs") };
}

async function sha256File(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", (await readDataFile(path)) as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
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
  const progress = new ProgressLine(o.jsonLogs);
  const say = (s: string) => o.jsonLogs ? console.error(s) : console.log(s);

  // ---- validation before any download or GPU work ----
  checkBestMetric(t.metric_for_best_model, t.eval_generate_samples);
  const dialogues = await loadDialogues(cfg.data);
  const evalDialogues: Dialogue[] | null = cfg.eval_data ? await loadDialogues(cfg.eval_data) : null;
  const fingerprints = {
    data_sha256: await sha256File(cfg.data),
    eval_data_sha256: cfg.eval_data ? await sha256File(cfg.eval_data) : undefined,
  };
  const start = await resolveStart(paths, {
    resume: o.resume,
    overwrite: o.overwrite,
    accept: o.accept,
    identity: runIdentity(cfg, fingerprints),
    seed: t.seed,
  });
  if (start.kind === "fresh" && start.note) say(start.note);
  const resumed = start.kind === "checkpoint" ? start : null;
  const resumeDir = resumed?.dir ?? null;
  if (resumed?.accepted.length) {
    say(`--resume: continuing ${resumed.dir} with changed ${resumed.accepted.join(", ")} (--accept-changes)`);
  }
  await parseModelName(cfg.model.name); // a bad --model is a usage error before any download or GPU work
  const gpu = await getGpu();
  if (o.overwrite && await hasRun(paths)) {
    await Deno.remove(paths.modelDir, { recursive: true }).catch(() => {});
    await Deno.remove(paths.logsDir, { recursive: true }).catch(() => {});
  }
  await Deno.mkdir(paths.modelDir, { recursive: true });
  await Deno.mkdir(paths.logsDir, { recursive: true });
  await cleanKilledWrites(paths); // temp files of launches killed mid-write

  // ---- model source, tokenizer, data ----
  const source = await openModelSource(cfg);
  const tok: ChatTokenizer = source.randomWeights ? tinyChatTokenizer() : await loadTokenizer(source.dir);
  const maxLen = cfg.model.max_sequence_length;
  let trainIdx: number[];
  let evalExamples: Example[];
  let split: { train: number[]; eval: number[] } | undefined;
  if (evalDialogues) {
    trainIdx = dialogues.map((_, i) => i);
    evalExamples = tokenizeDialogues(tok, evalDialogues, maxLen).examples;
  } else {
    split = t.eval_split > 0 ? splitDialogues(dialogues.length, t.eval_split, t.seed) : {
      train: dialogues.map((_, i) => i),
      eval: [],
    };
    trainIdx = split.train;
    evalExamples = tokenizeDialogues(tok, dialogues, maxLen, split.eval).examples;
  }
  const all = tokenizeDialogues(tok, dialogues, maxLen);
  const trainSet = new Set(trainIdx);
  const trainExamples = all.examples.filter((e) => trainSet.has(e.dialogueIndex));
  if (!trainExamples.length) throw new UsageError(`${cfg.data}: no training examples after the split`);
  const report = dataReport({
    file: cfg.data,
    dialogues,
    examples: all.examples,
    stats: all.stats,
    tokenizer: tok,
    maxLen,
    split,
    evalFile: evalDialogues && cfg.eval_data
      ? { file: cfg.eval_data, dialogues: evalDialogues.length, examples: evalExamples }
      : undefined,
  });
  say(report.text);
  await writeJsonAtomic(join(paths.logsDir, "data_report.json"), report.json);

  // ---- LoRA, engine, state ----
  let lora: LoraParams;
  if (resumeDir) {
    const a = adapterToParams(await loadAdapter(resumeDir), source.config, {
      baseModel: source.source,
      lora: { r: cfg.lora.r, lora_alpha: cfg.lora.lora_alpha, target_modules: cfg.lora.target_modules },
    });
    lora = a.params;
  } else {
    lora = initLoraParams(source.config, cfg.lora, t.seed);
  }
  const plan = planSteps(trainExamples.length, t);
  // A boot script relaunches the same command after the run ended: say so and stop before loading the model.
  if (resumed && await finishedRun(paths, resumed.state, plan.totalSteps, t.early_stopping_patience)) {
    say(
      `--resume: ${paths.runDir} is already complete (step ${resumed.state.global_step}/${plan.totalSteps}); ` +
        `the adapter is in ${paths.modelDir}`,
    );
    return 0;
  }
  const seqMax = Math.max(
    ...trainExamples.map((e) => e.inputIds.length),
    ...evalExamples.map((e) => e.inputIds.length),
  );
  const started = performance.now();
  const session = await openSession(cfg, {
    maxBatch: Math.max(t.per_device_train_batch_size, t.per_device_eval_batch_size),
    maxSeq: seqMax,
    training: true,
    lora,
    source,
  });
  const { engine } = session;
  const opt = allocOptimizer(engine);
  if (resumeDir) {
    const { tensors } = await readSafetensorsFile(join(resumeDir, "optimizer.safetensors"));
    const m = tensors.get("exp_avg")?.data as Float32Array | undefined;
    const v = tensors.get("exp_avg_sq")?.data as Float32Array | undefined;
    if (!m || !v || m.length !== opt.n || v.length !== opt.n) {
      throw new UsageError(
        `${resumeDir}/optimizer.safetensors does not fit this model and LoRA configuration`,
      );
    }
    gpu.device.queue.writeBuffer(opt.m, 0, m as Float32Array<ArrayBuffer>);
    gpu.device.queue.writeBuffer(opt.v, 0, v as Float32Array<ArrayBuffer>);
  }
  const state: TrainerState = resumed ? resumed.state : newTrainerState(t, plan);
  state.max_steps = plan.totalSteps;
  const stepEngine = new GpuTrainEngine(engine, opt);
  const adapterConfig = makeAdapterConfig({
    baseModelNameOrPath: source.source,
    r: cfg.lora.r,
    lora_alpha: cfg.lora.lora_alpha,
    lora_dropout: cfg.lora.lora_dropout,
    target_modules: cfg.lora.target_modules,
  });
  const configHash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(cfg)));
  const configHashHex = Array.from(
    new Uint8Array(configHash).slice(0, 8),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  await writeJsonAtomic(join(paths.modelDir, "training_config.json"), {
    ...cfg,
    resolved_data: resolve(cfg.data),
    ...fingerprints,
    model_source: {
      name: source.source,
      revision: source.revision ?? null,
      random_weights: source.randomWeights,
    },
    config_hash: configHashHex,
    plan,
    versions: versions(),
  });

  // ---- hooks ----
  const csvPath = join(paths.logsDir, "training_metrics.csv");
  if (resumed?.state.eval_pending) await dropPendingEvalRows(csvPath, resumed.state.global_step);
  const csv = await MetricsCsv.open(
    csvPath,
    resumed ? state.global_step : undefined,
  );
  let epochCache: { epoch: number; batches: TrainBatch[] } | null = null;
  const batchesForEpoch = (epoch: number): TrainBatch[] => {
    if (epochCache?.epoch !== epoch) {
      const order = epochOrder(trainExamples.length, t.seed, epoch);
      epochCache = {
        epoch,
        batches: makeBatches(
          trainExamples,
          order,
          t.per_device_train_batch_size,
          tok.padId,
          t.group_by_length,
        ),
      };
    }
    return epochCache.batches;
  };
  const evalBatches: TrainBatch[] = makeBatches(
    evalExamples,
    evalExamples.map((_, i) => i),
    t.per_device_eval_batch_size,
    tok.padId,
  );
  // Eval loss + generation and the Socratic metrics (src/eval/in_training.ts); samples go to logs/samples/.
  const evalContexts = evalContextsFrom(evalDialogues ?? (split?.eval ?? []).map((i) => dialogues[i]));
  const evaluate = evalBatches.length
    ? (step: number): Promise<EvalResult> =>
      evaluateStep(engine, tok, evalBatches, evalContexts, {
        step,
        logsDir: paths.logsDir,
        // The prompt may be as long as a training example; the budget also holds the generated tokens (up to
        // the cap; a derived max_new_tokens below it leaves that much more room to the prompt).
        generation: {
          contexts: t.eval_generate_samples,
          consistencySamples: t.eval_consistency_samples,
          maxNewTokensCap: t.eval_max_new_tokens,
          seed: t.seed,
          maxPromptTokens: maxLen + t.eval_max_new_tokens,
        },
      })
    : undefined;
  stopper.install({
    onStop: (sig) => {
      progress.done();
      console.error(
        sig === "SIGTERM"
          ? `SIGTERM: finishing the current step, then writing a checkpoint and exiting (${EXIT_CODE.SIGTERM})`
          : "interrupt: finishing the current step, then writing a checkpoint (Ctrl-C again exits at once)",
      );
    },
    onForce: () => {
      progress.done();
      const c = latestCheckpointSync(paths.modelDir);
      console.error(
        c
          ? `second interrupt: exiting now; --resume continues from ${c.dir} (step ${c.step})`
          : "second interrupt: exiting now; there is no complete checkpoint yet, so --resume starts from step 0",
      );
    },
  });

  const saveAdapterTo = async (dir: string) => {
    const data = await readF32(gpu, opt.param, 0, lora.layout.total);
    await saveAdapter(dir, { ...lora, data }, adapterConfig);
  };
  const save = async (step: number, st: TrainerState): Promise<string> => {
    const rng: RngState = { seed: t.seed, scheme: "counter-v1", next_step: step + 1 };
    const dir = await saveCheckpoint(
      paths.modelDir,
      step,
      {
        writeAdapter: saveAdapterTo,
        writeOptimizer: async (d) => {
          const m = await readF32(gpu, opt.m, 0, opt.n);
          const v = await readF32(gpu, opt.v, 0, opt.n);
          await writeSafetensors(join(d, "optimizer.safetensors"), {
            exp_avg: { dtype: "F32", shape: [opt.n], data: m },
            exp_avg_sq: { dtype: "F32", shape: [opt.n], data: v },
          }, { format: "maieutic-adamw", step: String(step) });
        },
      },
      st,
      rng,
    );
    const best = st.best_model_checkpoint ? join(paths.modelDir, st.best_model_checkpoint) : null;
    await pruneCheckpoints(paths.modelDir, t.save_total_limit, best);
    return dir;
  };
  // The plots are re-rendered after every eval in a worker, never stalling the GPU work (src/report/plot.ts).
  const plots = new ReportScheduler(paths.runDir, { live: true, modelName: source.source }, (e) => {
    console.error(`warning: could not render the metrics plot: ${(e as Error).message}`);
  });
  const runStart = performance.now();
  const stepsAtStart = state.global_step;
  const log = async (entry: Record<string, number | undefined>, st: TrainerState) => {
    await csv.append(entry);
    o.onLog?.(entry.step ?? 0);
    if (o.jsonLogs) {
      console.log(JSON.stringify(entry));
      return;
    }
    if (entry.eval_loss !== undefined) {
      plots.request();
      // On a software adapter the CPU is the GPU: a render beside the next steps would slow them (the dip after
      // an eval in tokens/s). Wait for it here, in the eval's time (src/train/loop.ts counts the eval's log).
      if (gpu.isSoftware) await plots.idle();
    }
    if (entry.eval_loss !== undefined) {
      progress.done();
      console.log(
        `eval @ step ${entry.step}: eval_loss ${entry.eval_loss.toFixed(4)}, perplexity ${
          entry.eval_perplexity?.toFixed(2)
        }`,
      );
      return;
    }
    const done = st.global_step - stepsAtStart;
    const elapsed = (performance.now() - runStart) / 1000;
    const etaS = done > 0 ? (elapsed / done) * (plan.totalSteps - st.global_step) : NaN;
    progress.update(
      `step ${st.global_step}/${plan.totalSteps} | epoch ${st.epoch.toFixed(2)} | loss ${
        entry.loss?.toFixed(4)
      } | lr ${entry.learning_rate?.toExponential(2)} | grad ${entry.grad_norm?.toFixed(3)} | ${
        Math.round(entry.tokens_per_second ?? 0)
      } tok/s | ETA ${formatDuration(etaS)}`,
    );
  };

  // ---- train ----
  say(
    `training ${source.source} (${
      session.model.quantized ? "NF4" : "dense"
    }, ${engine.opts.compute} operands) on ${
      gpu.info.description || gpu.info.vendor
    }: ${trainExamples.length} examples, ${plan.totalSteps} steps (${plan.stepsPerEpoch}/epoch, warmup ${plan.warmupSteps})` +
      (resumeDir ? `, resuming from ${resumeDir} at step ${state.global_step}` : ""),
  );
  let result: LoopResult;
  try {
    result = await trainLoop(stepEngine, t, plan, state, {
      batchesForEpoch,
      evaluate,
      save,
      log,
      interrupted: () => stopper.stopping,
    });
  } finally {
    progress.done();
    csv.close();
  }

  // ---- outputs ----
  if (result.reason === "completed" || result.reason === "early_stopping") {
    await saveAdapterTo(paths.modelDir);
  }
  const st = result.state;
  const lastTrain = [...st.log_history].reverse().find((e) => e.loss !== undefined);
  const lastEval = [...st.log_history].reverse().find((e) => e.eval_loss !== undefined);
  const bestEntry = st.log_history.find((e) =>
    st.best_model_checkpoint === `checkpoint-${e.step}` && e.eval_loss !== undefined
  );
  const runtime = (performance.now() - started) / 1000;
  const poolStats = session.pool.stats();
  const summary = {
    model_version: modelVersion(cfg.data),
    status: result.reason,
    message: result.message ?? null,
    model: { name: source.source, revision: source.revision ?? null, quantized: session.model.quantized },
    total_steps: st.global_step,
    planned_steps: plan.totalSteps,
    epochs: st.epoch,
    runtime_seconds: runtime,
    // Throughput (src/train/loop.ts): real tokens over optimizer-step seconds; the padding computed beside
    // them and its share of all positions; the wall time split into training, evaluation (loss + generation)
    // and checkpoint saving (over all sessions of a resumed run), the rest being setup and outputs.
    train_seconds: st.train_seconds,
    train_tokens: st.train_tokens,
    train_padding_tokens: st.train_padding_tokens,
    padding_share: st.train_padding_tokens / Math.max(1, st.train_tokens + st.train_padding_tokens),
    train_tokens_per_second: st.train_tokens / Math.max(1e-9, st.train_seconds),
    wall_seconds: { train: st.train_seconds, eval: st.eval_seconds, save: st.save_seconds },
    train_samples_per_second:
      (st.global_step * t.per_device_train_batch_size * t.gradient_accumulation_steps) /
      Math.max(1e-9, st.train_seconds),
    final: {
      step: lastTrain?.step ?? null,
      loss: lastTrain?.loss ?? null,
      learning_rate: lastTrain?.learning_rate ?? null,
      grad_norm: lastTrain?.grad_norm ?? null,
      eval_loss: lastEval?.eval_loss ?? null,
      eval_perplexity: lastEval?.eval_perplexity ?? null,
      // The Socratic figures of the last eval (docs/socratic_metrics.md), null without generation.
      socratic: socraticColumns(lastEval),
    },
    best: {
      metric: t.metric_for_best_model,
      value: st.best_metric,
      step: bestEntry?.step ?? null,
      checkpoint: st.best_model_checkpoint ? join(paths.modelDir, st.best_model_checkpoint) : null,
      eval_loss: bestEntry?.eval_loss ?? null,
      socratic: socraticColumns(bestEntry),
    },
    peak_gpu_buffer_bytes: poolStats.peakBytes,
    gpu_buffer_bytes_by_kind: poolStats.byKind,
    adapter: {
      r: cfg.lora.r,
      lora_alpha: cfg.lora.lora_alpha,
      target_modules: cfg.lora.target_modules,
      trainable_parameters: lora.layout.count,
      path: result.reason === "completed" || result.reason === "early_stopping" ? paths.modelDir : null,
    },
    config_hash: configHashHex,
    hardware: { adapter: gpu.info, software: gpu.isSoftware, f16: gpu.f16 },
    versions: versions(),
  };
  await writeJsonAtomic(join(paths.logsDir, "training_summary.json"), summary);
  plots.request({ live: false });
  await plots.idle();
  await closeReportRenderer();
  say(
    [
      `${
        result.reason === "completed" ? "done" : result.reason
      }: ${st.global_step}/${plan.totalSteps} steps in ${formatDuration(runtime)}, final loss ${
        lastTrain?.loss?.toFixed(4) ?? "-"
      }` +
      (lastEval ? `, eval_loss ${lastEval.eval_loss?.toFixed(4)}` : ""),
      `  adapter      ${summary.adapter.path ?? "(see checkpoints)"}`,
      `  checkpoints  ${paths.modelDir}/checkpoint-*`,
      `  metrics      ${join(paths.logsDir, "training_metrics.csv")}`,
      `  summary      ${join(paths.logsDir, "training_summary.json")}`,
      `  plot         ${join(paths.logsDir, "metrics_plot.png")}`,
      `  GPU buffers  peak ${formatMemory(poolStats.peakBytes)}`,
    ].join("\n"),
  );
  if (result.reason === "interrupted" && stopper.signal === "SIGTERM") {
    console.error(`stopped by SIGTERM at step ${st.global_step}; --resume continues`);
    return EXIT_CODE.SIGTERM;
  }
  if (result.reason === "interrupted") {
    throw new InterruptedError(`interrupted at step ${st.global_step}; --resume continues`);
  }
  if (result.reason === "watchdog") {
    console.error(result.message);
    return 1;
  }
  return 0;
}
