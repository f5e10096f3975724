/**
 * The Deno Deploy side of eval jobs (issue #9), importable without side effects: deploy/main.ts wires it to
 * Deno.cron, Deno.serve and Deno KV. It
 *  - triggers eval jobs on the GPU VM (`maieutic serve`): bearer token + X-Maieutic-Signature;
 *  - receives the VM's job-end callback (POST /callback), verifies its signature and stores the result in KV;
 *  - polls the VM for jobs whose callback never came (syncPending, run by the cron);
 *  - lists what it stored (GET /results, GET /results/:id) for whoever holds the trigger token.
 *
 * KV layout: ["jobs", id] -> JobEntry; ["jobs_by_time", submitted_at, id] -> id; ["latest_succeeded"] -> id;
 * ["idem", key] -> id (Idempotency-Key of a trigger, 7 days); ["cron_intent"] -> the scheduled trigger in
 * flight (its key, reused by Deno.cron's retries); ["sig", mac] -> 1 (callback signatures seen, 11 minutes).
 *
 * Hardening (issue #18; threat model in deploy/README.md): the callback body is read with a streaming size
 * limit after a cheap check of the signature header; every KV write of a job is a compare-and-set that never
 * moves a final status back; entries are kept under Deno KV's 64 KiB value limit (oversized reports keep their
 * scalars); each trigger carries an Idempotency-Key; callback signatures are accepted once, remembered in KV;
 * the bearer token is only sent over https (or to a loopback VM).
 */
import { json, readBodyLimited } from "../src/serve/guard.ts";
import { bearer, sign, SIGNATURE_HEADER, timingSafeEqual, verify } from "../src/serve/sign.ts";

export interface DeployEnv {
  /** base URL of `maieutic serve` on the GPU VM (MAIEUTIC_VM_URL), e.g. https://gpu.example.com */
  vmUrl: string;
  /** the VM's MAIEUTIC_EVAL_TOKEN */
  token: string;
  /** shared with the VM (MAIEUTIC_SIGNING_SECRET): signs our requests, verifies its callbacks */
  signingSecret: string;
  /** this app's public callback URL (MAIEUTIC_CALLBACK_URL), e.g. https://maieutic-eval.deno.dev/callback */
  callbackUrl?: string;
  /** protects POST /trigger and GET /results (MAIEUTIC_TRIGGER_TOKEN); unset disables them */
  triggerToken?: string;
  /** the scheduled job (MAIEUTIC_EVAL_ADAPTER, MAIEUTIC_EVAL_DATA, MAIEUTIC_EVAL_GENERATE, MAIEUTIC_EVAL_MAX_SAMPLES) */
  adapter?: string;
  data?: string;
  generate?: boolean;
  maxSamples?: number;
  /** cron schedule, UTC (MAIEUTIC_EVAL_SCHEDULE; default "0 3 * * *") */
  schedule: string;
}

/** Reads the environment (missing required values are reported by the endpoints that need them). */
export function envFrom(get: (key: string) => string | undefined): DeployEnv {
  const ms = get("MAIEUTIC_EVAL_MAX_SAMPLES");
  return {
    vmUrl: (get("MAIEUTIC_VM_URL") ?? "").replace(/\/+$/, ""),
    token: get("MAIEUTIC_EVAL_TOKEN") ?? "",
    signingSecret: get("MAIEUTIC_SIGNING_SECRET") ?? "",
    callbackUrl: get("MAIEUTIC_CALLBACK_URL") || undefined,
    triggerToken: get("MAIEUTIC_TRIGGER_TOKEN") || undefined,
    adapter: get("MAIEUTIC_EVAL_ADAPTER") || undefined,
    data: get("MAIEUTIC_EVAL_DATA") || undefined,
    generate: /^(1|true|yes)$/i.test(get("MAIEUTIC_EVAL_GENERATE") ?? ""),
    maxSamples: ms && /^\d+$/.test(ms) ? Number(ms) : undefined,
    schedule: get("MAIEUTIC_EVAL_SCHEDULE") || "0 3 * * *",
  };
}

export interface JobSpec {
  adapter?: string;
  data?: string;
  generate?: boolean;
  max_samples?: number;
}

export interface JobEntry {
  id: string;
  status: string;
  source: "cron" | "request";
  request: JobSpec;
  submitted_at: string;
  updated_at: string;
  finished_at?: string;
  report?: Record<string, unknown>;
  error?: string;
  timings?: Record<string, unknown>;
  /** "callback" or "poll" */
  via?: string;
  /** set when the report was too large for a KV value: its size; only its top-level scalars are kept */
  report_truncated?: { bytes: number };
}

const FINAL = ["succeeded", "failed", "cancelled"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** The VM's callbacks carry a report of at most 256 KiB (src/serve/server.ts); the rest is refused unread. */
const MAX_BODY = 512 * 1024;
/** Deno KV refuses values over 64 KiB; a job entry is kept under this. */
export const MAX_ENTRY_BYTES = 60 * 1024;
const SIGNATURE_TTL_MS = 11 * 60_000;
const IDEM_TTL_MS = 7 * 86_400_000;
const INTENT_TTL_MS = 20 * 60_000; // Deno.cron retries a failed run within minutes
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,100}$/;

const RANK: Record<string, number> = { queued: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };
const rank = (status: string) => RANK[status] ?? 0;

/** A signature header worth reading a body for: well formed and fresh (the MAC is checked after the body). */
function plausibleSignature(header: string | null, nowS = Math.floor(Date.now() / 1000)): boolean {
  const t = header?.match(/(?:^|,)\s*t=(\d{1,12})\s*(?:,|$)/)?.[1];
  return !!t && /(?:^|,)\s*v1=[0-9a-f]{64}\s*(?:,|$)/.test(header!) && Math.abs(nowS - Number(t)) <= 300;
}

const byteLength = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)).length;

/** The entry as it can be stored: a report too large for a KV value keeps its top-level scalars. */
export function fitEntry(e: JobEntry): JobEntry {
  if (byteLength(e) <= MAX_ENTRY_BYTES) return e;
  const out: JobEntry = { ...e, error: e.error?.slice(0, 4000) };
  if (e.report) {
    const summary: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(e.report)) {
      if (typeof v === "number" || typeof v === "boolean" || v === null) summary[k] = v;
      else if (typeof v === "string" && v.length <= 256) summary[k] = v;
    }
    out.report = summary;
    out.report_truncated = { bytes: byteLength(e.report) };
  }
  if (byteLength(out) > MAX_ENTRY_BYTES) {
    out.report = undefined;
    out.timings = undefined;
    out.error = out.error?.slice(0, 1000);
  }
  return out;
}

/**
 * `prev` updated with what the VM says now, never moving back: a final status stays (the first final view
 * wins), and a "queued" or "running" view older than what KV holds changes nothing but missing fields.
 */
export function mergeEntry(prev: JobEntry | null, next: JobEntry): JobEntry {
  if (!prev) return next;
  if (rank(next.status) <= rank(prev.status)) return prev;
  return { ...next, source: prev.source, request: prev.request, submitted_at: prev.submitted_at };
}

export class VmError extends Error {
  override name = "VmError";
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

export interface App {
  handler(req: Request): Promise<Response>;
  /**
   * Submits a job to the VM (defaults from env, overridden by `spec`) and records it in KV. With `key`, a
   * repeated call (a retry after a lost answer) returns the first job instead of making another.
   */
  trigger(
    spec?: JobSpec,
    source?: "cron" | "request",
    key?: string,
  ): Promise<{ id: string; status: string }>;
  /** Asks the VM about recorded jobs that are not final yet (lost callbacks); returns how many it updated. */
  syncPending(limit?: number): Promise<number>;
  /** The cron's work: sync, then trigger the scheduled job when one is configured (idempotently). */
  scheduled(): Promise<void>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

export function createApp(env: DeployEnv, kv: Deno.Kv, opts: { fetch?: typeof fetch } = {}): App {
  const doFetch = opts.fetch ?? fetch;

  function needVm(): URL {
    const missing = [
      ["MAIEUTIC_VM_URL", env.vmUrl],
      ["MAIEUTIC_EVAL_TOKEN", env.token],
      ["MAIEUTIC_SIGNING_SECRET", env.signingSecret],
    ].filter(([, v]) => !v).map(([k]) => k);
    if (missing.length) throw new VmError(`not configured: set ${missing.join(", ")}`);
    let u: URL;
    try {
      u = new URL(env.vmUrl);
    } catch {
      throw new VmError(`MAIEUTIC_VM_URL is not a URL: ${env.vmUrl}`);
    }
    // The bearer token must not cross a network in clear: plain http only to this machine.
    if (u.protocol !== "https:" && !(u.protocol === "http:" && LOOPBACK.test(u.hostname))) {
      throw new VmError(
        `MAIEUTIC_VM_URL must be an https URL (got ${u.protocol}//${u.host}): the bearer token is sent with ` +
          "every request; plain http is allowed only to a loopback address",
      );
    }
    return u;
  }

  /** A signed, authenticated request to the VM. */
  async function vm(
    method: string,
    path: string,
    body?: unknown,
    extra: Record<string, string> = {},
  ): Promise<{ status: number; json: Record<string, unknown> }> {
    needVm();
    const url = new URL(env.vmUrl + path);
    const text = body === undefined ? "" : JSON.stringify(body);
    const headers: Record<string, string> = {
      ...extra,
      authorization: `Bearer ${env.token}`,
      [SIGNATURE_HEADER]: await sign(env.signingSecret, {
        method,
        path: url.pathname + url.search,
        body: text,
      }),
    };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    let raw: Uint8Array | undefined;
    try {
      res = await doFetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : text,
        redirect: "manual",
        signal: AbortSignal.timeout(15_000),
      });
      raw = await readBodyLimited(res.body, 2 * MAX_BODY, res.headers.get("content-length"));
    } catch (e) {
      throw new VmError(`the VM did not answer: ${(e as Error).message}`);
    }
    let parsed: Record<string, unknown> = {};
    try {
      parsed = raw ? JSON.parse(new TextDecoder().decode(raw)) : {};
    } catch { /* not JSON */ }
    return { status: res.status, json: parsed };
  }

  /**
   * Compare-and-set of one job: `change` sees what KV holds and returns what to store (or null: nothing to
   * do). Retried when another writer (a callback, a poll, a trigger) got there first.
   */
  async function updateJob(
    id: string,
    change: (prev: JobEntry | null) => JobEntry | null,
  ): Promise<JobEntry | null> {
    for (let i = 0; i < 20; i++) {
      const cur = await kv.get<JobEntry>(["jobs", id]);
      const next = change(cur.value);
      if (!next || next === cur.value) return cur.value;
      const entry = fitEntry(next);
      const op = kv.atomic().check(cur).set(["jobs", id], entry);
      // The time index is written once, with the entry's first version: a job is listed once.
      if (!cur.value) op.set(["jobs_by_time", entry.submitted_at, id], id);
      if (entry.status === "succeeded" && cur.value?.status !== "succeeded") op.set(["latest_succeeded"], id);
      if ((await op.commit()).ok) return entry;
    }
    throw new Error(`KV: job ${id} changed 20 times while being updated`);
  }

  /** A VM job view (callback payload or GET /v1/eval-jobs/:id) as a KV entry. */
  function entryFrom(p: Record<string, unknown>, via: string): JobEntry {
    const req = (p.request ?? {}) as JobSpec;
    return {
      id: String(p.id),
      status: String(p.status),
      source: "request",
      request: { adapter: req.adapter, data: req.data, generate: req.generate, max_samples: req.max_samples },
      submitted_at: String(p.created_at ?? new Date().toISOString()),
      updated_at: new Date().toISOString(),
      finished_at: typeof p.finished_at === "string" ? p.finished_at : undefined,
      report: p.report && typeof p.report === "object" ? p.report as Record<string, unknown> : undefined,
      error: typeof p.error === "string" ? p.error : undefined,
      timings: p.timings && typeof p.timings === "object" ? p.timings as Record<string, unknown> : undefined,
      via,
    };
  }

  async function storeResult(p: Record<string, unknown>, via: string): Promise<JobEntry | null> {
    const next = entryFrom(p, via);
    return await updateJob(next.id, (prev) => mergeEntry(prev, next));
  }

  async function trigger(spec: JobSpec = {}, source: "cron" | "request" = "request", key?: string) {
    if (key !== undefined) {
      const seen = (await kv.get<string>(["idem", key])).value;
      if (seen) {
        const e = (await kv.get<JobEntry>(["jobs", seen])).value;
        return { id: seen, status: e?.status ?? "queued" };
      }
    }
    const body: Record<string, unknown> = {
      adapter: spec.adapter ?? env.adapter,
      data: spec.data ?? env.data,
    };
    if (!body.adapter || !body.data) {
      throw new VmError(
        "no job: give adapter and data (or set MAIEUTIC_EVAL_ADAPTER and MAIEUTIC_EVAL_DATA)",
        400,
      );
    }
    const generate = spec.generate ?? env.generate;
    if (generate) body.generate = true;
    const maxSamples = spec.max_samples ?? env.maxSamples;
    if (maxSamples !== undefined) body.max_samples = maxSamples;
    if (env.callbackUrl) body.callback_url = env.callbackUrl;
    const r = await vm("POST", "/v1/eval-jobs", body, key ? { "idempotency-key": key } : {});
    // 200: the VM already had a job for this key (an earlier attempt whose answer was lost).
    if ((r.status !== 202 && r.status !== 200) || typeof r.json.id !== "string" || !UUID.test(r.json.id)) {
      throw new VmError(`the VM refused the job: HTTP ${r.status} ${r.json.error ?? ""}`.trim(), r.status);
    }
    const id = r.json.id;
    const now = new Date().toISOString();
    const request = {
      adapter: String(body.adapter),
      data: String(body.data),
      generate,
      max_samples: maxSamples,
    };
    // A callback may have landed first: keep its status and add what only the trigger knows.
    const e = await updateJob(
      id,
      (prev) =>
        prev
          ? (prev.source === source && JSON.stringify(prev.request) === JSON.stringify(request)
            ? prev
            : { ...prev, source, request })
          : { id, status: "queued", source, request, submitted_at: now, updated_at: now },
    );
    if (key !== undefined) await kv.set(["idem", key], id, { expireIn: IDEM_TTL_MS });
    return { id, status: e?.status ?? "queued" };
  }

  async function syncPending(limit = 20): Promise<number> {
    let n = 0;
    for await (const e of kv.list<string>({ prefix: ["jobs_by_time"] }, { reverse: true, limit: 200 })) {
      if (n >= limit) break;
      const job = (await kv.get<JobEntry>(["jobs", e.value])).value;
      if (!job || FINAL.includes(job.status)) continue;
      // One job's trouble (the VM, an odd payload) must not stop the others or the cron.
      try {
        const r = await vm("GET", `/v1/eval-jobs/${job.id}`);
        if (r.status === 404) {
          const failed: JobEntry = {
            ...job,
            status: "failed",
            error: "the VM does not know this job",
            updated_at: new Date().toISOString(),
          };
          await updateJob(job.id, (prev) => mergeEntry(prev, failed));
          n++;
        } else if (r.status === 200 && r.json.status !== job.status && typeof r.json.status === "string") {
          await storeResult({ ...r.json, id: job.id }, "poll");
          n++;
        }
      } catch (err) {
        if (err instanceof VmError && !err.status) throw err; // not configured or unreachable: stop here
        console.error(`deploy: sync ${job.id}: ${(err as Error).message}`);
      }
    }
    return n;
  }

  async function authorized(req: Request): Promise<boolean> {
    const given = bearer(req.headers.get("authorization"));
    return !!env.triggerToken && given !== undefined && await timingSafeEqual(given, env.triggerToken);
  }

  async function callback(req: Request, url: URL): Promise<Response> {
    if (!env.signingSecret) return json(503, { error: "not configured: set MAIEUTIC_SIGNING_SECRET" });
    // Cheap checks first, then the body under a streaming limit, then the MAC.
    const header = req.headers.get(SIGNATURE_HEADER);
    if (!plausibleSignature(header)) {
      await req.body?.cancel().catch(() => {});
      return json(401, { error: "missing, malformed or stale X-Maieutic-Signature" });
    }
    const body = await readBodyLimited(req.body, MAX_BODY, req.headers.get("content-length"));
    if (!body) return json(413, { error: `body over ${MAX_BODY / 1024} KiB` });
    const v = await verify(env.signingSecret, header, {
      method: "POST",
      path: url.pathname + url.search,
      body,
    });
    if (!v.ok) return json(401, { error: v.reason });
    let p: Record<string, unknown>;
    try {
      p = JSON.parse(new TextDecoder().decode(body));
    } catch {
      return json(400, { error: "body is not JSON" });
    }
    if (typeof p.id !== "string" || !UUID.test(p.id) || typeof p.status !== "string") {
      return json(400, {
        error: "callback needs id and status",
        field: typeof p.id !== "string" ? "id" : "status",
      });
    }
    // Each signature once, across restarts (the VM signs every attempt afresh).
    const claim = await kv.atomic()
      .check({ key: ["sig", v.mac], versionstamp: null })
      .set(["sig", v.mac], 1, { expireIn: SIGNATURE_TTL_MS })
      .commit();
    if (!claim.ok) return json(401, { error: "replayed X-Maieutic-Signature" });
    await storeResult(p, "callback");
    return new Response(null, { status: 204 });
  }

  async function handler(req: Request): Promise<Response> {
    const url = new URL(req.url);
    try {
      if (url.pathname === "/") {
        return json(200, { service: "maieutic eval trigger", schedule: env.schedule });
      }
      if (url.pathname === "/callback") {
        return req.method === "POST" ? await callback(req, url) : json(405, { error: "use POST" });
      }
      if (url.pathname === "/trigger" || url.pathname.startsWith("/results")) {
        if (!env.triggerToken) return json(404, { error: "disabled: set MAIEUTIC_TRIGGER_TOKEN" });
        if (!(await authorized(req))) return json(401, { error: "bad or missing bearer token" });
      }
      if (url.pathname === "/trigger") {
        if (req.method !== "POST") return json(405, { error: "use POST" });
        const key = req.headers.get("idempotency-key");
        if (key !== null && !IDEMPOTENCY_KEY.test(key)) {
          return json(400, { error: "Idempotency-Key: 1 to 100 printable ASCII characters" });
        }
        const body = await readBodyLimited(req.body, 64 * 1024, req.headers.get("content-length"));
        if (!body) return json(413, { error: "body too large" });
        let spec: JobSpec = {};
        const text = new TextDecoder().decode(body).trim();
        if (text) {
          try {
            spec = JSON.parse(text);
          } catch {
            return json(400, { error: "body is not JSON" });
          }
          if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
            return json(400, { error: "body must be an object" });
          }
        }
        // Namespaced, so a caller's key can never collide with the cron's.
        return json(202, await trigger(spec, "request", key === null ? undefined : `req:${key}`));
      }
      if (url.pathname === "/results" && req.method === "GET") {
        const limit = Math.min(Math.max(Number(url.searchParams.get("limit") ?? 20) || 20, 1), 100);
        const jobs: JobEntry[] = [];
        for await (const e of kv.list<string>({ prefix: ["jobs_by_time"] }, { reverse: true, limit })) {
          const j = (await kv.get<JobEntry>(["jobs", e.value])).value;
          if (j) jobs.push(j);
        }
        return json(200, { jobs });
      }
      const m = url.pathname.match(/^\/results\/([0-9a-f-]{36})$/);
      if (m && req.method === "GET") {
        const j = (await kv.get<JobEntry>(["jobs", m[1]])).value;
        return j ? json(200, j) : json(404, { error: "no such job" });
      }
      return json(404, { error: "not found" });
    } catch (e) {
      if (e instanceof VmError) {
        // The VM's verdict on the job itself passes through; anything else is a bad gateway.
        return json([400, 413, 422, 429].includes(e.status ?? 0) ? e.status! : 502, { error: e.message });
      }
      console.error(`deploy: ${(e as Error).stack ?? e}`);
      return json(500, { error: "internal error" });
    }
  }

  /**
   * The scheduled trigger's Idempotency-Key: the one of a run that has not finished yet (Deno.cron retries a
   * failed run within minutes, and its first attempt may have reached the VM), else a new one.
   */
  async function cronKey(): Promise<string> {
    const cur = await kv.get<{ key: string; at: number }>(["cron_intent"]);
    if (cur.value && Date.now() - cur.value.at < INTENT_TTL_MS) return cur.value.key;
    const key = `cron:${crypto.randomUUID()}`;
    const ok = await kv.atomic().check(cur).set(["cron_intent"], { key, at: Date.now() }, {
      expireIn: INTENT_TTL_MS,
    }).commit();
    return ok.ok ? key : await cronKey();
  }

  async function scheduled(): Promise<void> {
    try {
      await syncPending();
    } catch (e) {
      console.error(`deploy: sync: ${(e as Error).message}`);
    }
    if (env.adapter && env.data) {
      const key = await cronKey();
      const r = await trigger({}, "cron", key);
      await kv.delete(["cron_intent"]);
      console.log(`maieutic eval job ${r.id} queued on the VM`);
    }
  }

  return { handler, trigger, syncPending, scheduled };
}
