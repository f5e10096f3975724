/**
 * The Deno Deploy side of eval jobs (issue #9), importable without side effects: deploy/main.ts wires it to
 * Deno.cron, Deno.serve and Deno KV. It
 *  - triggers eval jobs on the GPU VM (`maieutic serve`): bearer token + X-Maieutic-Signature;
 *  - receives the VM's job-end callback (POST /callback), verifies its signature and stores the result in KV;
 *  - polls the VM for jobs whose callback never came (syncPending, run by the cron);
 *  - lists what it stored (GET /results, GET /results/:id) for whoever holds the trigger token.
 *
 * KV layout: ["jobs", id] -> JobEntry; ["jobs_by_time", submitted_at, id] -> id; ["latest_succeeded"] -> id.
 */
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
}

const FINAL = ["succeeded", "failed", "cancelled"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_BODY = 1024 * 1024;

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

async function readLimited(req: Request, limit: number): Promise<Uint8Array | undefined> {
  const cl = req.headers.get("content-length");
  if (cl !== null && Number(cl) > limit) return undefined;
  const buf = new Uint8Array(await req.arrayBuffer());
  return buf.length > limit ? undefined : buf;
}

export class VmError extends Error {
  override name = "VmError";
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

export interface App {
  handler(req: Request): Promise<Response>;
  /** Submits a job to the VM (defaults from env, overridden by `spec`) and records it in KV. */
  trigger(spec?: JobSpec, source?: "cron" | "request"): Promise<{ id: string; status: string }>;
  /** Asks the VM about recorded jobs that are not final yet (lost callbacks); returns how many it updated. */
  syncPending(limit?: number): Promise<number>;
  /** The cron's work: sync, then trigger the scheduled job when one is configured. */
  scheduled(): Promise<void>;
}

export function createApp(env: DeployEnv, kv: Deno.Kv, opts: { fetch?: typeof fetch } = {}): App {
  const doFetch = opts.fetch ?? fetch;

  function needVm(): void {
    const missing = [
      ["MAIEUTIC_VM_URL", env.vmUrl],
      ["MAIEUTIC_EVAL_TOKEN", env.token],
      ["MAIEUTIC_SIGNING_SECRET", env.signingSecret],
    ].filter(([, v]) => !v).map(([k]) => k);
    if (missing.length) throw new VmError(`not configured: set ${missing.join(", ")}`);
  }

  /** A signed, authenticated request to the VM. */
  async function vm(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> {
    needVm();
    const url = new URL(env.vmUrl + path);
    const text = body === undefined ? "" : JSON.stringify(body);
    const headers: Record<string, string> = {
      authorization: `Bearer ${env.token}`,
      [SIGNATURE_HEADER]: await sign(env.signingSecret, {
        method,
        path: url.pathname + url.search,
        body: text,
      }),
    };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await doFetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : text,
        redirect: "manual",
        signal: AbortSignal.timeout(15_000),
      });
    } catch (e) {
      throw new VmError(`the VM did not answer: ${(e as Error).message}`);
    }
    const raw = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(raw);
    } catch { /* not JSON */ }
    return { status: res.status, json: parsed };
  }

  async function record(entry: JobEntry): Promise<void> {
    const op = kv.atomic()
      .set(["jobs", entry.id], entry)
      .set(["jobs_by_time", entry.submitted_at, entry.id], entry.id);
    if (entry.status === "succeeded") op.set(["latest_succeeded"], entry.id);
    await op.commit();
  }

  /** Folds a VM job view (callback payload or GET /v1/eval-jobs/:id) into KV. */
  async function storeResult(p: Record<string, unknown>, via: string): Promise<JobEntry> {
    const id = String(p.id);
    const prev = (await kv.get<JobEntry>(["jobs", id])).value;
    const req = (p.request ?? {}) as JobSpec;
    const entry: JobEntry = {
      id,
      status: String(p.status),
      source: prev?.source ?? "request",
      request: prev?.request ??
        { adapter: req.adapter, data: req.data, generate: req.generate, max_samples: req.max_samples },
      submitted_at: prev?.submitted_at ?? String(p.created_at ?? new Date().toISOString()),
      updated_at: new Date().toISOString(),
      finished_at: typeof p.finished_at === "string" ? p.finished_at : undefined,
      report: p.report && typeof p.report === "object" ? p.report as Record<string, unknown> : undefined,
      error: typeof p.error === "string" ? p.error : undefined,
      timings: p.timings && typeof p.timings === "object" ? p.timings as Record<string, unknown> : undefined,
      via,
    };
    await record(entry);
    return entry;
  }

  async function trigger(spec: JobSpec = {}, source: "cron" | "request" = "request") {
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
    const r = await vm("POST", "/v1/eval-jobs", body);
    if (r.status !== 202 || typeof r.json.id !== "string") {
      throw new VmError(`the VM refused the job: HTTP ${r.status} ${r.json.error ?? ""}`.trim(), r.status);
    }
    const now = new Date().toISOString();
    await record({
      id: r.json.id,
      status: "queued",
      source,
      request: { adapter: String(body.adapter), data: String(body.data), generate, max_samples: maxSamples },
      submitted_at: now,
      updated_at: now,
    });
    return { id: r.json.id, status: "queued" };
  }

  async function syncPending(limit = 20): Promise<number> {
    let n = 0;
    for await (const e of kv.list<string>({ prefix: ["jobs_by_time"] }, { reverse: true, limit: 200 })) {
      if (n >= limit) break;
      const job = (await kv.get<JobEntry>(["jobs", e.value])).value;
      if (!job || FINAL.includes(job.status)) continue;
      const r = await vm("GET", `/v1/eval-jobs/${job.id}`);
      if (r.status === 404) {
        await record({
          ...job,
          status: "failed",
          error: "the VM does not know this job",
          updated_at: new Date().toISOString(),
        });
        n++;
      } else if (r.status === 200 && r.json.status !== job.status) {
        await storeResult(r.json, "poll");
        n++;
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
    const body = await readLimited(req, MAX_BODY);
    if (!body) return json(413, { error: "body too large" });
    const v = await verify(env.signingSecret, req.headers.get(SIGNATURE_HEADER), {
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
        const body = await readLimited(req, 64 * 1024);
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
        return json(202, await trigger(spec, "request"));
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
        return json([400, 413, 429].includes(e.status ?? 0) ? e.status! : 502, { error: e.message });
      }
      console.error(`deploy: ${(e as Error).stack ?? e}`);
      return json(500, { error: "internal error" });
    }
  }

  async function scheduled(): Promise<void> {
    await syncPending();
    if (env.adapter && env.data) {
      const r = await trigger({}, "cron");
      console.log(`maieutic eval job ${r.id} queued on the VM`);
    }
  }

  return { handler, trigger, syncPending, scheduled };
}
