/**
 * `maieutic serve`: the eval-job HTTP API for the GPU VM (issue #9; the API is described in
 * src/serve/server.ts). The token comes from MAIEUTIC_EVAL_TOKEN, the optional signing secret from
 * MAIEUTIC_SIGNING_SECRET (environment or .env); neither is ever printed.
 */
import { parse } from "./args.ts";
import { UsageError } from "../util/errors.ts";
import { DEFAULT_CONNECTION_LIMITS } from "../serve/http1.ts";
import { DEFAULT_MAX_JOBS, DEFAULT_MAX_REPORT_BYTES, EvalServer } from "../serve/server.ts";
import { DEFAULT_KEEP_DAYS } from "../serve/store.ts";
import { chooseBackend } from "../gpu/backend.ts";
import { isSoftwareAdapter } from "../gpu/device.ts";

const USAGE =
  "maieutic serve [--port 8787] [--hostname 127.0.0.1] [--data-root DIR]... [--adapter-root DIR] " +
  "[--jobs-dir DIR] [--queue-size N] [--max-jobs N] [--keep-days N] [--job-timeout-s S] [--model M] " +
  "[--callback-host H]... [--header-timeout-s S] [--body-timeout-s S] [--max-connections N] " +
  "[--insecure-localhost] [--require-signature]";

const HELP = `${USAGE}

Runs evaluation jobs (\`maieutic eval ... --json\` in a subprocess, one at a time) behind an HTTP API:
  GET    /healthz            no auth: {"status": "ok"}; with the token also GPU adapter, model, queue depth
  POST   /v1/eval-jobs       {"adapter", "data", "generate"?, "max_samples"?, "callback_url"?} -> 202 {id}
                             (Content-Type: application/json; an Idempotency-Key header makes a retry
                             return the first job)
  GET    /v1/eval-jobs       newest first; ?limit=1..100&cursor=<next_cursor>&status=<status>
  GET    /v1/eval-jobs/ID    status (queued|running|succeeded|failed|cancelled), timings, report
  DELETE /v1/eval-jobs/ID    cancel

Options:
  --port N                 listen port (default 8787; 0 picks a free one)
  --hostname H             listen address (default 127.0.0.1)
  --data-root DIR          directory data files must lie in (repeatable; default data)
  --adapter-root DIR       directory adapters must lie in (default models)
  --jobs-dir DIR           where jobs and reports are persisted (default models/_jobs)
  --queue-size N           most waiting jobs before 429 (default 16)
  --max-jobs N             most jobs kept in all states before 429 (default ${DEFAULT_MAX_JOBS})
  --keep-days N            delete finished jobs older than N days, and the eval reports they wrote
                           (checked hourly; default 30; 0 keeps all)
  --job-timeout-s S        per-job time limit in seconds (default 3600)
  --model M                base model passed to eval (Hub id, local dir, "tiny"; default: eval's default)
  --callback-host H        only this host name may receive callbacks (repeatable; default: any public
                           host, every address it resolves to checked when the callback is sent)
  --header-timeout-s S     a request's line and headers must arrive within S s (default 10)
  --body-timeout-s S       its body within S s more (default 30)
  --max-connections N      open connections at once; more are answered 503 (default 256)
  --insecure-localhost     allow running without a token when bound to 127.0.0.1 (Host must then be a
                           loopback name), and http callbacks to loopback addresses (local testing only)
  --require-signature      refuse /v1 requests without a valid X-Maieutic-Signature

Environment (or .env):
  MAIEUTIC_EVAL_TOKEN      bearer token clients send as "Authorization: Bearer <token>" (required,
                           at least 16 characters, e.g. \`openssl rand -hex 32\`)
  MAIEUTIC_SIGNING_SECRET  HMAC-SHA256 secret: verifies X-Maieutic-Signature
                           (t=<unix s>,n=<hex nonce>,v1=<hex>, the MAC over "<t>\\n<nonce>\\n<METHOD>\\n
                           <path?query>\\n<body>"; each signature is accepted once) on requests and signs
                           job-end callbacks (needed for callback_url)

Stored reports are at most ${
  Math.round(DEFAULT_MAX_REPORT_BYTES / 1024)
} KiB (larger ones keep their metrics). The threat
model and every limit: deploy/README.md.`;

const OPTIONS = {
  port: { type: "string" },
  hostname: { type: "string" },
  "data-root": { type: "string", multiple: true },
  "adapter-root": { type: "string" },
  "jobs-dir": { type: "string" },
  "queue-size": { type: "string" },
  "max-jobs": { type: "string" },
  "callback-host": { type: "string", multiple: true },
  "header-timeout-s": { type: "string" },
  "body-timeout-s": { type: "string" },
  "max-connections": { type: "string" },
  "keep-days": { type: "string" },
  "job-timeout-s": { type: "string" },
  model: { type: "string" },
  "insecure-localhost": { type: "boolean" },
  "require-signature": { type: "boolean" },
} as const;

function int(name: string, v: unknown, def: number, min: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (typeof v !== "string" || !/^\d+$/.test(v.trim()) || n < min) {
    throw new UsageError(`--${name} expects an integer >= ${min}, got "${v}"`);
  }
  return n;
}

/**
 * The WebGPU adapter this machine would run eval on (no device is opened), for /healthz: chosen as the eval
 * children choose it (src/gpu/backend.ts: Vulkan, Metal or DX12 before GL).
 */
async function adapterInfo(): Promise<unknown> {
  try {
    if (!("gpu" in navigator) || !navigator.gpu) return null;
    const choice = await chooseBackend();
    const a = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" }) ??
      await navigator.gpu.requestAdapter();
    if (!a) return null;
    const i = a.info;
    return {
      vendor: i.vendor,
      architecture: i.architecture,
      device: i.device,
      description: i.description,
      software: isSoftwareAdapter(i),
      backend: choice.backend,
    };
  } catch {
    return null;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await Deno.stat(p)).isDirectory;
  } catch {
    return false;
  }
}

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS, USAGE);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const port = int("port", values.port, 8787, 0);
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const hostname = (values.hostname as string | undefined) ?? "127.0.0.1";
  const queueSize = int("queue-size", values["queue-size"], 16, 1);
  const jobTimeoutS = int("job-timeout-s", values["job-timeout-s"], 3600, 1);
  const keepDays = int("keep-days", values["keep-days"], DEFAULT_KEEP_DAYS, 0);
  const maxJobs = int("max-jobs", values["max-jobs"], DEFAULT_MAX_JOBS, 1);
  const headerTimeoutS = int(
    "header-timeout-s",
    values["header-timeout-s"],
    DEFAULT_CONNECTION_LIMITS.headerTimeoutMs / 1000,
    1,
  );
  const bodyTimeoutS = int(
    "body-timeout-s",
    values["body-timeout-s"],
    DEFAULT_CONNECTION_LIMITS.bodyTimeoutMs / 1000,
    1,
  );
  const maxConnections = int(
    "max-connections",
    values["max-connections"],
    DEFAULT_CONNECTION_LIMITS.maxConnections,
    1,
  );
  const callbackHosts = values["callback-host"] as string[] | undefined;
  const dataRoots = (values["data-root"] as string[] | undefined) ?? ["data"];
  const adapterRoot = (values["adapter-root"] as string | undefined) ?? "models";
  const jobsDir = (values["jobs-dir"] as string | undefined) ?? "models/_jobs";
  const insecure = values["insecure-localhost"] === true;

  const token = Deno.env.get("MAIEUTIC_EVAL_TOKEN") || undefined;
  const signingSecret = Deno.env.get("MAIEUTIC_SIGNING_SECRET") || undefined;
  if (!token && !(insecure && hostname === "127.0.0.1")) {
    throw new UsageError(
      "MAIEUTIC_EVAL_TOKEN is not set (environment or .env): the server refuses to start without a token. " +
        "Set one (e.g. `openssl rand -hex 32`), or for local testing only pass --insecure-localhost with " +
        "--hostname 127.0.0.1.",
    );
  }
  if (token && token.length < 16) {
    throw new UsageError(
      "MAIEUTIC_EVAL_TOKEN is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)",
    );
  }
  if (values["require-signature"] && !signingSecret) {
    throw new UsageError("--require-signature needs MAIEUTIC_SIGNING_SECRET (environment or .env)");
  }
  for (const d of dataRoots) {
    if (!(await isDir(d))) throw new UsageError(`--data-root ${d}: not a directory`);
  }
  if (!(await isDir(adapterRoot))) {
    throw new UsageError(
      `--adapter-root ${adapterRoot}: not a directory (train writes adapters under models/)`,
    );
  }

  const server = await EvalServer.create({
    token,
    signingSecret,
    requireSignature: values["require-signature"] === true,
    insecureLocalhost: insecure,
    hostname,
    port,
    dataRoots,
    adapterRoot,
    jobsDir,
    queueSize,
    maxJobs,
    keepDays,
    callbackHosts,
    connection: {
      headerTimeoutMs: headerTimeoutS * 1000,
      bodyTimeoutMs: bodyTimeoutS * 1000,
      maxConnections,
    },
    jobTimeoutS,
    model: values.model as string | undefined,
    adapterInfo: await adapterInfo(),
  });
  const stopped = new Promise<number>((resolve) => {
    const stop = (code: number) => () => resolve(code);
    Deno.addSignalListener("SIGINT", stop(130));
    if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop(0));
  });
  const addr = await server.listen();
  const r = server.recovered;
  console.error(
    `maieutic serve listening on http://${addr.hostname}:${addr.port} (jobs ${jobsDir}, queue ${queueSize}, ` +
      `timeout ${jobTimeoutS} s${values.model ? `, model ${values.model}` : ""}${
        token ? "" : ", NO TOKEN: insecure localhost mode"
      }${
        signingSecret ? ", signing on" : ""
      }; ${server.store.size()} jobs on disk, ${r.requeued.length} requeued, ` +
      `${r.failed.length} failed on recovery)`,
  );
  const code = await stopped;
  console.error("maieutic serve: stopping (a running job is requeued)");
  await server.close();
  return code;
}
