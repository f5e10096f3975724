/**
 * Sends each finished job's signed callback (callback.ts) and records every attempt in the job, so a restart
 * resumes what is still owed. The payload is the public job (paths already made relative and secrets removed
 * when the job was finished, and the report capped), minus the callback state and the event log.
 */
import { type CallbackOptions, deliver } from "./callback.ts";
import { publicJob } from "./schema.ts";
import type { JobStore } from "./store.ts";

export class Deliveries {
  private readonly stop = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly store: JobStore,
    private readonly opts: CallbackOptions | undefined,
    private readonly log: (line: string) => void,
  ) {}

  /** Starts delivering job `id`'s callback when one is owed (no-op without a signing secret). */
  send(id: string): void {
    const job = this.store.get(id);
    if (!job?.callback || job.callback.state !== "pending" || !this.opts) return;
    const { callback: _c, events: _e, ...payload } = publicJob(job);
    const body = JSON.stringify(payload);
    const p = deliver(job.callback.url, body, this.opts, {
      stop: this.stop.signal,
      headers: { "x-maieutic-job-id": id },
      onAttempt: async (_n, r) => {
        await this.store.update(id, (j) => {
          const c = j.callback!;
          c.attempts += 1;
          if (r.ok) {
            c.state = "delivered";
            c.delivered_at = new Date().toISOString();
            c.last_error = undefined;
          } else c.last_error = r.error;
        });
      },
    }).then(async (last) => {
      if (!last.ok && !this.stop.signal.aborted) {
        await this.store.update(id, (j) => void (j.callback!.state = "failed"));
        this.log(`jobs: ${id} callback failed after ${job.callback!.attempts} attempts: ${last.error}`);
      }
    }).catch((e) => this.log(`jobs: ${id} callback: ${(e as Error).message}`));
    this.inFlight.add(p);
    p.finally(() => this.inFlight.delete(p));
  }

  /** Ends the retries (what is undelivered stays pending for the next start) and waits for attempts in flight. */
  async close(): Promise<void> {
    this.stop.abort();
    await Promise.all([...this.inFlight]);
  }
}
