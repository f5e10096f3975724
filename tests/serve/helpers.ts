/** Shared test helpers for the eval-job server: temp trees, fake runners, HTTP calls on 127.0.0.1. */
import { join } from "node:path";
import { EvalServer, type ServeOptions } from "../../src/serve/server.ts";
import type { JobRunner } from "../../src/serve/runner.ts";
import { sign } from "../../src/serve/sign.ts";

export const TOKEN = "test-token-0123456789abcdef";
export const SECRET = "test-signing-secret-fedcba9876543210";

export interface Tree {
  root: string;
  data: string;
  models: string;
  jobs: string;
  /** relative to the data root */
  dataFile: string;
  /** relative to the adapter root */
  adapter: string;
  cleanup(): Promise<void>;
}

/** data/d.json, models/run1/model/checkpoint-10/adapter_config.json, models/_jobs, plus a secret outside. */
export async function makeTree(): Promise<Tree> {
  const root = await Deno.makeTempDir({ prefix: "maieutic-serve-" });
  const data = join(root, "data");
  const models = join(root, "models");
  await Deno.mkdir(data, { recursive: true });
  await Deno.mkdir(join(models, "run1", "model", "checkpoint-10"), { recursive: true });
  await Deno.writeTextFile(
    join(data, "d.json"),
    JSON.stringify([{ messages: [{ role: "user", content: "?" }] }]),
  );
  await Deno.writeTextFile(join(models, "run1", "model", "checkpoint-10", "adapter_config.json"), "{}");
  await Deno.writeTextFile(join(root, "outside.json"), "[]");
  return {
    root,
    data,
    models,
    jobs: join(models, "_jobs"),
    dataFile: "d.json",
    adapter: "run1/model/checkpoint-10",
    cleanup: () => Deno.remove(root, { recursive: true }).catch(() => {}),
  };
}

export class Gate {
  private waiters: (() => void)[] = [];
  opened = false;
  open(): void {
    this.opened = true;
    for (const w of this.waiters.splice(0)) w();
  }
  wait(signal?: AbortSignal): Promise<void> {
    if (this.opened) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push(resolve);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }
}

/** A runner that records its jobs and returns a small report; `gate` holds every job until opened. */
export function fakeRunner(
  opts: { gate?: Gate; delayMs?: number; fail?: string; report?: Record<string, unknown> } = {},
): JobRunner & { ran: string[]; started: string[] } {
  const ran: string[] = [];
  const started: string[] = [];
  const r = (async (job, signal) => {
    started.push(job.id);
    if (opts.gate) await opts.gate.wait(signal);
    if (opts.delayMs) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, opts.delayMs);
        signal.addEventListener("abort", () => {
          clearTimeout(t);
          reject(signal.reason);
        }, { once: true });
      });
    }
    signal.throwIfAborted();
    if (opts.fail) throw new Error(opts.fail);
    ran.push(job.id);
    return opts.report ??
      { eval_loss: 0.5, eval_perplexity: Math.exp(0.5), eval_tokens: 42, eval_samples: 3 };
  }) as JobRunner & { ran: string[]; started: string[] };
  r.ran = ran;
  r.started = started;
  return r;
}

export interface Running {
  server: EvalServer;
  base: string;
  logs: string[];
  close(): Promise<void>;
}

export async function startTestServer(tree: Tree, opts: Partial<ServeOptions> = {}): Promise<Running> {
  const logs: string[] = [];
  const server = await EvalServer.create({
    token: TOKEN,
    hostname: "127.0.0.1",
    port: 0,
    dataRoots: [tree.data],
    adapterRoot: tree.models,
    jobsDir: tree.jobs,
    runner: fakeRunner(),
    log: (l) => logs.push(l),
    callback: { attempts: 4, baseDelayMs: 20, maxDelayMs: 100, timeoutMs: 2000 },
    ...opts,
  });
  const addr = await server.listen();
  return { server, base: `http://127.0.0.1:${addr.port}`, logs, close: () => server.close() };
}

export interface ApiOpts {
  body?: unknown;
  rawBody?: string | ReadableStream<Uint8Array>;
  token?: string | null;
  /** sign with this secret (and optionally a timestamp) */
  sign?: { secret: string; timestamp?: number };
  headers?: Record<string, string>;
}

export async function api(
  base: string,
  method: string,
  path: string,
  o: ApiOpts = {},
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = { ...o.headers };
  const token = o.token === undefined ? TOKEN : o.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const body = o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  if (body !== undefined) headers["content-type"] = "application/json";
  if (o.sign) {
    headers["x-maieutic-signature"] = await sign(o.sign.secret, {
      method,
      path,
      body: typeof body === "string" ? body : "",
      timestamp: o.sign.timestamp,
    });
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, json, headers: res.headers };
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(
  fn: () => Promise<T> | T,
  what: string,
  timeoutMs = 10_000,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  while (true) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function waitStatus(base: string, id: string, status: string, timeoutMs = 10_000) {
  return await waitFor(
    async () => {
      const r = await api(base, "GET", `/v1/eval-jobs/${id}`);
      return r.json.status === status ? r.json : undefined;
    },
    `job ${id} to be ${status}`,
    timeoutMs,
  );
}

export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

export function assertEq<T>(actual: T, expected: T, msg = ""): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${msg} expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/**
 * Runs `fn` against a server started on `tree` (default: a fresh tree, removed afterwards); the server is closed
 * whatever `fn` does.
 */
export async function withServer(
  opts: Partial<ServeOptions>,
  fn: (s: Running, tree: Tree) => Promise<void>,
  tree?: Tree,
): Promise<void> {
  const t = tree ?? await makeTree();
  const s = await startTestServer(t, opts);
  try {
    await fn(s, t);
  } finally {
    await s.close();
    if (!tree) await t.cleanup();
  }
}

/** Whether process `pid` still runs (Linux /proc: a zombie or dead process is not running). */
export function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}
