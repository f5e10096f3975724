/**
 * Wall-clock GPU timing for `maieutic bench`. Timestamp queries exist on lavapipe but read zeros, so every
 * figure here is host wall time around `queue.onSubmittedWorkDone()`: a batch of repeated dispatches is
 * recorded into ONE command buffer, submitted, and awaited once; the fixed cost of a submit + await (≥ 11 ms on
 * lavapipe, measured by `overhead()` with an empty command buffer) is subtracted and the rest divided by the
 * repetitions. Pipelines are compiled while recording (getKernel), before the clock starts.
 */
import type { Gpu } from "../gpu/device.ts";
import { checkKernels } from "../gpu/kernel.ts";
import { Recorder } from "../gpu/recorder.ts";

export interface Timing {
  /** Milliseconds per repetition, submit + await overhead removed. */
  ms: number;
  /** Repetitions in the timed command buffer. */
  reps: number;
  /** Wall milliseconds of the timed submit + await. */
  wallMs: number;
}

export interface TimeOptions {
  /** Aim for at least this much GPU time in the timed command buffer (default 200 ms). */
  minMs?: number;
  /** Never record more than this many repetitions (default 64). */
  maxReps?: number;
  /** A pilot longer than this is taken as the measurement (no second run; default 1500 ms). */
  acceptPilotMs?: number;
  /** Label of the command buffers. */
  label?: string;
  /** Makes the Recorder of each run (default a plain Recorder), e.g. one that filters dispatches. */
  recorder?: () => Recorder;
}

/** Records into a Recorder; called once per repetition. */
export type RecordFn = (rec: Recorder) => void;

export class GpuTimer {
  private overheadMs: number | undefined;

  constructor(readonly gpu: Gpu) {}

  private async run(fn: RecordFn, reps: number, label: string, make?: () => Recorder): Promise<number> {
    const rec = make ? make() : new Recorder(this.gpu, { label });
    for (let i = 0; i < reps; i++) fn(rec);
    const t0 = performance.now();
    rec.submit();
    await this.gpu.device.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  }

  /** Median wall time of an empty submit + await (cached). */
  async overhead(): Promise<number> {
    if (this.overheadMs === undefined) {
      const t: number[] = [];
      for (let i = 0; i < 5; i++) t.push(await this.run(() => {}, 0, "bench-empty"));
      t.sort((a, b) => a - b);
      this.overheadMs = t[2];
    }
    return this.overheadMs;
  }

  /**
   * Times `fn`: a pilot run of one repetition (it takes the first-execution costs: lazily committed memory,
   * cold caches), then a timed run of enough repetitions for minMs, unless the pilot alone lasted
   * acceptPilotMs (then it is the measurement). Throws the first WebGPU error.
   */
  async time(fn: RecordFn, o: TimeOptions = {}): Promise<Timing> {
    const minMs = o.minMs ?? 200;
    const maxReps = o.maxReps ?? 64;
    const label = o.label ?? "bench";
    const over = await this.overhead();
    const pilotWall = await this.run(fn, 1, label, o.recorder);
    await checkKernels(this.gpu);
    const pilot = pilotWall - over;
    if (pilot >= (o.acceptPilotMs ?? 1500)) return { ms: Math.max(pilot, 1e-3), reps: 1, wallMs: pilotWall };
    const reps = Math.max(1, Math.min(maxReps, Math.ceil(minMs / Math.max(pilot, 0.05))));
    const wall = await this.run(fn, reps, label, o.recorder);
    await checkKernels(this.gpu);
    return { ms: Math.max(wall - over, 1e-3) / reps, reps, wallMs: wall };
  }
}
