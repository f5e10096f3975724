/**
 * What a training run tells its user and writes as it goes: the lines on the terminal (or JSON lines with
 * --json-logs, the rest then on stderr), the progress line with ETA, logs/training_metrics.csv appended live
 * (src/report/metrics_csv.ts), the plots re-rendered after every eval in a worker (src/report/plot.ts), and
 * what a stop signal says (src/train/stop_signals.ts).
 */
import { join } from "node:path";
import { ProgressLine } from "../util/progress.ts";
import { formatDuration, formatMemory } from "../util/format.ts";
import { MetricsCsv } from "../report/metrics_csv.ts";
import { closeReportRenderer, ReportScheduler } from "../report/plot.ts";
import { latestCheckpointSync } from "./checkpoint.ts";
import { dropPendingEvalRows, type StartPoint } from "./resume.ts";
import type { RunPaths } from "./run_dir.ts";
import type { StepPlan } from "./schedule.ts";
import type { TrainerState } from "./state.ts";
import { EXIT_CODE, type StopHandlers } from "./stop_signals.ts";
import type { TrainingSummary } from "./summary.ts";

/** The line that starts training: model, operands, adapter, examples and the step plan. */
export function startLine(r: {
  model: string;
  quantized: boolean;
  compute: string;
  adapter: { description: string; vendor: string };
  examples: number;
  plan: StepPlan;
  resumed: { dir: string; step: number } | null;
}): string {
  const p = r.plan;
  return `training ${r.model} (${r.quantized ? "NF4" : "dense"}, ${r.compute} operands) on ${
    r.adapter.description || r.adapter.vendor
  }: ${r.examples} examples, ${p.totalSteps} steps (${p.stepsPerEpoch}/epoch, warmup ${p.warmupSteps})` +
    (r.resumed ? `, resuming from ${r.resumed.dir} at step ${r.resumed.step}` : "");
}

/** The lines that end a run: how it ended, and where each output is. */
export function endLines(s: TrainingSummary, paths: RunPaths): string[] {
  return [
    `${s.status === "completed" ? "done" : s.status}: ${s.total_steps}/${s.planned_steps} steps in ${
      formatDuration(s.runtime_seconds)
    }, final loss ${s.final.loss?.toFixed(4) ?? "-"}` +
    (s.final.eval_loss !== null ? `, eval_loss ${s.final.eval_loss.toFixed(4)}` : ""),
    `  adapter      ${s.adapter.path ?? "(see checkpoints)"}`,
    `  checkpoints  ${paths.modelDir}/checkpoint-*`,
    `  metrics      ${join(paths.logsDir, "training_metrics.csv")}`,
    `  summary      ${join(paths.logsDir, "training_summary.json")}`,
    `  plot         ${join(paths.logsDir, "metrics_plot.png")}`,
    `  GPU buffers  peak ${formatMemory(s.peak_gpu_buffer_bytes)}`,
  ];
}

type LogRow = Record<string, number | undefined>;

export class RunLog {
  private readonly progress: ProgressLine;
  private csv: MetricsCsv | null = null;
  private plots: ReportScheduler | null = null;
  private waitForPlots = false;
  private clock = { start: 0, steps: 0, total: 0 };

  constructor(private readonly o: { jsonLogs?: boolean; onLog?: (step: number) => void }) {
    this.progress = new ProgressLine(o.jsonLogs);
  }

  /** A line for the user: stdout, or stderr when stdout carries the JSON logs. */
  say = (s: string): void => {
    if (this.o.jsonLogs) console.error(s);
    else console.log(s);
  };

  /** What --resume decided, when there is something to say (nothing to continue; accepted changes). */
  resumeNotes(start: StartPoint): void {
    if (start.kind === "fresh" && start.note) this.say(start.note);
    if (start.kind === "checkpoint" && start.accepted.length) {
      this.say(
        `--resume: continuing ${start.dir} with changed ${start.accepted.join(", ")} (--accept-changes)`,
      );
    }
  }

  /** What the first signal and a second Ctrl-C say (the progress line ended first). */
  stopHandlers(modelDir: string): StopHandlers {
    return {
      onStop: (sig) => {
        this.progress.done();
        console.error(
          sig === "SIGTERM"
            ? `SIGTERM: finishing the current step, then writing a checkpoint and exiting (${EXIT_CODE.SIGTERM})`
            : "interrupt: finishing the current step, then writing a checkpoint (Ctrl-C again exits at once)",
        );
      },
      onForce: () => {
        this.progress.done();
        const c = latestCheckpointSync(modelDir);
        console.error(
          c
            ? `second interrupt: exiting now; --resume continues from ${c.dir} (step ${c.step})`
            : "second interrupt: exiting now; there is no complete checkpoint yet, so --resume starts from step 0",
        );
      },
    };
  }

  /**
   * Opens the metrics CSV (a resumed run keeps its rows up to the checkpoint's step, less a pending eval's row)
   * and the plot renderer.
   */
  async open(paths: RunPaths, r: {
    resumed: TrainerState | null;
    modelName: string;
    /** On a software adapter the CPU is the GPU: wait for each plot render (below). */
    waitForPlots: boolean;
  }): Promise<void> {
    const csvPath = join(paths.logsDir, "training_metrics.csv");
    if (r.resumed?.eval_pending) await dropPendingEvalRows(csvPath, r.resumed.global_step);
    this.csv = await MetricsCsv.open(csvPath, r.resumed ? r.resumed.global_step : undefined);
    // The plots are re-rendered after every eval in a worker, never stalling the GPU work (src/report/plot.ts).
    this.plots = new ReportScheduler(paths.runDir, { live: true, modelName: r.modelName }, (e) => {
      console.error(`warning: could not render the metrics plot: ${(e as Error).message}`);
    });
    this.waitForPlots = r.waitForPlots;
  }

  /** Starts the ETA clock: `steps` done so far of `total`. */
  startClock(steps: number, total: number): void {
    this.clock = { start: performance.now(), steps, total };
  }

  /** The loop's log hook: a CSV row, then a JSON line, an eval line or the progress line. */
  log = async (entry: LogRow, st: TrainerState): Promise<void> => {
    await this.csv!.append(entry);
    this.o.onLog?.(entry.step ?? 0);
    if (this.o.jsonLogs) {
      console.log(JSON.stringify(entry));
      return;
    }
    if (entry.eval_loss !== undefined) {
      this.plots!.request();
      // On a software adapter the CPU is the GPU: a render beside the next steps would slow them (the dip after
      // an eval in tokens/s). Wait for it here, in the eval's time (src/train/loop.ts counts the eval's log).
      if (this.waitForPlots) await this.plots!.idle();
    }
    if (entry.eval_loss !== undefined) {
      this.progress.done();
      // The headline Socratic figure and the failure a researcher watches first, when replies were generated.
      const e = entry as Record<string, number | undefined>;
      const socratic = e.eval_socratic_score === undefined
        ? ""
        : `, socratic ${e.eval_socratic_score.toFixed(3)}` +
          (e.eval_degenerate_rate === undefined
            ? ""
            : ` (degenerate ${(100 * e.eval_degenerate_rate).toFixed(0)}%)`);
      console.log(
        `eval @ step ${entry.step}: eval_loss ${entry.eval_loss.toFixed(4)}, perplexity ${
          entry.eval_perplexity?.toFixed(2)
        }${socratic}`,
      );
      return;
    }
    const done = st.global_step - this.clock.steps;
    const elapsed = (performance.now() - this.clock.start) / 1000;
    const etaS = done > 0 ? (elapsed / done) * (this.clock.total - st.global_step) : NaN;
    this.progress.update(
      `step ${st.global_step}/${this.clock.total} | epoch ${st.epoch.toFixed(2)} | loss ${
        entry.loss?.toFixed(4)
      } | lr ${entry.learning_rate?.toExponential(2)} | grad ${entry.grad_norm?.toFixed(3)} | ${
        Math.round(entry.tokens_per_second ?? 0)
      } tok/s | ETA ${formatDuration(etaS)}`,
    );
  };

  /** Ends the progress line and closes the CSV (training over, normally or not). */
  closeLive(): void {
    this.progress.done();
    this.csv?.close();
  }

  /** Renders the final plots, then says how the run ended and where its outputs are. */
  async finish(summary: TrainingSummary, paths: RunPaths): Promise<void> {
    this.plots!.request({ live: false });
    await this.plots!.idle();
    await closeReportRenderer();
    this.say(endLines(summary, paths).join("\n"));
  }
}
