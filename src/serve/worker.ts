/**
 * The queue's worker: one job at a time, first in first out, each under a time limit and cancellable. A job is
 * marked `running` on disk before its runner starts (so a crash at any later point is recovered as an
 * interrupted run, and its eval child found by job id: orphans.ts); a shutdown requeues the running job
 * without counting the attempt.
 */
import type { JobRunner } from "./runner.ts";
import type { JobStore } from "./store.ts";
import type { EvalJob } from "./schema.ts";

export class CancelReason extends Error {
  override name = "Cancelled";
}
export class TimeoutReason extends Error {
  override name = "Timeout";
}
export class ShutdownReason extends Error {
  override name = "Shutdown";
}

export interface FinishInput {
  report?: Record<string, unknown>;
  error?: string;
  runMs?: number;
}

export interface WorkerOptions {
  store: JobStore;
  runner: JobRunner;
  timeoutMs: number;
  /** how long to wait for a runner that ignores its abort signal */
  abortGraceMs: number;
  log: (line: string) => void;
  /** records a job's end (the server cleans the report and error, then sends the callback) */
  finish: (id: string, status: "succeeded" | "failed" | "cancelled", r: FinishInput) => Promise<void>;
}

export class Worker {
  private current: { id: string; ac: AbortController; done: Promise<void> } | undefined;
  private wakeUp: (() => void) | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly o: WorkerOptions) {}

  start(): void {
    this.loop ??= this.workLoop();
  }

  /** A new job is queued. */
  wake(): void {
    this.wakeUp?.();
  }

  running(): boolean {
    return this.current !== undefined;
  }

  /** Cancels the running job `id`; resolves when it stopped (or after 10 s). */
  async cancel(id: string): Promise<void> {
    const cur = this.current;
    if (!cur || cur.id !== id) return;
    cur.ac.abort(new CancelReason("cancelled by request"));
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([cur.done, new Promise((r) => (t = setTimeout(r, 10_000)))]);
    clearTimeout(t);
  }

  /** Stops the loop; the running job is aborted and requeued. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.current?.ac.abort(new ShutdownReason("server shutting down"));
    this.wakeUp?.();
    await this.loop;
  }

  private async workLoop(): Promise<void> {
    while (!this.stopping) {
      const next = this.o.store.queued()[0];
      if (!next) {
        await new Promise<void>((r) => (this.wakeUp = r));
        this.wakeUp = undefined;
        continue;
      }
      try {
        await this.runOne(next);
      } catch (e) {
        // Only a failing disk gets here; back off rather than spin.
        this.o.log(`jobs: ${next.id}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async runOne(job: EvalJob): Promise<void> {
    const { store } = this.o;
    const ac = new AbortController();
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    this.current = { id: job.id, ac, done };
    try {
      const started = Date.now();
      // On disk before the child exists: a crash from here on is seen as an interrupted run.
      await store.update(job.id, (j) => {
        j.status = "running";
        j.attempts += 1;
        j.started_at = new Date(started).toISOString();
        j.timings.queued_ms = started - Date.parse(j.created_at);
      });
      this.o.log(`jobs: ${job.id} running (attempt ${job.attempts})`);
      const timer = setTimeout(
        () => ac.abort(new TimeoutReason(`timed out after ${this.o.timeoutMs / 1000} s`)),
        this.o.timeoutMs,
      );
      let report: Record<string, unknown> | undefined;
      let error: unknown;
      try {
        // A cancel that arrived while the job was being marked running: the runner never starts.
        ac.signal.throwIfAborted();
        report = await this.raceAbort(this.o.runner(job, ac.signal), ac.signal);
      } catch (e) {
        error = e;
      } finally {
        clearTimeout(timer);
      }
      const runMs = Date.now() - started;
      const reason = ac.signal.aborted ? ac.signal.reason : undefined;
      if (error === undefined) {
        // It finished: whatever arrived meanwhile (cancel, timeout, shutdown), the report stands.
        await this.o.finish(job.id, "succeeded", { report, runMs });
      } else if (reason instanceof ShutdownReason) {
        await store.update(job.id, (j) => {
          j.status = "queued";
          j.attempts -= 1;
          j.started_at = undefined;
          j.pid = undefined;
          j.pid_start = undefined;
          j.events.push({ at: new Date().toISOString(), note: "server shut down while running; requeued" });
        });
      } else if (reason instanceof CancelReason) {
        await this.o.finish(job.id, "cancelled", { error: "cancelled while running", runMs });
      } else if (reason instanceof TimeoutReason) {
        await this.o.finish(job.id, "failed", { error: reason.message, runMs });
      } else {
        await this.o.finish(job.id, "failed", { error: (error as Error)?.message ?? String(error), runMs });
      }
    } finally {
      this.current = undefined;
      resolveDone();
    }
  }

  /** The runner's result, or a rejection once `signal` aborted and the runner ignored it for abortGraceMs. */
  private raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => {
        timer = setTimeout(() => reject(signal.reason), this.o.abortGraceMs);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      p.then(resolve, reject).finally(() => {
        signal.removeEventListener("abort", onAbort);
        if (timer !== undefined) clearTimeout(timer);
      });
    });
  }
}
