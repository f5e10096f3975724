// 50 parallel submissions (bounded in count and time): every accepted job is kept, persisted and run once.
import { JobStore } from "../../src/serve/store.ts";
import { api, assert, assertEq, fakeRunner, makeTree, startTestServer, waitFor } from "./helpers.ts";

const N = 50;
const TIME_LIMIT_MS = 30_000;

async function burst(queueSize: number): Promise<void> {
  const tree = await makeTree();
  const runner = fakeRunner({ delayMs: 5 });
  const s = await startTestServer(tree, { runner, queueSize });
  const t0 = Date.now();
  try {
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        api(s.base, "POST", "/v1/eval-jobs", {
          body: { adapter: tree.adapter, data: tree.dataFile, max_samples: i + 1 },
        })),
    );
    const accepted = results.filter((r) => r.status === 202).map((r) => String(r.json.id));
    const rejected = results.filter((r) => r.status === 429).length;
    assertEq(accepted.length + rejected, N, `statuses ${results.map((r) => r.status)}:`);
    assertEq(new Set(accepted).size, accepted.length, "ids unique");
    // One running plus queueSize waiting is the most that can be in the system at once.
    assert(accepted.length >= Math.min(N, queueSize), `accepted ${accepted.length}`);
    if (queueSize >= N) assertEq(rejected, 0);
    await waitFor(
      () => s.server.store.count("succeeded") === accepted.length,
      "every accepted job to succeed",
      TIME_LIMIT_MS - (Date.now() - t0),
    );
    // Each ran exactly once, in submission order.
    assertEq(runner.ran.length, accepted.length);
    assertEq(new Set(runner.ran).size, accepted.length);
    const bySeq = accepted.map((id) => s.server.store.get(id)!).sort((a, b) => a.seq - b.seq).map((j) =>
      j.id
    );
    assertEq(runner.ran, bySeq);
    await s.server.store.flush();
    // And all of it is on disk.
    const { store } = await JobStore.open(tree.jobs);
    assertEq(store.size(), accepted.length);
    for (const id of accepted) assertEq(store.get(id)?.status, "succeeded", id);
  } finally {
    await s.close();
    await tree.cleanup();
  }
  assert(Date.now() - t0 < TIME_LIMIT_MS, "within the time bound");
}

Deno.test("50 parallel submissions, queue of 16: every 202 is kept and runs, the rest are 429", () =>
  burst(16));
Deno.test("50 parallel submissions, queue of 64: all accepted and run once, in order", () => burst(64));
