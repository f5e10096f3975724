/**
 * Runs one eval job. The server takes any `JobRunner`; the real one starts `maieutic eval ... --json` as a
 * subprocess (isolation from the server, a hard timeout and cancellation by killing it) and parses the one
 * JSON object it prints on stdout.
 */
import { fileURLToPath as fromFileUrl } from "node:url";
import { deathSignalPrefix, processStartTime } from "./orphans.ts";
import type { EvalJob } from "./schema.ts";

/** Resolves to the eval report; rejects on failure. Must stop promptly once `signal` aborts. */
export type JobRunner = (job: EvalJob, signal: AbortSignal) => Promise<Record<string, unknown>>;

export class JobError extends Error {
  override name = "JobError";
  constructor(message: string, readonly exitCode?: number) {
    super(message);
  }
}

/** True inside a `deno compile`d binary, where the program is the executable itself. */
export function isStandalone(): boolean {
  return (Deno.build as { standalone?: boolean }).standalone === true || !import.meta.url.startsWith("file:");
}

/**
 * The command that runs `maieutic <subcommand>`: the compiled binary itself, or
 * `deno run -A --config <repo>/deno.json <repo>/main.ts` (main.ts located from this file, so the cwd does not
 * matter).
 */
export function maieuticCommand(): string[] {
  if (isStandalone()) return [Deno.execPath()];
  const main = fromFileUrl(new URL("../../main.ts", import.meta.url));
  const config = fromFileUrl(new URL("../../deno.json", import.meta.url));
  let hasConfig = false;
  try {
    hasConfig = Deno.statSync(config).isFile;
  } catch { /* no config next to main.ts */ }
  return [Deno.execPath(), "run", "-A", ...(hasConfig ? ["--config", config] : []), main];
}

/** The eval subcommand's arguments for a job. */
export function evalArgs(job: EvalJob): string[] {
  const a = ["eval"];
  if (job.model) a.push("--model", job.model);
  a.push("--adapter", job.resolved.adapter, "--data", job.resolved.data);
  if (job.request.generate) a.push("--generate");
  if (job.request.max_samples !== undefined) a.push("--max-samples", String(job.request.max_samples));
  a.push("--json");
  return a;
}

/** Parses eval's stdout: the whole of it as one JSON object, else its last non-empty line. */
export function parseReport(stdout: string): Record<string, unknown> {
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  const tries = [stdout.trim(), stdout.trim().split("\n").filter((l) => l.trim()).pop() ?? ""];
  for (const t of tries) {
    try {
      const v = JSON.parse(t);
      if (isObj(v)) return v;
    } catch { /* next */ }
  }
  throw new JobError(`eval printed no JSON object on stdout (got ${JSON.stringify(stdout.slice(0, 200))})`);
}

export interface SubprocessRunnerOptions {
  /** program + leading args before evalArgs(job); default maieuticCommand() */
  command?: string[];
  /** args after the command; default evalArgs */
  args?: (job: EvalJob) => string[];
  cwd?: string;
  /** SIGTERM first, SIGKILL after this long (default 5000 ms) */
  killGraceMs?: number;
  /** stdout beyond this is a failure (default 16 MiB) */
  maxStdoutBytes?: number;
  /** called with the child's pid (and start time) once it started (the server records them) */
  onSpawn?: (job: EvalJob, pid: number, startTime: number | undefined) => void;
  /** start the child so that it is killed when this process dies (Linux, setpriv); default true */
  dieWithParent?: boolean;
  /** secrets removed from the child's environment (and blanked so its .env loading cannot restore them) */
  scrubEnv?: string[];
}

const DEFAULT_SCRUB = ["MAIEUTIC_EVAL_TOKEN", "MAIEUTIC_SIGNING_SECRET"];

async function drain(
  stream: ReadableStream<Uint8Array>,
  limit: number,
  keepTail: boolean,
  onOverflow: () => void,
): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const c of stream) {
    chunks.push(c);
    size += c.length;
    if (size > limit) {
      if (keepTail) {
        while (size - chunks[0].length >= limit) size -= chunks.shift()!.length;
      } else {
        onOverflow();
        chunks.length = 0;
        size = 0;
        for await (const _ of stream) { /* discard */ }
        break;
      }
    }
  }
  const all = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  return new TextDecoder().decode(all);
}

/** The real runner: `maieutic eval ... --json` in a subprocess. */
export function createSubprocessRunner(opts: SubprocessRunnerOptions = {}): JobRunner {
  const grace = opts.killGraceMs ?? 5000;
  const maxOut = opts.maxStdoutBytes ?? 16 * 2 ** 20;
  const scrub = opts.scrubEnv ?? DEFAULT_SCRUB;
  return async (job, signal) => {
    signal.throwIfAborted();
    // The kernel kills the child when the server dies, however it dies (orphans.ts).
    const [program, ...lead] = [
      ...(opts.dieWithParent === false ? [] : deathSignalPrefix()),
      ...(opts.command ?? maieuticCommand()),
    ];
    const env = Deno.env.toObject();
    for (const k of scrub) env[k] = "";
    env.MAIEUTIC_JOB_ID = job.id;
    env.NO_COLOR = "1";
    const child = new Deno.Command(program, {
      args: [...lead, ...(opts.args ?? evalArgs)(job)],
      cwd: opts.cwd,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    opts.onSpawn?.(job, child.pid, processStartTime(child.pid));
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    let overflow = false;
    const kill = () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already exited */ }
      killTimer ??= setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already exited */ }
      }, grace);
    };
    signal.addEventListener("abort", kill, { once: true });
    try {
      const [stdout, stderr, status] = await Promise.all([
        drain(child.stdout, maxOut, false, () => {
          overflow = true;
          kill();
        }),
        drain(child.stderr, 16 * 1024, true, () => {}),
        child.status,
      ]);
      signal.throwIfAborted();
      const tail = stderr.trim().split("\n").slice(-20).join("\n");
      if (overflow) throw new JobError(`eval wrote more than ${maxOut} bytes to stdout`);
      if (status.code === 2) throw new JobError(`eval rejected its input (exit 2): ${tail}`, 2);
      if (status.code !== 0) {
        throw new JobError(
          `eval failed (exit ${status.code}${status.signal ? `, ${status.signal}` : ""}): ${tail}`,
          status.code,
        );
      }
      return parseReport(stdout);
    } finally {
      signal.removeEventListener("abort", kill);
      if (killTimer !== undefined) clearTimeout(killTimer);
    }
  };
}
