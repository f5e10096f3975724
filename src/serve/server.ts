/**
 * The eval-job HTTP API (`maieutic serve`, issue #9): one eval at a time on the GPU, a bounded persistent
 * queue, bearer-token auth (constant time) with optional HMAC request signing, signed callbacks.
 *
 *   GET    /healthz               no auth: GPU adapter, model, queue depth
 *   POST   /v1/eval-jobs          {adapter, data, generate?, max_samples?, callback_url?} -> 202 {id, status}
 *   GET    /v1/eval-jobs          ?limit=1..100&cursor=&status= -> {jobs, next_cursor} (newest first)
 *   GET    /v1/eval-jobs/:id      the job: status, timings, report when done
 *   DELETE /v1/eval-jobs/:id      cancels a queued or running job
 *
 * Errors are JSON `{error, field?}`: 400 (schema, names the field; paths outside the roots), 401, 404, 405,
 * 409 (cancelling a finished job), 413 (body over 64 KiB), 429 (queue full, with Retry-After).
 * Neither the token nor the signing secret is ever logged, stored or passed to the eval subprocess.
 */
import { checkCallbackUrl, deliver } from "./callback.ts";
import type { CallbackOptions } from "./callback.ts";
import { makeRoots, PathError, resolveAdapter, resolveData, type Roots } from "./paths.ts";
import { createSubprocessRunner, type JobRunner } from "./runner.ts";
import {
  type EvalJob,
  EvalJobRequestSchema,
  FINAL_STATUSES,
  firstIssue,
  JobStatusSchema,
  publicJob,
} from "./schema.ts";
import { bearer, SIGNATURE_HEADER, timingSafeEqual, verify } from "./sign.ts";
import { isJobId, JobStore, type RecoveryReport } from "./store.ts";

export const MAX_BODY_BYTES = 64 * 1024;

export interface ServeOptions {
  /** bearer token (MAIEUTIC_EVAL_TOKEN); required unless insecureLocalhost and bound to 127.0.0.1 */
  token?: string;
  /** HMAC secret (MAIEUTIC_SIGNING_SECRET): verifies X-Maieutic-Signature, signs callbacks */
  signingSecret?: string;
  /** refuse /v1 requests without a valid signature (needs signingSecret) */
  requireSignature?: boolean;
  /** no token needed (only on 127.0.0.1); also admits http loopback callback URLs */
  insecureLocalhost?: boolean;
  /** admit http://127.0.0.1 callback URLs (tests); default: insecureLocalhost */
  allowLoopbackCallbacks?: boolean;
  hostname?: string;
  port?: number;
  dataRoots: string[];
  adapterRoot: string;
  jobsDir: string;
  /** most queued (waiting) jobs; default 16 */
  queueSize?: number;
  /** per job, seconds; default 3600 */
  jobTimeoutS?: number;
  /** base model passed to eval as --model */
  model?: string;
  /** default: the `maieutic eval` subprocess runner */
  runner?: JobRunner;
  /** for the default runner: program + leading args instead of maieuticCommand() (tests: a stand-in script) */
  evalCommand?: string[];
  /** for the default runner: SIGTERM -> SIGKILL grace, ms (default 5000) */
  killGraceMs?: number;
  maxBodyBytes?: number;
  /** callback retry policy (secret comes from signingSecret) */
  callback?: Omit<CallbackOptions, "secret">;
  /** runs a job may start in total across crashes; default 2 (retried once) */
  maxAttempts?: number;
  /** finished jobs older than this many days are deleted at start (0 keeps all; default 30) */
  keepDays?: number;
  /** how long the worker waits for a runner that ignores its abort signal; default 10000 ms */
  abortGraceMs?: number;
  /** shown by /healthz */
  adapterInfo?: unknown;
  log?: (line: string) => void;
  cwd?: string;
}

class CancelReason extends Error {
  override name = "Cancelled";
}
class TimeoutReason extends Error {
  override name = "Timeout";
}
class ShutdownReason extends Error {
  override name = "Shutdown";
}

interface Current {
  id: string;
  ac: AbortController;
  done: Promise<void>;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
  });
}

function problem(
  status: number,
  error: string,
  field?: string,
  headers: Record<string, string> = {},
): Response {
  return json(status, field ? { error, field } : { error }, headers);
}

/** Reads at most `limit` bytes; undefined when the body is larger. */
async function readLimited(req: Request, limit: number): Promise<Uint8Array | undefined> {
  const cl = req.headers.get("content-length");
  if (cl !== null && Number(cl) > limit) {
    await req.body?.cancel().catch(() => {});
    return undefined;
  }
  if (!req.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export class EvalServer {
  readonly store: JobStore;
  readonly recovered: RecoveryReport;
  private readonly roots: Roots;
  private readonly opts: ServeOptions;
  private readonly runner: JobRunner;
  private readonly queueSize: number;
  private readonly timeoutMs: number;
  private readonly log: (line: string) => void;
  private current: Current | undefined;
  private wakeUp: (() => void) | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private readonly stopCallbacks = new AbortController();
  private readonly deliveries = new Set<Promise<void>>();
  private readonly seenSignatures = new Map<string, number>();
  private httpServer: Deno.HttpServer | undefined;

  private constructor(opts: ServeOptions, store: JobStore, recovered: RecoveryReport, roots: Roots) {
    this.opts = opts;
    this.store = store;
    this.recovered = recovered;
    this.roots = roots;
    this.queueSize = opts.queueSize ?? 16;
    this.timeoutMs = (opts.jobTimeoutS ?? 3600) * 1000;
    const sink = opts.log ?? ((l: string) => console.error(l));
    this.log = (line) => sink(this.redact(line));
    this.runner = opts.runner ?? createSubprocessRunner({
      cwd: opts.cwd,
      command: opts.evalCommand,
      killGraceMs: opts.killGraceMs,
      onSpawn: (job, pid) => void this.store.update(job.id, (j) => void (j.pid = pid)).catch(() => {}),
    });
  }

  /** Validates the security settings, opens the store (recovering a crash) and the roots. */
  static async create(opts: ServeOptions): Promise<EvalServer> {
    const host = opts.hostname ?? "127.0.0.1";
    if (!opts.token && !(opts.insecureLocalhost && host === "127.0.0.1")) {
      throw new Error(
        "MAIEUTIC_EVAL_TOKEN is not set: the server refuses to start without a token " +
          "(or run with --insecure-localhost bound to 127.0.0.1)",
      );
    }
    if (opts.requireSignature && !opts.signingSecret) {
      throw new Error("--require-signature needs MAIEUTIC_SIGNING_SECRET");
    }
    if (opts.queueSize !== undefined && !(Number.isInteger(opts.queueSize) && opts.queueSize >= 1)) {
      throw new Error("queue size must be an integer >= 1");
    }
    if (opts.jobTimeoutS !== undefined && !(opts.jobTimeoutS > 0)) throw new Error("job timeout must be > 0");
    const roots = await makeRoots(opts.dataRoots, opts.adapterRoot, opts.cwd);
    const log = opts.log ?? ((l: string) => console.error(l));
    const { store, recovered } = await JobStore.open(opts.jobsDir, {
      maxAttempts: opts.maxAttempts,
      keepDays: opts.keepDays,
      log,
    });
    return new EvalServer(opts, store, recovered, roots);
  }

  /** Starts the worker and resumes undelivered callbacks. */
  start(): void {
    if (this.loop) return;
    for (const id of this.recovered.requeued) {
      this.log(`jobs: ${id} was running when the server stopped; requeued`);
    }
    for (const id of this.recovered.failed) this.log(`jobs: ${id} was interrupted twice; failed`);
    for (const job of this.store.pendingCallbacks()) this.sendCallback(job.id);
    this.loop = this.workLoop();
  }

  /** Starts the worker and listens (port 0 picks a free port). */
  listen(): Promise<Deno.NetAddr> {
    this.start();
    return new Promise((resolve) => {
      this.httpServer = Deno.serve({
        hostname: this.opts.hostname ?? "127.0.0.1",
        port: this.opts.port ?? 8787,
        onListen: (addr) => resolve(addr as Deno.NetAddr),
      }, (req) => this.handle(req));
    });
  }

  /**
   * Stops listening and working. A running job is stopped and requeued (its attempt not counted), undelivered
   * callbacks stay pending; all of it resumes on the next start.
   */
  async close(): Promise<void> {
    this.stopping = true;
    await this.httpServer?.shutdown();
    this.current?.ac.abort(new ShutdownReason("server shutting down"));
    this.stopCallbacks.abort();
    this.wakeUp?.();
    await this.loop;
    await Promise.all([...this.deliveries]);
    await this.store.flush();
  }

  queueDepth(): number {
    return this.store.count("queued");
  }

  private redact(s: string): string {
    for (const secret of [this.opts.token, this.opts.signingSecret]) {
      if (secret) s = s.split(secret).join("***");
    }
    return s;
  }

  // ---- HTTP ------------------------------------------------------------------------------------------------

  /** The request handler (exported for in-process tests). */
  async handle(req: Request): Promise<Response> {
    const t0 = performance.now();
    let res: Response;
    const url = new URL(req.url);
    try {
      res = await this.route(req, url);
    } catch (e) {
      this.log(`error: ${(e as Error).stack ?? e}`);
      res = problem(500, "internal error");
    }
    // Method, path and status only: never headers (Authorization) or bodies.
    this.log(`${req.method} ${url.pathname} ${res.status} ${(performance.now() - t0).toFixed(0)}ms`);
    return res;
  }

  private async route(req: Request, url: URL): Promise<Response> {
    const path = url.pathname;
    if (path === "/healthz") {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return problem(405, "use GET", undefined, { allow: "GET" });
      }
      return json(200, {
        status: "ok",
        adapter: this.opts.adapterInfo ?? null,
        model: this.opts.model ?? null,
        queue_depth: this.queueDepth(),
        queue_size: this.queueSize,
        running: this.current !== undefined,
      });
    }
    if (path !== "/v1/eval-jobs" && !path.startsWith("/v1/eval-jobs/")) return problem(404, "not found");

    const authErr = await this.checkToken(req);
    if (authErr) return authErr;
    const body = await readLimited(req, this.opts.maxBodyBytes ?? MAX_BODY_BYTES);
    if (body === undefined) {
      return problem(413, `request body over ${(this.opts.maxBodyBytes ?? MAX_BODY_BYTES) / 1024} KiB`);
    }
    const sigErr = await this.checkSignature(req, url, body);
    if (sigErr) return sigErr;

    if (path === "/v1/eval-jobs") {
      if (req.method === "POST") return await this.submit(body);
      if (req.method === "GET") return this.listJobs(url);
      return problem(405, "use GET or POST", undefined, { allow: "GET, POST" });
    }
    const id = path.slice("/v1/eval-jobs/".length);
    if (!isJobId(id)) return problem(404, "no such job");
    const job = this.store.get(id);
    if (!job) return problem(404, "no such job");
    if (req.method === "GET") return json(200, publicJob(job));
    if (req.method === "DELETE") return await this.cancel(job);
    return problem(405, "use GET or DELETE", undefined, { allow: "GET, DELETE" });
  }

  private async checkToken(req: Request): Promise<Response | undefined> {
    if (!this.opts.token) return undefined; // --insecure-localhost on 127.0.0.1
    const given = bearer(req.headers.get("authorization"));
    if (given !== undefined && await timingSafeEqual(given, this.opts.token)) return undefined;
    return problem(401, given === undefined ? "missing bearer token" : "bad token", undefined, {
      "www-authenticate": 'Bearer realm="maieutic"',
    });
  }

  private async checkSignature(req: Request, url: URL, body: Uint8Array): Promise<Response | undefined> {
    const header = req.headers.get(SIGNATURE_HEADER);
    if (header === null && !this.opts.requireSignature) return undefined;
    if (!this.opts.signingSecret) return problem(401, "this server has no signing secret; send no signature");
    const r = await verify(this.opts.signingSecret, header, {
      method: req.method,
      path: url.pathname + url.search,
      body,
    });
    if (!r.ok) return problem(401, r.reason);
    // A valid signature is good once (its timestamp window is 5 minutes; remembered for 11).
    const now = Date.now();
    if (this.seenSignatures.has(r.mac)) return problem(401, "replayed X-Maieutic-Signature");
    if (this.seenSignatures.size > 1000) {
      for (const [k, exp] of this.seenSignatures) if (exp < now) this.seenSignatures.delete(k);
      while (this.seenSignatures.size > 100_000) {
        this.seenSignatures.delete(this.seenSignatures.keys().next().value!);
      }
    }
    this.seenSignatures.set(r.mac, now + 11 * 60_000);
    return undefined;
  }

  private async submit(body: Uint8Array): Promise<Response> {
    let raw: unknown;
    try {
      raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    } catch {
      return problem(400, "body is not valid JSON", "(body)");
    }
    const parsed = EvalJobRequestSchema.safeParse(raw);
    if (!parsed.success) {
      const { field, message } = firstIssue(parsed.error);
      return problem(400, `${field}: ${message}`, field);
    }
    const request = parsed.data;
    if (request.callback_url !== undefined) {
      const err = checkCallbackUrl(
        request.callback_url,
        this.opts.allowLoopbackCallbacks ?? !!this.opts.insecureLocalhost,
      );
      if (err) return problem(400, err, "callback_url");
      if (!this.opts.signingSecret) {
        return problem(
          400,
          "callbacks are signed: set MAIEUTIC_SIGNING_SECRET on the server",
          "callback_url",
        );
      }
    }
    let resolved: EvalJob["resolved"];
    try {
      resolved = {
        adapter: await resolveAdapter(request.adapter, this.roots, this.opts.cwd),
        data: await resolveData(request.data, this.roots, this.opts.cwd),
      };
    } catch (e) {
      if (e instanceof PathError) return problem(400, e.message, e.field);
      throw e;
    }
    if (this.stopping) return problem(503, "server is shutting down", undefined, { "retry-after": "5" });
    // Synchronous from the check to store.add's first await: concurrent submissions cannot overfill the queue.
    if (this.queueDepth() >= this.queueSize) {
      return problem(429, `queue full (${this.queueSize} jobs waiting)`, undefined, { "retry-after": "60" });
    }
    const now = new Date().toISOString();
    const job: EvalJob = {
      id: crypto.randomUUID(),
      seq: this.store.takeSeq(),
      status: "queued",
      request,
      resolved,
      model: this.opts.model,
      attempts: 0,
      created_at: now,
      timings: {},
      events: [],
      callback: request.callback_url
        ? { url: request.callback_url, state: "pending", attempts: 0 }
        : undefined,
    };
    try {
      await this.store.add(job);
    } finally {
      this.wakeUp?.();
    }
    return json(202, { id: job.id, status: "queued" }, { location: `/v1/eval-jobs/${job.id}` });
  }

  private listJobs(url: URL): Response {
    const q = url.searchParams;
    const limit = q.has("limit") ? Number(q.get("limit")) : 20;
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      return problem(400, "limit: an integer from 1 to 100", "limit");
    }
    let before: number | undefined;
    if (q.has("cursor")) {
      before = Number(q.get("cursor"));
      if (!Number.isInteger(before) || before < 0) {
        return problem(400, "cursor: as returned in next_cursor", "cursor");
      }
    }
    let status: EvalJob["status"] | undefined;
    if (q.has("status")) {
      const s = JobStatusSchema.safeParse(q.get("status"));
      if (!s.success) return problem(400, `status: one of ${JobStatusSchema.options.join(", ")}`, "status");
      status = s.data;
    }
    const page = this.store.list({ limit, before, status });
    return json(200, {
      jobs: page.jobs.map(publicJob),
      next_cursor: page.next === null ? null : String(page.next),
    });
  }

  private async cancel(job: EvalJob): Promise<Response> {
    if (FINAL_STATUSES.includes(job.status)) return problem(409, `job already ${job.status}`);
    if (job.status === "queued") {
      await this.finish(job.id, "cancelled", { error: "cancelled before it started" });
      return json(200, publicJob(this.store.get(job.id)!));
    }
    const cur = this.current;
    if (cur && cur.id === job.id) {
      cur.ac.abort(new CancelReason("cancelled by request"));
      await Promise.race([cur.done, new Promise((r) => setTimeout(r, 10_000))]);
    }
    const after = this.store.get(job.id)!;
    return json(after.status === "cancelled" ? 200 : 202, publicJob(after));
  }

  // ---- worker ----------------------------------------------------------------------------------------------

  private async workLoop(): Promise<void> {
    while (!this.stopping) {
      const next = this.store.queued()[0];
      if (!next) {
        await new Promise<void>((r) => (this.wakeUp = r));
        this.wakeUp = undefined;
        continue;
      }
      try {
        await this.runOne(next);
      } catch (e) {
        // Only a failing disk gets here; back off rather than spin.
        this.log(`jobs: ${next.id}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async runOne(job: EvalJob): Promise<void> {
    const ac = new AbortController();
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    this.current = { id: job.id, ac, done };
    try {
      const started = Date.now();
      await this.store.update(job.id, (j) => {
        j.status = "running";
        j.attempts += 1;
        j.started_at = new Date(started).toISOString();
        j.timings.queued_ms = started - Date.parse(j.created_at);
      });
      this.log(`jobs: ${job.id} running (attempt ${job.attempts})`);
      const timer = setTimeout(
        () => ac.abort(new TimeoutReason(`timed out after ${this.timeoutMs / 1000} s`)),
        this.timeoutMs,
      );
      let report: Record<string, unknown> | undefined;
      let error: unknown;
      try {
        report = await this.raceAbort(this.runner(job, ac.signal), ac.signal);
      } catch (e) {
        error = e;
      } finally {
        clearTimeout(timer);
      }
      const runMs = Date.now() - started;
      const reason = ac.signal.aborted ? ac.signal.reason : undefined;
      if (error === undefined) {
        // It finished: whatever arrived meanwhile (cancel, timeout, shutdown), the report stands.
        await this.finish(job.id, "succeeded", { report, runMs });
      } else if (reason instanceof ShutdownReason) {
        await this.store.update(job.id, (j) => {
          j.status = "queued";
          j.attempts -= 1;
          j.started_at = undefined;
          j.pid = undefined;
          j.events.push({ at: new Date().toISOString(), note: "server shut down while running; requeued" });
        });
      } else if (reason instanceof CancelReason) {
        await this.finish(job.id, "cancelled", { error: "cancelled while running", runMs });
      } else if (reason instanceof TimeoutReason) {
        await this.finish(job.id, "failed", { error: reason.message, runMs });
      } else {
        await this.finish(job.id, "failed", { error: (error as Error)?.message ?? String(error), runMs });
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
        timer = setTimeout(() => reject(signal.reason), this.opts.abortGraceMs ?? 10_000);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      p.then(resolve, reject).finally(() => {
        signal.removeEventListener("abort", onAbort);
        if (timer !== undefined) clearTimeout(timer);
      });
    });
  }

  private async finish(
    id: string,
    status: "succeeded" | "failed" | "cancelled",
    r: { report?: Record<string, unknown>; error?: string; runMs?: number },
  ): Promise<void> {
    const end = Date.now();
    const job = await this.store.update(id, (j) => {
      j.status = status;
      j.finished_at = new Date(end).toISOString();
      j.pid = undefined;
      if (r.report) j.report = r.report;
      if (r.error !== undefined) j.error = this.redact(r.error).slice(0, 8000);
      if (r.runMs !== undefined) j.timings.run_ms = r.runMs;
      j.timings.total_ms = end - Date.parse(j.created_at);
    });
    this.log(
      `jobs: ${id} ${status}${r.error ? `: ${this.redact(r.error).split("\n")[0].slice(0, 300)}` : ""}`,
    );
    if (job.callback) this.sendCallback(id);
  }

  // ---- callbacks -------------------------------------------------------------------------------------------

  private sendCallback(id: string): void {
    const job = this.store.get(id);
    if (!job?.callback || job.callback.state !== "pending" || !this.opts.signingSecret) return;
    const { callback: _c, events: _e, ...payload } = publicJob(job) as Record<string, unknown>;
    const body = JSON.stringify(payload);
    const p = deliver(job.callback.url, body, { ...this.opts.callback, secret: this.opts.signingSecret }, {
      stop: this.stopCallbacks.signal,
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
      if (!last.ok && !this.stopCallbacks.signal.aborted) {
        await this.store.update(id, (j) => void (j.callback!.state = "failed"));
        this.log(`jobs: ${id} callback failed after ${job.callback!.attempts} attempts: ${last.error}`);
      }
    }).catch((e) => this.log(`jobs: ${id} callback: ${(e as Error).message}`));
    this.deliveries.add(p);
    p.finally(() => this.deliveries.delete(p));
  }
}

/** Creates the server, starts it and listens. */
export async function startServer(opts: ServeOptions): Promise<{ server: EvalServer; addr: Deno.NetAddr }> {
  const server = await EvalServer.create(opts);
  const addr = await server.listen();
  return { server, addr };
}
