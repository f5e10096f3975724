// Durability: what a crash or a restart leaves behind is recovered; nothing accepted is lost.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JobStore } from "../../src/serve/store.ts";
import type { EvalJob } from "../../src/serve/schema.ts";
import {
  alive,
  api,
  assert,
  assertEq,
  fakeRunner,
  Gate,
  makeTree,
  startTestServer,
  TOKEN,
  waitFor,
  waitStatus,
} from "./helpers.ts";

function record(over: Partial<EvalJob>): EvalJob {
  return {
    id: crypto.randomUUID(),
    seq: 0,
    status: "queued",
    request: { adapter: "run1", data: "d.json" },
    resolved: { adapter: "/x", data: "/y" },
    attempts: 0,
    created_at: new Date().toISOString(),
    timings: {},
    events: [],
    ...over,
  };
}

Deno.test("store reopened from disk: running -> requeued once, then failed; queued kept in order; corrupt set aside", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const jobs = [
      record({ seq: 3, status: "queued" }),
      record({ seq: 1, status: "running", attempts: 1, pid: 999_999_999 }),
      record({
        seq: 2,
        status: "running",
        attempts: 2,
        callback: { url: "https://x/cb", state: "pending", attempts: 0 },
      }),
      record({ seq: 0, status: "succeeded", attempts: 1, report: { eval_loss: 1 } }),
    ];
    for (const j of jobs) await Deno.writeTextFile(join(dir, `${j.id}.json`), JSON.stringify(j));
    const bad = crypto.randomUUID();
    await Deno.writeTextFile(join(dir, `${bad}.json`), '{"id": "torn');
    await Deno.writeTextFile(join(dir, `${jobs[0].id}.json.1234.tmp`), "partial");
    const reaped: [number | undefined, string][] = [];
    const { store, recovered } = await JobStore.open(dir, {
      reap: (pid, id) => Promise.resolve(void reaped.push([pid, id])),
    });
    assertEq(recovered.requeued, [jobs[1].id]);
    assertEq(recovered.failed, [jobs[2].id]);
    assertEq(recovered.corrupt, [bad]);
    // Every interrupted job is reaped, with or without a recorded pid (found by job id: orphans.ts).
    assertEq(
      reaped.sort((a, b) => a[1].localeCompare(b[1])),
      ([[999_999_999, jobs[1].id], [undefined, jobs[2].id]] as [number | undefined, string][])
        .sort((a, b) => a[1].localeCompare(b[1])),
    );
    assertEq(store.queued().map((j) => j.id), [jobs[1].id, jobs[0].id]);
    assertEq(store.get(jobs[2].id)!.status, "failed");
    assertEq(store.pendingCallbacks().map((j) => j.id), [jobs[2].id]);
    assertEq(store.takeSeq(), 4);
    // The recovery itself is on disk.
    const again = await JobStore.open(dir);
    assertEq(again.recovered.requeued.length + again.recovered.failed.length, 0);
    assertEq(again.store.get(jobs[1].id)!.status, "queued");
    assertEq(again.store.get(jobs[1].id)!.events.length, 1);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert(names.includes(`${bad}.json.corrupt`), "corrupt file kept aside");
    assert(!names.some((n) => n.endsWith(".tmp")), "temp files removed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finished jobs older than keepDays are deleted on open; recent, unfinished and owed-callback jobs stay", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const now = Date.parse("2026-11-25T12:00:00Z");
    const daysAgo = (d: number) => new Date(now - d * 86_400_000).toISOString();
    const old = record({ seq: 0, status: "succeeded", attempts: 1, finished_at: daysAgo(31) });
    const oldFailed = record({ seq: 1, status: "failed", attempts: 2, finished_at: daysAgo(90) });
    const recent = record({ seq: 2, status: "succeeded", attempts: 1, finished_at: daysAgo(29) });
    const owed = record({
      seq: 3,
      status: "cancelled",
      finished_at: daysAgo(60),
      callback: { url: "https://x/cb", state: "pending", attempts: 3 },
    });
    const queued = record({ seq: 4, status: "queued", created_at: daysAgo(45) });
    const all = [old, oldFailed, recent, owed, queued];
    for (const j of all) await Deno.writeTextFile(join(dir, `${j.id}.json`), JSON.stringify(j));
    const lines: string[] = [];
    const { store, recovered } = await JobStore.open(dir, {
      keepDays: 30,
      now: () => now,
      log: (l) => lines.push(l),
    });
    assertEq([...recovered.pruned].sort(), [old.id, oldFailed.id].sort());
    for (const j of [recent, owed, queued]) assert(store.get(j.id) !== undefined, `${j.status} job kept`);
    assert(store.get(old.id) === undefined, "pruned job is gone from the store");
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEq(names.sort(), [recent, owed, queued].map((j) => `${j.id}.json`).sort());
    assert(lines.some((l) => l.includes("removed 2 finished job(s) older than 30 days")), lines.join("\n"));
    assertEq(store.takeSeq(), 5); // submission numbers never go back, even past pruned jobs
    // keepDays 0 keeps everything.
    const again = await JobStore.open(dir, { keepDays: 0, now: () => now + 1000 * 86_400_000 });
    assertEq(again.recovered.pruned, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("graceful close requeues the running job (attempt not counted); a new server finishes everything", async () => {
  const tree = await makeTree();
  try {
    const gate = new Gate();
    const a = await startTestServer(tree, { runner: fakeRunner({ gate }) });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        String(
          (await api(a.base, "POST", "/v1/eval-jobs", {
            body: { adapter: tree.adapter, data: tree.dataFile },
          })).json.id,
        ),
      );
    }
    await waitStatus(a.base, ids[0], "running");
    await a.close();
    const runner = fakeRunner();
    const b = await startTestServer(tree, { runner });
    try {
      for (const id of ids) {
        const j = await waitStatus(b.base, id, "succeeded");
        assertEq(j.attempts, 1);
      }
      assertEq(runner.ran, ids);
    } finally {
      await b.close();
    }
  } finally {
    await tree.cleanup();
  }
});

/** Starts tests/serve/fixtures/server_main.ts (real server, real subprocess runner, stand-in eval). */
async function spawnServer(
  env: Record<string, string>,
): Promise<{ child: Deno.ChildProcess; base: string; err: () => string }> {
  const script = fileURLToPath(new URL("./fixtures/server_main.ts", import.meta.url));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
    env: { ...env, MAIEUTIC_EVAL_TOKEN: TOKEN },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  (async () => {
    for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) err += c;
  })();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const deadline = Date.now() + 20_000;
  while (!/LISTENING (\d+)/.test(out)) {
    if (Date.now() > deadline) throw new Error(`server did not start: ${out} ${err}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited: ${out} ${err}`);
    out += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return { child, base: `http://127.0.0.1:${out.match(/LISTENING (\d+)/)![1]}`, err: () => err };
}

Deno.test("SIGKILL the server mid-job, restart: the eval child died with it; the job is retried and completes, none lost", async () => {
  const tree = await makeTree();
  const env = {
    JOBS_DIR: tree.jobs,
    DATA_ROOT: tree.data,
    ADAPTER_ROOT: tree.models,
    FAKE_EVAL_MODE: "sleep",
  };
  let first: Awaited<ReturnType<typeof spawnServer>> | undefined;
  let second: Awaited<ReturnType<typeof spawnServer>> | undefined;
  try {
    first = await spawnServer({ ...env, FAKE_EVAL_SLEEP_MS: "20000" });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await api(first.base, "POST", "/v1/eval-jobs", {
        body: { adapter: tree.adapter, data: tree.dataFile },
      });
      assertEq(r.status, 202, first.err());
      ids.push(String(r.json.id));
    }
    await waitStatus(first.base, ids[0], "running");
    // The eval subprocess's pid is on disk before the crash.
    const pid = await waitFor(async () => {
      const j = JSON.parse(await Deno.readTextFile(join(tree.jobs, `${ids[0]}.json`)));
      return j.pid as number | undefined;
    }, "pid recorded");
    assert(alive(pid), "eval subprocess running");
    first.child.kill("SIGKILL");
    await first.child.status;
    first = undefined;
    // setpriv --pdeathsig: the kernel kills the eval child with its server (orphans.ts).
    await waitFor(() => !alive(pid), "eval child gone with the server", 5000);

    second = await spawnServer({ ...env, FAKE_EVAL_SLEEP_MS: "50" });
    for (const id of ids) {
      const j = await waitStatus(second.base, id, "succeeded", 20_000);
      assertEq((j.report as { eval_loss: number }).eval_loss, 1.25);
    }
    const j0 = await api(second.base, "GET", `/v1/eval-jobs/${ids[0]}`);
    assertEq(j0.json.attempts, 2);
    assert(JSON.stringify(j0.json.events).includes("requeued"), JSON.stringify(j0.json.events));
    const all = await api(second.base, "GET", "/v1/eval-jobs?limit=100");
    assertEq((all.json.jobs as unknown[]).length, 3);
  } finally {
    for (const s of [first, second]) {
      if (!s) continue;
      s.child.kill("SIGKILL");
      await s.child.status;
    }
    await tree.cleanup();
  }
});
