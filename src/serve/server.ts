/**
 * The eval-job HTTP API (`maieutic serve`, issue #9): one eval at a time on the GPU, a bounded persistent
 * queue, bearer-token auth (constant time) with optional HMAC request signing, signed callbacks. Hardened
 * against hostile clients (issue #18; the threat model is in deploy/README.md).
 *
 *   GET    /healthz               no auth: {status}; with the token also GPU adapter, model, queue depth
 *   POST   /v1/eval-jobs          {adapter, data, generate?, max_samples?, callback_url?} -> 202 {id, status}
 *                                 (Idempotency-Key: a retry with the same key and body -> 200, the same job)
 *   GET    /v1/eval-jobs          ?limit=1..100&cursor=&status= -> {jobs, next_cursor} (newest first)
 *   GET    /v1/eval-jobs/:id      the job: status, timings, report when done
 *   DELETE /v1/eval-jobs/:id      cancels a queued or running job
 *
 * Errors are JSON `{error, field?}`: 400 (schema, names the field; paths outside the roots), 401, 403
 * (cross-site), 404, 405, 409 (cancelling a finished job), 413 (body over 64 KiB), 415 (not JSON), 422
 * (Idempotency-Key reused for another request), 429 (queue or job store full, with Retry-After).
 * Neither the token nor the signing secret nor a Hub token is ever logged, stored or passed to the eval
 * subprocess' output; reports, errors and callbacks carry relative paths only (sanitize.ts).
 *
 * This file is the HTTP side; the queue's worker is worker.ts, the callbacks deliveries.ts and callback.ts,
 * the request checks guard.ts, the connection handling http1.ts.
 */
import { resolve } from "node:path";
import type { CallbackOptions, DestinationPolicy, Resolver } from "./callback.ts";
import { checkCallbackUrl } from "./callback.ts";
import { Deliveries } from "./deliveries.ts";
import {
  checkSignature,
  checkSite,
  checkToken,
  hasToken,
  json,
  MAX_BODY_BYTES,
  problem,
  readLimited,
} from "./guard.ts";
import { type ConnectionLimits, type Http1Server, serveHttp1 } from "./http1.ts";
import { NonceStore } from "./nonces.ts";
import { makeRoots, PathError, resolveAdapter, resolveData, type Roots } from "./paths.ts";
import { createSubprocessRunner, type JobRunner } from "./runner.ts";
import {
  capReport,
  cleanValue,
  HUB_TOKEN_VARS,
  type PathContext,
  redactText,
  relativeText,
} from "./sanitize.ts";
import {
  type EvalJob,
  type EvalJobRequest,
  EvalJobRequestSchema,
  FINAL_STATUSES,
  firstIssue,
  JobStatusSchema,
  publicJob,
} from "./schema.ts";
import { isJobId, JobStore, type RecoveryReport } from "./store.ts";
import { type FinishInput, Worker } from "./worker.ts";

export { MAX_BODY_BYTES };

/** Jobs kept in all states together (queued, running and finished) before submissions get 429. */
export const DEFAULT_MAX_JOBS = 1000;
/** A stored report (and so a callback's) is at most this large; larger ones keep their scalars only. */
export const DEFAULT_MAX_REPORT_BYTES = 256 * 1024;
/** How often finished jobs past --keep-days are deleted while the server runs. */
export const DEFAULT_PRUNE_INTERVAL_MS = 3_600_000;

export interface ServeOptions {
  /** bearer token (MAIEUTIC_EVAL_TOKEN); required unless insecureLocalhost and bound to 127.0.0.1 */
  token?: string;
  /** HMAC secret (MAIEUTIC_SIGNING_SECRET): verifies X-Maieutic-Signature, signs callbacks */
  signingSecret?: string;
  /** refuse /v1 requests without a valid signature (needs signingSecret) */
  requireSignature?: boolean;
  /** no token needed (only on 127.0.0.1; Host must then be a loopback name); also admits loopback callbacks */
  insecureLocalhost?: boolean;
  /** test-only: admit callbacks to loopback addresses (http allowed there); default: insecureLocalhost */
  allowLoopbackCallbacks?: boolean;
  /** only these host names may receive callbacks (--callback-host) */
  callbackHosts?: string[];
  /** test-only: name resolution for callbacks (default DNS) */
  resolveHost?: Resolver;
  hostname?: string;
  port?: number;
  /** connection deadlines and cap (http1.ts; defaults DEFAULT_CONNECTION_LIMITS) */
  connection?: Partial<ConnectionLimits>;
  dataRoots: string[];
  adapterRoot: string;
  jobsDir: string;
  /** most queued (waiting) jobs; default 16 */
  queueSize?: number;
  /** most jobs kept in all states; default 1000 */
  maxJobs?: number;
  /** largest stored report (bytes of JSON); default 256 KiB */
  maxReportBytes?: number;
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
  callback?: Omit<CallbackOptions, "secret" | "policy" | "resolve">;
  /** runs a job may start in total across crashes; default 2 (retried once) */
  maxAttempts?: number;
  /** finished jobs older than this many days are deleted (0 keeps all; default 30) */
  keepDays?: number;
  /** how often that deletion runs; default one hour */
  pruneIntervalMs?: number;
  /** how long the worker waits for a runner that ignores its abort signal; default 10000 ms */
  abortGraceMs?: number;
  /** shown by /healthz to callers holding the token */
  adapterInfo?: unknown;
  /** more strings never to be shown (the token, the signing secret and Hub tokens always are) */
  redact?: string[];
  log?: (line: string) => void;
  cwd?: string;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/** A request's identity for Idempotency-Key: its fields in a fixed order. */
function fingerprint(r: EvalJobRequest): string {
  return JSON.stringify(Object.keys(r).sort().map((k) => [k, r[k as keyof EvalJobRequest]]));
}

export class EvalServer {
  readonly store: JobStore;
  readonly recovered: RecoveryReport;
  private readonly roots: Roots;
  private readonly opts: ServeOptions;
  private readonly queueSize: number;
  private readonly maxJobs: number;
  private readonly log: (line: string) => void;
  private readonly secrets: string[];
  private readonly paths: PathContext;
  private readonly worker: Worker;
  private readonly deliveries: Deliveries;
  private readonly nonces: NonceStore;
  private stopping = false;
  private started = false;
  private pruneTimer: ReturnType<typeof setInterval> | undefined;
  private httpServer: Http1Server | undefined;

  private constructor(
    opts: ServeOptions,
    store: JobStore,
    recovered: RecoveryReport,
    roots: Roots,
    nonces: NonceStore,
  ) {
    this.opts = opts;
    this.store = store;
    this.recovered = recovered;
    this.roots = roots;
    this.nonces = nonces;
    this.queueSize = opts.queueSize ?? 16;
    this.maxJobs = opts.maxJobs ?? DEFAULT_MAX_JOBS;
    this.secrets = [
      opts.token,
      opts.signingSecret,
      ...HUB_TOKEN_VARS.map((k) => Deno.env.get(k)),
      ...(opts.redact ?? []),
    ].filter((x): x is string => !!x && x.length >= 8);
    this.paths = {
      roots: [...roots.data.flatMap((r) => [r.real, r.lexical]), roots.adapter.real, roots.adapter.lexical],
      cwd: resolve(opts.cwd ?? Deno.cwd()),
    };
    const sink = opts.log ?? ((l: string) => console.error(l));
    this.log = (line) => sink(redactText(line, this.secrets));
    const runner = opts.runner ?? createSubprocessRunner({
      cwd: opts.cwd,
      command: opts.evalCommand,
      killGraceMs: opts.killGraceMs,
      onSpawn: (job, pid, start) =>
        void this.store.update(job.id, (j) => {
          j.pid = pid;
          j.pid_start = start;
        }).catch(() => {}),
    });
    this.worker = new Worker({
      store,
      runner,
      timeoutMs: (opts.jobTimeoutS ?? 3600) * 1000,
      abortGraceMs: opts.abortGraceMs ?? 10_000,
      log: this.log,
      finish: (id, status, r) => this.finish(id, status, r),
    });
    this.deliveries = new Deliveries(
      store,
      opts.signingSecret
        ? {
          ...opts.callback,
          secret: opts.signingSecret,
          policy: this.callbackPolicy(),
          resolve: opts.resolveHost,
        }
        : undefined,
      this.log,
    );
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
    if (opts.maxJobs !== undefined && !(Number.isInteger(opts.maxJobs) && opts.maxJobs >= 1)) {
      throw new Error("max jobs must be an integer >= 1");
    }
    if (opts.jobTimeoutS !== undefined && !(opts.jobTimeoutS > 0)) throw new Error("job timeout must be > 0");
    const roots = await makeRoots(opts.dataRoots, opts.adapterRoot, opts.cwd);
    const log = opts.log ?? ((l: string) => console.error(l));
    const { store, recovered } = await JobStore.open(opts.jobsDir, {
      maxAttempts: opts.maxAttempts,
      keepDays: opts.keepDays,
      outputRoots: [roots.adapter.real, roots.adapter.lexical],
      log,
    });
    const nonces = await NonceStore.open(opts.jobsDir);
    return new EvalServer(opts, store, recovered, roots, nonces);
  }

  private callbackPolicy(): DestinationPolicy {
    return {
      allowLoopback: this.opts.allowLoopbackCallbacks ?? !!this.opts.insecureLocalhost,
      hosts: this.opts.callbackHosts?.map((h) => h.toLowerCase().replace(/\.$/, "")),
    };
  }

  /** Starts the worker, resumes undelivered callbacks and the periodic pruning. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const id of this.recovered.requeued) {
      this.log(`jobs: ${id} was running when the server stopped; requeued`);
    }
    for (const id of this.recovered.failed) this.log(`jobs: ${id} was interrupted twice; failed`);
    for (const job of this.store.pendingCallbacks()) this.deliveries.send(job.id);
    this.pruneTimer = setInterval(() => {
      this.store.prune().catch((e) => this.log(`jobs: pruning: ${(e as Error).message}`));
    }, this.opts.pruneIntervalMs ?? DEFAULT_PRUNE_INTERVAL_MS);
    this.worker.start();
  }

  /** Starts the worker and listens (port 0 picks a free port). */
  listen(): Promise<Deno.NetAddr> {
    this.start();
    this.httpServer = serveHttp1({
      hostname: this.opts.hostname ?? "127.0.0.1",
      port: this.opts.port ?? 8787,
      limits: this.opts.connection,
    }, (req) => this.handle(req));
    return Promise.resolve(this.httpServer.addr);
  }

  /**
   * Stops listening and working. A running job is stopped and requeued (its attempt not counted), undelivered
   * callbacks stay pending; all of it resumes on the next start.
   */
  async close(): Promise<void> {
    this.stopping = true;
    clearInterval(this.pruneTimer);
    const http = this.httpServer?.shutdown();
    await this.worker.stop();
    await http;
    await this.deliveries.close();
    await this.store.flush();
  }

  queueDepth(): number {
    return this.store.count("queued");
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
    const siteErr = checkSite(req, { loopbackOnly: !this.opts.token });
    if (siteErr) return siteErr;
    if (path === "/healthz") {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return problem(405, "use GET", undefined, { allow: "GET" });
      }
      // Anyone may learn that the server is up; what runs on it only with the token.
      if (!this.opts.token || !(await hasToken(req, this.opts.token))) return json(200, { status: "ok" });
      return json(200, {
        status: "ok",
        adapter: this.opts.adapterInfo ?? null,
        model: this.opts.model ?? null,
        queue_depth: this.queueDepth(),
        queue_size: this.queueSize,
        jobs: this.store.size(),
        max_jobs: this.maxJobs,
        running: this.worker.running(),
      });
    }
    if (path !== "/v1/eval-jobs" && !path.startsWith("/v1/eval-jobs/")) return problem(404, "not found");

    const authErr = await checkToken(req, this.opts.token);
    if (authErr) return authErr;
    const body = await readLimited(req, this.opts.maxBodyBytes ?? MAX_BODY_BYTES);
    if (body === undefined) {
      return problem(413, `request body over ${(this.opts.maxBodyBytes ?? MAX_BODY_BYTES) / 1024} KiB`);
    }
    const sigErr = await checkSignature(req, url, body, {
      secret: this.opts.signingSecret,
      required: this.opts.requireSignature,
      nonces: this.nonces,
    });
    if (sigErr) return sigErr;

    if (path === "/v1/eval-jobs") {
      if (req.method === "POST") return await this.submit(body, req.headers.get("idempotency-key"));
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

  private async submit(body: Uint8Array, idempotencyKey: string | null): Promise<Response> {
    if (idempotencyKey !== null && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      return problem(400, "Idempotency-Key: 1 to 128 printable ASCII characters", "idempotency-key");
    }
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
      const err = checkCallbackUrl(request.callback_url, this.callbackPolicy());
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
      if (e instanceof PathError) return problem(400, relativeText(e.message, this.paths), e.field);
      throw e;
    }
    if (this.stopping) return problem(503, "server is shutting down", undefined, { "retry-after": "5" });
    // Synchronous from here to store.add's first await: concurrent submissions can neither overfill the queue
    // nor both take one idempotency key.
    if (idempotencyKey !== null) {
      const prev = this.store.byIdempotencyKey(idempotencyKey);
      if (prev) {
        if (fingerprint(prev.request) !== fingerprint(request)) {
          return problem(422, "Idempotency-Key was used for a different request", "idempotency-key");
        }
        return json(200, { id: prev.id, status: prev.status }, {
          location: `/v1/eval-jobs/${prev.id}`,
          "idempotent-replayed": "true",
        });
      }
    }
    if (this.queueDepth() >= this.queueSize) {
      return problem(429, `queue full (${this.queueSize} jobs waiting)`, undefined, { "retry-after": "60" });
    }
    if (this.store.size() >= this.maxJobs) {
      return problem(
        429,
        `job store full (${this.maxJobs} jobs kept; finished ones are deleted after --keep-days)`,
        undefined,
        { "retry-after": "3600" },
      );
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
      idempotency_key: idempotencyKey ?? undefined,
      callback: request.callback_url
        ? { url: request.callback_url, state: "pending", attempts: 0 }
        : undefined,
    };
    try {
      await this.store.add(job);
    } finally {
      this.worker.wake();
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
    await this.worker.cancel(job.id);
    const after = this.store.get(job.id)!;
    return json(after.status === "cancelled" ? 200 : 202, publicJob(after));
  }

  // ---- job ends --------------------------------------------------------------------------------------------

  /**
   * Records a job's end. The report and the error are cleaned first (relative paths, no secret, the report
   * capped at maxReportBytes); the eval's own files are remembered so pruning deletes them with the job.
   */
  private async finish(
    id: string,
    status: "succeeded" | "failed" | "cancelled",
    r: FinishInput,
  ): Promise<void> {
    const end = Date.now();
    const outputs = r.report ? reportFiles(r.report, this.paths.cwd) : [];
    const report = r.report
      ? capReport(
        cleanValue(r.report, this.paths, this.secrets) as Record<string, unknown>,
        this.opts.maxReportBytes ?? DEFAULT_MAX_REPORT_BYTES,
      )
      : undefined;
    const error = r.error === undefined
      ? undefined
      : redactText(relativeText(r.error, this.paths), this.secrets).slice(0, 8000);
    const job = await this.store.update(id, (j) => {
      j.status = status;
      j.finished_at = new Date(end).toISOString();
      j.pid = undefined;
      j.pid_start = undefined;
      if (report) j.report = report;
      if (outputs.length) j.outputs = outputs;
      if (error !== undefined) j.error = error;
      if (r.runMs !== undefined) j.timings.run_ms = r.runMs;
      j.timings.total_ms = end - Date.parse(j.created_at);
    });
    this.log(`jobs: ${id} ${status}${error ? `: ${error.split("\n")[0].slice(0, 300)}` : ""}`);
    if (job.callback) this.deliveries.send(id);
  }
}

/** The files an eval report says it wrote (`report_path`, `generation.samples_path`), as absolute paths. */
function reportFiles(report: Record<string, unknown>, cwd: string): string[] {
  const gen = report.generation as Record<string, unknown> | null | undefined;
  return [report.report_path, gen?.samples_path]
    .filter((p): p is string => typeof p === "string" && p.length > 0)
    .map((p) => resolve(cwd, p));
}

/** Creates the server, starts it and listens. */
export async function startServer(opts: ServeOptions): Promise<{ server: EvalServer; addr: Deno.NetAddr }> {
  const server = await EvalServer.create(opts);
  const addr = await server.listen();
  return { server, addr };
}
