/**
 * GPU timing for `maieutic bench`. A batch of repeated dispatches is recorded into ONE command buffer,
 * submitted, and awaited once; pipelines are compiled while recording (getKernel), before the clock starts.
 * Two clocks:
 *   - GPU timestamps (feature "timestamp-query"): a begin/end timestamp around every dispatch's compute pass
 *     (Recorder profile mode); the time of a repetition is the sum of its dispatches' spans, so the submit and
 *     the host wait are not in it. wgpu resolves timestamps in device ticks, not the nanoseconds WebGPU
 *     specifies (gfx-rs/wgpu#6719; one tick is 1 ns on NVIDIA, longer on Intel and AMD), and some drivers
 *     write zeros, so each reading is checked against the wall clock of the same submit (`judgeTimestamps`)
 *     and the wall figure used when they disagree; all zeros turn the timestamps off for the rest of the run.
 *     (lavapipe's pass timestamps, Mesa 25, are real and agree with the wall clock: BENCHMARKS.md.)
 *   - wall clock around `queue.onSubmittedWorkDone()`: the fixed cost of a submit + await (≥ 11 ms on
 *     lavapipe, measured by `overhead()` with an empty command buffer) is subtracted and the rest divided by
 *     the repetitions.
 * The training step (src/bench/step.ts) is always timed by the wall clock: tokens/s is what a user waits for.
 */
import { idle } from "../gpu/readback.ts";
import type { Gpu } from "../gpu/device.ts";
import { checkKernels } from "../gpu/kernel.ts";
import { type KernelTiming, Recorder } from "../gpu/recorder.ts";

export type Clock = "timestamps" | "wall";

export interface Timing {
  /** Milliseconds per repetition: by the GPU timestamps, or the wall clock less the submit + await overhead. */
  ms: number;
  /** Repetitions in the timed command buffer. */
  reps: number;
  /** Wall milliseconds of the timed submit + await. */
  wallMs: number;
  /** Which clock `ms` comes from. */
  clock: Clock;
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
  /** "wall" times by the wall clock even where timestamps work (default "auto": timestamps when trusted). */
  clock?: "auto" | "wall";
}

/** The most dispatches one profiled run records (a seed-config step has ~1 500; query sets of 2 048 each). */
const MAX_PROFILED = 8192;

/**
 * Whether the timestamps of one run can be believed, given its wall time less the submit overhead. GPU time
 * above the wall time (beyond clock jitter), or far below it, means the values are not nanoseconds (a tick
 * period other than 1 ns, or zeros); between, the dispatches' own spans are the better figure (no host wait).
 */
export function judgeTimestamps(
  gpuMs: number,
  wallNetMs: number,
): { ok: true } | { ok: false; reason: string } {
  if (!(gpuMs > 0)) return { ok: false, reason: "the timestamp queries read zero" };
  if (gpuMs > wallNetMs * 1.1 + 0.2) {
    return {
      ok: false,
      reason: `timestamps ${gpuMs.toFixed(3)} ms exceed the wall clock ${wallNetMs.toFixed(3)} ms`,
    };
  }
  if (gpuMs < wallNetMs * 0.25 && wallNetMs > 1) {
    return {
      ok: false,
      reason: `timestamps ${gpuMs.toFixed(3)} ms are under a quarter of the wall clock ${
        wallNetMs.toFixed(3)
      } ms (a timestamp tick is probably not 1 ns on this device)`,
    };
  }
  return { ok: true };
}

/** Total milliseconds of a run's dispatch spans. */
function spanMs(spans: readonly KernelTiming[]): number {
  return spans.reduce((a, t) => a + t.ns, 0) / 1e6;
}

/** Records into a Recorder; called once per repetition. */
export type RecordFn = (rec: Recorder) => void;

export class GpuTimer {
  private overheadMs: number | undefined;
  /** null while timestamps are still tried; the reason once they are off. */
  private timestampsOff: string | null;
  /** Measurements taken by each clock (for the report). */
  readonly counts: Record<Clock, number> = { timestamps: 0, wall: 0 };
  /** Why the last measurements fell back to the wall clock, if they did. */
  lastFallback: string | undefined;

  /** `clock: "wall"` never tries the timestamps (`maieutic bench --clock wall`). */
  constructor(readonly gpu: Gpu, o: { clock?: "auto" | "wall" } = {}) {
    this.timestampsOff = o.clock === "wall"
      ? "--clock wall"
      : gpu.timestamps
      ? null
      : "the adapter has no timestamp-query feature";
  }

  /**
   * One submit of `reps` recordings, its wall time and, when profiled, every dispatch's span (undefined when
   * some dispatches went unprofiled: more than MAX_PROFILED).
   */
  private async run(
    fn: RecordFn,
    reps: number,
    make: (o: { profile: boolean; maxProfiled: number }) => Recorder,
    profile = false,
  ): Promise<{ wall: number; spans?: KernelTiming[] }> {
    const rec = make({ profile, maxProfiled: MAX_PROFILED });
    for (let i = 0; i < reps; i++) fn(rec);
    const t0 = performance.now();
    rec.submit();
    await idle(this.gpu);
    const wall = performance.now() - t0;
    if (!profile) return { wall };
    const spans = await rec.timings();
    return { wall, spans: spans.length === rec.dispatchCount ? spans : undefined };
  }

  private plain(label: string) {
    return (o: { profile: boolean; maxProfiled: number }) => new Recorder(this.gpu, { label, ...o });
  }

  /** Median wall time of an empty submit + await (cached). */
  async overhead(): Promise<number> {
    if (this.overheadMs === undefined) {
      const t: number[] = [];
      for (let i = 0; i < 5; i++) t.push((await this.run(() => {}, 0, this.plain("bench-empty"))).wall);
      t.sort((a, b) => a - b);
      this.overheadMs = t[2];
    }
    return this.overheadMs;
  }

  /**
   * GPU time of each dispatch of one recording (warm: call after the same work has run), or the reason there
   * is none: no trusted timestamps, more than MAX_PROFILED dispatches, or spans that disagree with the wall
   * clock of the same submit.
   */
  async spans(
    fn: RecordFn,
    make: (o: { profile: boolean; maxProfiled: number }) => Recorder,
  ): Promise<{ spans: KernelTiming[] } | { reason: string }> {
    if (this.timestampsOff !== null) return { reason: this.timestampsOff };
    const over = await this.overhead();
    const r = await this.run(fn, 1, make, true);
    await checkKernels(this.gpu);
    if (!r.spans) return { reason: `more than ${MAX_PROFILED} dispatches to profile` };
    const j = judgeTimestamps(spanMs(r.spans), Math.max(r.wall - over, 1e-3));
    return j.ok ? { spans: r.spans } : { reason: j.reason };
  }

  /** The clock in use for kernel figures, in words (for the report's machine section). */
  describe(): string {
    const wall = "wall clock around queue.onSubmittedWorkDone(), submit overhead subtracted";
    if (this.timestampsOff !== null) return `${wall} (GPU timestamps not used: ${this.timestampsOff})`;
    const fb = this.counts.wall > 0
      ? `; ${this.counts.wall} measurement(s) fell back to the wall clock (last: ${this.lastFallback})`
      : "";
    return `GPU timestamps around each dispatch (${this.counts.timestamps} measurement(s)), checked against ` +
      `the ${wall}${fb}; the training step by the wall clock`;
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
    // A custom Recorder (e.g. the step's family filter) is not profiled: it times by the wall clock.
    const auto = (o.clock ?? "auto") === "auto" && !o.recorder;
    const measure = async (reps: number): Promise<Timing> => {
      const profile = auto && this.timestampsOff === null;
      const r = await this.run(fn, reps, o.recorder ?? this.plain(label), profile);
      await checkKernels(this.gpu);
      const wallNet = Math.max(r.wall - over, 1e-3);
      if (r.spans) {
        const gpuMs = spanMs(r.spans);
        const j = judgeTimestamps(gpuMs, wallNet);
        if (j.ok) return { ms: gpuMs / reps, reps, wallMs: r.wall, clock: "timestamps" };
        this.lastFallback = j.reason;
        if (gpuMs === 0) this.timestampsOff = j.reason;
      }
      return { ms: wallNet / reps, reps, wallMs: r.wall, clock: "wall" };
    };
    const pilot = await measure(1);
    let t = pilot;
    if (pilot.ms < (o.acceptPilotMs ?? 1500)) {
      const reps = Math.max(1, Math.min(maxReps, Math.ceil(minMs / Math.max(pilot.ms, 0.05))));
      t = await measure(reps);
    }
    if (auto) this.counts[t.clock]++;
    return t;
  }
}
