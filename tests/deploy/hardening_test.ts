// deploy/ under attack (issue #18), over real HTTP on 127.0.0.1: the app served by Deno.serve, Deno KV in memory
// or at a temp path, and either a real `maieutic serve` or a stand-in VM that this file starts on loopback.
import { join } from "node:path";
import { createApp, type DeployEnv, envFrom, type JobEntry } from "../../deploy/app.ts";
import { sign } from "../../src/serve/sign.ts";
import { assert, assertEq, fakeRunner, makeTree, SECRET, startTestServer, TOKEN } from "../serve/helpers.ts";

const TRIGGER = "trigger-token-0123456789";
const enc = new TextEncoder();

type App = ReturnType<typeof createApp>;

/** Serves `app` on 127.0.0.1 (the app is built once the port is known). */
async function serveApp(
  make: (base: string) => App,
  fn: (base: string, app: App, port: number) => Promise<void>,
): Promise<void> {
  const ac = new AbortController();
  const late: { app?: App } = {};
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => late.app!.handler(req),
  );
  const base = `http://127.0.0.1:${http.addr.port}`;
  late.app = make(base);
  try {
    await fn(base, late.app, http.addr.port);
  } finally {
    ac.abort();
    await http.finished;
  }
}

function env(over: Partial<DeployEnv>): DeployEnv {
  return { ...envFrom(() => undefined), token: TOKEN, signingSecret: SECRET, triggerToken: TRIGGER, ...over };
}

async function postCallback(base: string, payload: unknown, signature?: string): Promise<number> {
  const body = JSON.stringify(payload);
  const sig = signature ?? await sign(SECRET, { method: "POST", path: "/callback", body });
  const r = await fetch(`${base}/callback`, {
    method: "POST",
    headers: { "x-maieutic-signature": sig },
    body,
  });
  await r.body?.cancel();
  return r.status;
}

async function countIndex(kv: Deno.Kv): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix: ["jobs_by_time"] })) n++;
  return n;
}

/** A stand-in VM on loopback; `onPost`/`onGet` answer its API. */
function fakeVm(handlers: {
  onPost?: (req: Request) => Promise<Response>;
  onGet?: (id: string) => Promise<Response>;
}) {
  const ac = new AbortController();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (req) => {
      const u = new URL(req.url);
      if (req.method === "POST" && u.pathname === "/v1/eval-jobs" && handlers.onPost) {
        return await handlers
          .onPost(req);
      }
      const m = u.pathname.match(/^\/v1\/eval-jobs\/(.+)$/);
      if (req.method === "GET" && m && handlers.onGet) return await handlers.onGet(m[1]);
      return new Response("{}", { status: 404 });
    },
  );
  return { base: `http://127.0.0.1:${http.addr.port}`, close: async () => (ac.abort(), await http.finished) };
}

const jsonRes = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

Deno.test("deploy /callback: an oversized unauthenticated chunked body is refused while it streams", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await serveApp(
      (base) => createApp(env({ callbackUrl: `${base}/callback` }), kv),
      async (_base, _app, port) => {
        for (const signed of [false, true]) {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          const sig = signed
            ? `x-maieutic-signature: ${await sign(SECRET, {
              method: "POST",
              path: "/callback",
              body: "",
            })}\r\n`
            : "";
          await conn.write(enc.encode(
            `POST /callback HTTP/1.1\r\nhost: 127.0.0.1\r\n${sig}transfer-encoding: chunked\r\n\r\n`,
          ));
          // 2 MiB, then the body stalls without ending: the answer must not wait for an end that never comes.
          const chunk = enc.encode(`10000\r\n${"a".repeat(0x10000)}\r\n`);
          const writing = (async () => {
            for (let i = 0; i < 32; i++) await conn.write(chunk).catch(() => {});
          })();
          const buf = new Uint8Array(1024);
          const t0 = Date.now();
          const first = await Promise.race([
            conn.read(buf).then((n) => new TextDecoder().decode(buf.subarray(0, n ?? 0))).catch(() =>
              "reset"
            ),
            new Promise<string>((r) => setTimeout(() => r("no answer"), 5000)),
          ]);
          assert(/^HTTP\/1\.1 (401|413)/.test(first), `signed=${signed}: ${first.slice(0, 60)}`);
          assert(Date.now() - t0 < 5000, "answered while streaming");
          conn.close();
          await writing;
        }
        let n = 0;
        for await (const _ of kv.list({ prefix: [] })) n++;
        assertEq(n, 0);
      },
    );
  } finally {
    kv.close();
  }
});

Deno.test("deploy KV: a callback that lands before trigger() records is kept; a poll never moves a final status back", async () => {
  const kv = await Deno.openKv(":memory:");
  const id = crypto.randomUUID();
  const id2 = crypto.randomUUID();
  let appBase = "";
  const done = { id, status: "succeeded", report: { eval_loss: 0.5 }, created_at: new Date().toISOString() };
  const vm = fakeVm({
    // The VM finishes so fast that its callback arrives before the 202.
    onPost: async () => {
      assertEq(await postCallback(appBase, done), 204);
      return jsonRes(202, { id, status: "queued" });
    },
    // A poll races a callback: the callback (succeeded) lands while the VM's older view (running) is in flight.
    onGet: async (jid) => {
      assertEq(await postCallback(appBase, { ...done, id: jid }), 204);
      return jsonRes(200, { id: jid, status: "running" });
    },
  });
  try {
    await serveApp(
      (base) => createApp(env({ vmUrl: vm.base, callbackUrl: `${base}/callback` }), kv),
      async (base, app) => {
        appBase = base;
        const r = await app.trigger({ adapter: "a", data: "d" });
        assertEq(r.id, id);
        const e = (await kv.get<JobEntry>(["jobs", id])).value!;
        assertEq([e.status, e.report?.eval_loss], ["succeeded", 0.5]);
        assertEq(await countIndex(kv), 1, "listed once:");
        // A job the VM accepted whose callback is late: the poll sees "running" while the callback lands.
        await kv.set(
          ["jobs", id2],
          {
            id: id2,
            status: "queued",
            source: "request",
            request: {},
            submitted_at: new Date().toISOString(),
            updated_at: new Date().toISOString(),
          } satisfies JobEntry,
        );
        await kv.set(["jobs_by_time", new Date().toISOString(), id2], id2);
        await app.syncPending();
        assertEq((await kv.get<JobEntry>(["jobs", id2])).value?.status, "succeeded");
      },
    );
  } finally {
    await vm.close();
    kv.close();
  }
});

Deno.test("deploy KV: an oversized report is stored in summary form; the cron keeps running", async () => {
  const kv = await Deno.openKv(":memory:");
  const big = {
    eval_loss: 0.25,
    eval_tokens: 7,
    samples: Array.from({ length: 3000 }, (_, i) => `sample ${i} ${"x".repeat(60)}`),
  };
  const polled = crypto.randomUUID();
  const vm = fakeVm({
    onGet: (jid) =>
      Promise.resolve(
        jsonRes(200, { id: jid, status: "succeeded", report: big, error: "e".repeat(100_000) }),
      ),
    onPost: () => Promise.resolve(jsonRes(202, { id: crypto.randomUUID(), status: "queued" })),
  });
  try {
    await serveApp(
      (base) =>
        createApp(env({ vmUrl: vm.base, callbackUrl: `${base}/callback`, adapter: "a", data: "d" }), kv),
      async (base, app) => {
        const id = crypto.randomUUID();
        assertEq(await postCallback(base, { id, status: "succeeded", report: big }), 204);
        const e = (await kv.get<JobEntry>(["jobs", id])).value!;
        assertEq([e.status, e.report?.eval_loss, e.report?.eval_tokens], ["succeeded", 0.25, 7]);
        assert(e.report_truncated, "marked truncated");
        assert(JSON.stringify(e).length < 64 * 1024, "fits a KV value");
        await kv.set(
          ["jobs", polled],
          {
            id: polled,
            status: "queued",
            source: "cron",
            request: {},
            submitted_at: "2026-01-01T00:00:00.000Z",
            updated_at: "2026-01-01T00:00:00.000Z",
          } satisfies JobEntry,
        );
        await kv.set(["jobs_by_time", "2026-01-01T00:00:00.000Z", polled], polled);
        await app.scheduled(); // polls the oversized job, then triggers the scheduled one
        assertEq((await kv.get<JobEntry>(["jobs", polled])).value?.status, "succeeded");
        assertEq(await countIndex(kv), 3, "the scheduled job was triggered too:");
      },
    );
  } finally {
    await vm.close();
    kv.close();
  }
});

Deno.test("deploy triggers are idempotent: a lost 202 and the cron's retry make one job; /trigger honours Idempotency-Key", async () => {
  const tree = await makeTree();
  const vm = await startTestServer(tree, {
    signingSecret: SECRET,
    requireSignature: true,
    runner: fakeRunner({ delayMs: 10 }),
  });
  const kv = await Deno.openKv(":memory:");
  let lose = 1;
  const lossy: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    if (init?.method === "POST" && lose-- > 0) {
      await res.body?.cancel();
      throw new TypeError("connection reset (the 202 was lost)");
    }
    return res;
  };
  try {
    await serveApp(
      () =>
        createApp(env({ vmUrl: vm.base, adapter: tree.adapter, data: tree.dataFile }), kv, { fetch: lossy }),
      async (base, app) => {
        let threw = false;
        await app.scheduled().catch(() => (threw = true));
        assert(threw, "the first run failed");
        await app.scheduled(); // Deno.cron's retry
        assertEq(vm.server.store.size(), 1, "one job on the VM:");
        assertEq(await countIndex(kv), 1);
        const call = async () => {
          const r = await fetch(`${base}/trigger`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${TRIGGER}`,
              "idempotency-key": "k-1",
              "content-type": "application/json",
            },
            body: "{}",
          });
          return { status: r.status, json: await r.json() };
        };
        const a = await call();
        const b = await call();
        assertEq(a.status, 202);
        assertEq(b.json.id, a.json.id);
        assertEq(vm.server.store.size(), 2);
      },
    );
  } finally {
    kv.close();
    await vm.close();
    await tree.cleanup();
  }
});

Deno.test("deploy /callback refuses a replayed signature, also after a restart (KV-persisted nonces)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "maieutic-kv-" });
  const path = join(dir, "kv.sqlite");
  const payload = { id: crypto.randomUUID(), status: "succeeded", report: { eval_loss: 1 } };
  const sig = await sign(SECRET, { method: "POST", path: "/callback", body: JSON.stringify(payload) });
  try {
    for (const expected of [[204, 401], [401, 401]]) {
      const kv = await Deno.openKv(path);
      try {
        await serveApp((base) => createApp(env({ callbackUrl: `${base}/callback` }), kv), async (base) => {
          assertEq(
            [await postCallback(base, payload, sig), await postCallback(base, payload, sig)],
            expected,
          );
        });
      } finally {
        kv.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy refuses to send the token to a plain-http VM URL that is not loopback", async () => {
  const kv = await Deno.openKv(":memory:");
  const calls: string[] = [];
  const record: typeof fetch = (input) => {
    calls.push(String(input));
    return Promise.reject(new Error("no request may be made"));
  };
  try {
    await serveApp(
      () =>
        createApp(env({ vmUrl: "http://gpu.example.com:8787", adapter: "a", data: "d" }), kv, {
          fetch: record,
        }),
      async (base) => {
        const r = await fetch(`${base}/trigger`, {
          method: "POST",
          headers: { authorization: `Bearer ${TRIGGER}`, "content-type": "application/json" },
          body: "{}",
        });
        const j = await r.json();
        assertEq(r.status, 502);
        assert(/https/.test(j.error), j.error);
        assertEq(calls, [], "nothing sent:");
      },
    );
  } finally {
    kv.close();
  }
});
