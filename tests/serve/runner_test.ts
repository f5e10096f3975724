// The real subprocess runner, against a stand-in eval script (fixtures/fake_eval.ts) and the real main.ts.
import { fileURLToPath } from "node:url";
import {
  createSubprocessRunner,
  evalArgs,
  isStandalone,
  JobError,
  maieuticCommand,
  parseReport,
} from "../../src/serve/runner.ts";
import type { EvalJob } from "../../src/serve/schema.ts";
import { assert, assertEq, SECRET, TOKEN } from "./helpers.ts";

const FAKE = fileURLToPath(new URL("./fixtures/fake_eval.ts", import.meta.url));
const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));

function job(over: Partial<EvalJob["request"]> = {}, model?: string): EvalJob {
  return {
    id: crypto.randomUUID(),
    seq: 0,
    status: "running",
    request: { adapter: "run1", data: "d.json", ...over },
    resolved: { adapter: "/abs/models/run1/model/checkpoint-10", data: "/abs/data/d.json" },
    model,
    attempts: 1,
    created_at: new Date().toISOString(),
    timings: {},
    events: [],
  };
}

/** Runs the stand-in with FAKE_EVAL_* set in this process's env for the duration (the child inherits it). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const old = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(old)) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
}

const runner = (grace = 5000) =>
  createSubprocessRunner({ command: [Deno.execPath(), "run", "-A", FAKE], killGraceMs: grace });

Deno.test("command: deno run -A --config deno.json main.ts eval ... in `deno run` mode", () => {
  assert(!isStandalone(), "tests run under deno run");
  const cmd = maieuticCommand();
  assertEq(cmd[0], Deno.execPath());
  assertEq(cmd.slice(1, 3), ["run", "-A"]);
  assertEq(cmd[cmd.length - 1], MAIN);
  assert(cmd.includes("--config"), "config passed");
  assertEq(evalArgs(job({ generate: true, max_samples: 7 }, "tiny")), [
    "eval",
    "--model",
    "tiny",
    "--adapter",
    "/abs/models/run1/model/checkpoint-10",
    "--data",
    "/abs/data/d.json",
    "--generate",
    "--max-samples",
    "7",
    "--json",
  ]);
  assertEq(evalArgs(job()), [
    "eval",
    "--adapter",
    "/abs/models/run1/model/checkpoint-10",
    "--data",
    "/abs/data/d.json",
    "--json",
  ]);
});

Deno.test("maieuticCommand() really starts the CLI (main.ts eval --help exits 0)", async () => {
  const [prog, ...lead] = maieuticCommand();
  const cwd = await Deno.makeTempDir(); // the cwd does not matter
  const r = await new Deno.Command(prog, {
    args: [...lead, "eval", "--help"],
    cwd,
    stdout: "piped",
    stderr: "piped",
  })
    .output().finally(() => Deno.remove(cwd));
  const out = new TextDecoder().decode(r.stdout);
  assertEq(r.code, 0, new TextDecoder().decode(r.stderr));
  assert(out.includes("maieutic eval"), out);
});

Deno.test("runner: parses the JSON report; secrets scrubbed from the child's env; job id passed", async () => {
  const j = job({ generate: true });
  const report = await withEnv(
    { FAKE_EVAL_MODE: "ok", MAIEUTIC_EVAL_TOKEN: TOKEN, MAIEUTIC_SIGNING_SECRET: SECRET },
    () => runner()(j, new AbortController().signal),
  );
  assertEq(report.eval_loss, 1.25);
  assertEq(report.eval_tokens, 1234);
  assertEq(report.args, evalArgs(j));
  assertEq(report.env_token, "");
  assertEq(report.env_secret, "");
  assertEq(report.job_id, j.id);
});

Deno.test("runner: exit 2 and exit 1 become JobErrors with stderr; non-JSON stdout fails", async () => {
  for (const [mode, code, text] of [["exit2", 2, "rejected its input"], ["exit1", 1, "GPU lost"]] as const) {
    let err: unknown;
    await withEnv({ FAKE_EVAL_MODE: mode }, () => runner()(job(), new AbortController().signal)).catch((
      e,
    ) => (err = e));
    assert(err instanceof JobError, `${mode}: ${err}`);
    assertEq((err as JobError).exitCode, code);
    assert((err as Error).message.includes(text), (err as Error).message);
  }
  let err: unknown;
  await withEnv({ FAKE_EVAL_MODE: "noise" }, () => runner()(job(), new AbortController().signal)).catch((
    e,
  ) => (err = e));
  assert(String(err).includes("no JSON object"), String(err));
});

Deno.test("runner: abort kills the subprocess (SIGTERM, then SIGKILL when ignored)", async () => {
  for (const [mode, grace] of [["sleep", 5000], ["ignore-term", 300]] as const) {
    const ac = new AbortController();
    let pid = 0;
    const r = createSubprocessRunner({
      command: [Deno.execPath(), "run", "-A", FAKE],
      killGraceMs: grace,
      onSpawn: (_j, p) => (pid = p),
    });
    const t0 = Date.now();
    const p = withEnv({ FAKE_EVAL_MODE: mode, FAKE_EVAL_SLEEP_MS: "20000" }, () => r(job(), ac.signal));
    await new Promise((res) => setTimeout(res, 700)); // let it start (and install its SIGTERM handler)
    ac.abort(new Error("cancel"));
    let err: unknown;
    await p.catch((e) => (err = e));
    const took = Date.now() - t0;
    assert(err, `${mode}: should reject`);
    assert(took < 8000, `${mode}: took ${took} ms`);
    assert(pid > 0, "pid reported");
    let alive = true;
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      alive = !/\) [ZX] /.test(stat);
    } catch {
      alive = false;
    }
    assert(!alive, `${mode}: child ${pid} still alive`);
  }
});

Deno.test("parseReport: whole stdout, or its last line", () => {
  assertEq(parseReport('{"a":1}\n'), { a: 1 });
  assertEq(parseReport('progress\n{"a":2}\n'), { a: 2 });
  let threw = false;
  try {
    parseReport("[1,2]");
  } catch {
    threw = true;
  }
  assert(threw, "arrays are not reports");
});
