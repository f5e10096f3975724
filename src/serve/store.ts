/**
 * The persistent job store: one JSON file per job, `<jobs-dir>/<id>.json`, written atomically and durably
 * (temp file, fsync, rename, fsync of the directory), so an accepted job survives a crash of the process or
 * of the machine. Writes of one job are serialized so an older state can never land after a newer one.
 *
 * On open, the store recovers what a crash left: a job that was `running` is requeued once (what is left of
 * its eval subprocess, found by the job id in its environment, is killed first; orphans.ts) and failed on the
 * second interruption; `queued` jobs stay queued in submission order. Finished jobs older than `keepDays`
 * (default 30) are deleted with the eval files they wrote (`outputs`), on open and by `prune()`, which the
 * server runs periodically (a job whose callback is still owed is kept).
 */
import { join, normalize, sep } from "node:path";
import { reapJob } from "./orphans.ts";
import { type EvalJob, EvalJobSchema, FINAL_STATUSES, type JobStatus } from "./schema.ts";

const ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export function isJobId(s: string): boolean {
  return ID_RE.test(s);
}

/** temp + fsync + rename + fsync(dir): survives a power cut once it resolved. */
export async function writeDurable(path: string, text: string, dir: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const data = new TextEncoder().encode(text);
  try {
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      let off = 0;
      while (off < data.length) off += await f.write(data.subarray(off));
      await f.sync();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch { /* directories cannot be fsynced on every platform; the rename is still atomic */ }
}

export interface RecoveryReport {
  requeued: string[];
  failed: string[];
  corrupt: string[];
  /** finished jobs deleted for being older than keepDays */
  pruned: string[];
}

/** Finished jobs are kept this many days by default (`maieutic serve --keep-days`). */
export const DEFAULT_KEEP_DAYS = 30;

export interface StoreOptions {
  /** runs a job may start in total (an interrupted run is retried until this many); default 2 */
  maxAttempts?: number;
  /** finished jobs older than this many days (by finished_at) are deleted on open; 0 keeps all; default 30 */
  keepDays?: number;
  /** the clock, for tests (default Date.now) */
  now?: () => number;
  /** kills what is left of a crashed server's eval subprocess for a job (default: reapJob, by job id) */
  reap?: (pid: number | undefined, jobId: string) => Promise<void>;
  /** a job's `outputs` are deleted with it only when inside one of these (and under an `evals` directory) */
  outputRoots?: string[];
  log?: (line: string) => void;
}

/** The default reaper: every process started for the job (found by MAIEUTIC_JOB_ID), killed and waited for. */
export async function reapOrphan(_pid: number | undefined, jobId: string): Promise<void> {
  await reapJob(jobId);
}

export class JobStore {
  private jobs = new Map<string, EvalJob>();
  private chains = new Map<string, Promise<void>>();
  /** jobs whose first write is in flight: counted in the queue depth, not yet handed to the worker */
  private adding = new Set<string>();
  private nextSeq = 0;
  private keepDays = DEFAULT_KEEP_DAYS;
  private outputRoots: string[] = [];
  private log: (line: string) => void = () => {};

  private constructor(readonly dir: string) {}

  /** Loads every job under `dir` (created if missing) and recovers interrupted ones. */
  static async open(
    dir: string,
    opts: StoreOptions = {},
  ): Promise<{ store: JobStore; recovered: RecoveryReport }> {
    const maxAttempts = opts.maxAttempts ?? 2;
    const reap = opts.reap ?? reapOrphan;
    const log = opts.log ?? (() => {});
    await Deno.mkdir(dir, { recursive: true });
    const store = new JobStore(dir);
    store.keepDays = opts.keepDays ?? DEFAULT_KEEP_DAYS;
    store.outputRoots = opts.outputRoots ?? [];
    store.log = log;
    const recovered: RecoveryReport = { requeued: [], failed: [], corrupt: [], pruned: [] };
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile) continue;
      if (e.name.endsWith(".tmp")) {
        await Deno.remove(join(dir, e.name)).catch(() => {});
        continue;
      }
      const m = e.name.match(/^(.+)\.json$/);
      if (!m || !isJobId(m[1])) continue;
      const path = join(dir, e.name);
      let job: EvalJob;
      try {
        job = EvalJobSchema.parse(JSON.parse(await Deno.readTextFile(path)));
        if (job.id !== m[1]) throw new Error("id does not match the file name");
      } catch (err) {
        // Keep the bytes for a human, out of the way of the next start.
        await Deno.rename(path, `${path}.corrupt`).catch(() => {});
        recovered.corrupt.push(m[1]);
        log(`jobs: ${e.name} is unreadable (${(err as Error).message}); moved to ${e.name}.corrupt`);
        continue;
      }
      store.nextSeq = Math.max(store.nextSeq, job.seq + 1);
      store.jobs.set(job.id, job);
    }
    recovered.pruned = await store.prune((opts.now ?? Date.now)());
    const now = new Date().toISOString();
    for (const job of store.jobs.values()) {
      if (job.status !== "running") continue;
      // Found by job id, so a crash between the spawn and the pid's write leaves no orphan behind.
      await reap(job.pid, job.id);
      job.pid = undefined;
      job.pid_start = undefined;
      if (job.attempts >= maxAttempts) {
        job.status = "failed";
        job.finished_at = now;
        job.error =
          `the server stopped while this job was running (attempt ${job.attempts} of ${maxAttempts}); ` +
          "not retried again";
        job.events.push({ at: now, note: "server restarted while running; failed" });
        if (job.callback) job.callback.state = "pending";
        recovered.failed.push(job.id);
      } else {
        job.status = "queued";
        job.started_at = undefined;
        job.events.push({ at: now, note: "server restarted while running; requeued for a retry" });
        recovered.requeued.push(job.id);
      }
      await store.persist(job.id);
    }
    return { store, recovered };
  }

  /**
   * Deletes finished jobs older than keepDays (by finished_at; never one whose callback is still owed), with
   * the eval report files they wrote. Returns their ids.
   */
  async prune(now = Date.now()): Promise<string[]> {
    if (!(this.keepDays > 0)) return [];
    const cutoff = now - this.keepDays * 86_400_000;
    const gone: string[] = [];
    for (const job of [...this.jobs.values()]) {
      const finished = job.finished_at ? Date.parse(job.finished_at) : NaN;
      if (!FINAL_STATUSES.includes(job.status) || !(finished < cutoff) || job.callback?.state === "pending") {
        continue;
      }
      if (this.chains.has(job.id)) continue; // a write in flight: next time
      this.jobs.delete(job.id);
      await Deno.remove(join(this.dir, `${job.id}.json`)).catch(() => {});
      for (const f of job.outputs ?? []) {
        if (this.isOutput(f)) await Deno.remove(f).catch(() => {});
      }
      gone.push(job.id);
    }
    if (gone.length) {
      this.log(`jobs: removed ${gone.length} finished job(s) older than ${this.keepDays} days (--keep-days)`);
    }
    return gone;
  }

  /** A file an eval of ours may have written: under an `evals` directory inside an output root. */
  private isOutput(f: string): boolean {
    const n = normalize(f);
    return this.outputRoots.some((r) => n.startsWith(normalize(r) + sep)) &&
      n.split(sep).slice(0, -1).includes("evals") && !n.split(sep).includes("..");
  }

  /** The job holding an idempotency key, if any. */
  byIdempotencyKey(key: string): EvalJob | undefined {
    for (const j of this.jobs.values()) if (j.idempotency_key === key) return j;
    return undefined;
  }

  /** The next submission number (submission order survives restarts). */
  takeSeq(): number {
    return this.nextSeq++;
  }

  get(id: string): EvalJob | undefined {
    return this.jobs.get(id);
  }

  /** Adds a new job and resolves once it is durably on disk. */
  async add(job: EvalJob): Promise<void> {
    this.jobs.set(job.id, job);
    this.adding.add(job.id);
    try {
      await this.persist(job.id);
    } catch (e) {
      this.jobs.delete(job.id);
      throw e;
    } finally {
      this.adding.delete(job.id);
    }
  }

  /** Applies `mutate` in memory now and resolves once that state (or a later one) is on disk. */
  update(id: string, mutate: (job: EvalJob) => void): Promise<EvalJob> {
    const job = this.jobs.get(id);
    if (!job) return Promise.reject(new Error(`no job ${id}`));
    mutate(job);
    return this.persist(id).then(() => job);
  }

  /**
   * Queued jobs in submission order, up to the first one whose first write is still in flight (so jobs run
   * strictly first-in first-out, and never before they are durable).
   */
  queued(): EvalJob[] {
    const all = [...this.jobs.values()].filter((j) => j.status === "queued").sort((a, b) => a.seq - b.seq);
    const firstAdding = all.findIndex((j) => this.adding.has(j.id));
    return firstAdding < 0 ? all : all.slice(0, firstAdding);
  }

  count(status: JobStatus): number {
    let n = 0;
    for (const j of this.jobs.values()) if (j.status === status) n++;
    return n;
  }

  /** Final jobs whose callback is still to be delivered. */
  pendingCallbacks(): EvalJob[] {
    return [...this.jobs.values()].filter((j) =>
      FINAL_STATUSES.includes(j.status) && j.callback?.state === "pending"
    );
  }

  /** Newest first; `before` is the seq cursor of the previous page's last job. */
  list(
    opts: { limit: number; before?: number; status?: JobStatus },
  ): { jobs: EvalJob[]; next: number | null } {
    const all = [...this.jobs.values()]
      .filter((j) =>
        (opts.before === undefined || j.seq < opts.before) && (!opts.status || j.status === opts.status)
      )
      .sort((a, b) => b.seq - a.seq);
    const jobs = all.slice(0, opts.limit);
    return { jobs, next: all.length > opts.limit ? jobs[jobs.length - 1].seq : null };
  }

  size(): number {
    return this.jobs.size;
  }

  /** Waits for every pending write. */
  async flush(): Promise<void> {
    await Promise.all([...this.chains.values()]);
  }

  private persist(id: string): Promise<void> {
    const prev = this.chains.get(id) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(async () => {
      const job = this.jobs.get(id);
      if (job) {
        await writeDurable(join(this.dir, `${id}.json`), JSON.stringify(job, null, 2) + "\n", this.dir);
      }
    });
    this.chains.set(id, next);
    next.finally(() => {
      if (this.chains.get(id) === next) this.chains.delete(id);
    }).catch(() => {});
    return next;
  }
}
