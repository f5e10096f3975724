// The eval-job API over real HTTP on 127.0.0.1 (port 0), with a fake runner.
import { join } from "node:path";
import { SECRET, TOKEN } from "./helpers.ts";
import {
  api,
  assert,
  assertEq,
  fakeRunner,
  Gate,
  makeTree,
  startTestServer,
  waitFor,
  waitStatus,
  withServer,
} from "./helpers.ts";
import { verify } from "../../src/serve/sign.ts";

Deno.test("healthz needs no auth; with the token it reports adapter and queue depth", async () => {
  const gate = new Gate();
  await withServer(
    { runner: fakeRunner({ gate }), adapterInfo: { vendor: "test" }, model: "tiny" },
    async (s, t) => {
      assertEq((await api(s.base, "GET", "/healthz", { token: null })).json, { status: "ok" });
      const h = await api(s.base, "GET", "/healthz");
      assertEq(h.status, 200);
      assertEq(h.json.adapter, { vendor: "test" });
      assertEq(h.json.queue_depth, 0);
      assertEq(h.json.model, "tiny");
      for (let i = 0; i < 3; i++) {
        const r = await api(s.base, "POST", "/v1/eval-jobs", {
          body: { adapter: t.adapter, data: t.dataFile },
        });
        assertEq(r.status, 202);
      }
      await waitFor(async () => (await api(s.base, "GET", "/healthz")).json.running === true, "running");
      assertEq((await api(s.base, "GET", "/healthz")).json.queue_depth, 2);
      gate.open();
    },
  );
});

Deno.test("missing, malformed or wrong bearer token -> 401", async () => {
  await withServer({}, async (s, t) => {
    const body = { adapter: t.adapter, data: t.dataFile };
    for (const token of [null, "wrong-token-0123456789abcdef", TOKEN + "x", TOKEN.slice(0, -1), ""]) {
      const r = await api(s.base, "POST", "/v1/eval-jobs", { body, token });
      assertEq(r.status, 401, `token ${JSON.stringify(token)}:`);
      assert(r.headers.get("www-authenticate")?.startsWith("Bearer"), "WWW-Authenticate");
    }
    const basic = await api(s.base, "GET", "/v1/eval-jobs", {
      token: null,
      headers: { authorization: `Basic ${btoa("u:" + TOKEN)}` },
    });
    assertEq(basic.status, 401);
    assertEq((await api(s.base, "GET", "/v1/eval-jobs", { token: null })).status, 401);
    assertEq((await api(s.base, "GET", "/v1/eval-jobs")).status, 200);
  });
});

Deno.test("bad signature, stale timestamp, replay -> 401; a good one passes", async () => {
  await withServer({ signingSecret: SECRET }, async (s, t) => {
    const body = { adapter: t.adapter, data: t.dataFile };
    const now = Math.floor(Date.now() / 1000);
    const bad = await api(s.base, "POST", "/v1/eval-jobs", { body, sign: { secret: "not-the-secret" } });
    assertEq(bad.status, 401);
    assert(String(bad.json.error).includes("bad"), JSON.stringify(bad.json));
    const stale = await api(s.base, "POST", "/v1/eval-jobs", {
      body,
      sign: { secret: SECRET, timestamp: now - 301 },
    });
    assertEq(stale.status, 401);
    assert(String(stale.json.error).includes("stale"), JSON.stringify(stale.json));
    const future = await api(s.base, "POST", "/v1/eval-jobs", {
      body,
      sign: { secret: SECRET, timestamp: now + 400 },
    });
    assertEq(future.status, 401);
    const garbage = await api(s.base, "POST", "/v1/eval-jobs", {
      body,
      headers: { "x-maieutic-signature": "v1=zz" },
    });
    assertEq(garbage.status, 401);
    // Signed for another body: the MAC covers the body.
    const { sign } = await import("../../src/serve/sign.ts");
    const other = await sign(SECRET, { method: "POST", path: "/v1/eval-jobs", body: "{}" });
    const tampered = await api(s.base, "POST", "/v1/eval-jobs", {
      body,
      headers: { "x-maieutic-signature": other },
    });
    assertEq(tampered.status, 401);
    const good = await api(s.base, "POST", "/v1/eval-jobs", {
      body,
      sign: { secret: SECRET, timestamp: now - 200 },
    });
    assertEq(good.status, 202);
    // The same signed request again is a replay.
    const sig = await sign(SECRET, { method: "GET", path: "/v1/eval-jobs", body: "" });
    assertEq(
      (await api(s.base, "GET", "/v1/eval-jobs", { headers: { "x-maieutic-signature": sig } })).status,
      200,
    );
    assertEq(
      (await api(s.base, "GET", "/v1/eval-jobs", { headers: { "x-maieutic-signature": sig } })).status,
      401,
    );
    // A valid signature does not replace the token.
    assertEq(
      (await api(s.base, "GET", "/v1/eval-jobs", { token: null, sign: { secret: SECRET } })).status,
      401,
    );
  });
});

Deno.test("--require-signature refuses unsigned requests", async () => {
  await withServer({ signingSecret: SECRET, requireSignature: true }, async (s) => {
    assertEq((await api(s.base, "GET", "/v1/eval-jobs")).status, 401);
    assertEq((await api(s.base, "GET", "/v1/eval-jobs", { sign: { secret: SECRET } })).status, 200);
    assertEq((await api(s.base, "GET", "/healthz", { token: null })).status, 200);
  });
});

Deno.test("body over 64 KiB -> 413 (with and without Content-Length)", async () => {
  await withServer({}, async (s, t) => {
    const big = JSON.stringify({ adapter: t.adapter, data: t.dataFile, pad: "x".repeat(65 * 1024) });
    assertEq((await api(s.base, "POST", "/v1/eval-jobs", { rawBody: big })).status, 413);
    const chunk = new TextEncoder().encode("x".repeat(16 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent++ < 6) c.enqueue(chunk);
        else c.close();
      },
    });
    assertEq((await api(s.base, "POST", "/v1/eval-jobs", { rawBody: stream })).status, 413);
    // Just under the limit is read (and fails the schema instead).
    const under = JSON.stringify({ adapter: t.adapter, data: "x".repeat(60 * 1024) });
    assertEq((await api(s.base, "POST", "/v1/eval-jobs", { rawBody: under })).status, 400);
  });
});

Deno.test("schema errors -> 400 naming the field", async () => {
  await withServer({ signingSecret: SECRET }, async (s, t) => {
    const cases: [unknown, string][] = [
      [{ data: t.dataFile }, "adapter"],
      [{ adapter: t.adapter }, "data"],
      [{ adapter: t.adapter, data: 7 }, "data"],
      [{ adapter: t.adapter, data: t.dataFile, generate: "yes" }, "generate"],
      [{ adapter: t.adapter, data: t.dataFile, max_samples: 1.5 }, "max_samples"],
      [{ adapter: t.adapter, data: t.dataFile, max_samples: 0 }, "max_samples"],
      [{ adapter: t.adapter, data: t.dataFile, max_sample: 3 }, "max_sample"],
      [{ adapter: t.adapter, data: t.dataFile, callback_url: "ftp://example.com/x" }, "callback_url"],
      [{ adapter: t.adapter, data: t.dataFile, callback_url: "http://example.com/x" }, "callback_url"],
      [{ adapter: t.adapter, data: t.dataFile, callback_url: "https://169.254.169.254/x" }, "callback_url"],
      [{ adapter: t.adapter, data: t.dataFile, callback_url: "not a url" }, "callback_url"],
      [[1, 2], "(body)"],
    ];
    for (const [body, field] of cases) {
      const r = await api(s.base, "POST", "/v1/eval-jobs", { body });
      assertEq(r.status, 400, JSON.stringify(body));
      assertEq(r.json.field, field, JSON.stringify(body));
      assert(String(r.json.error).length > 0, "message");
    }
    const notJson = await api(s.base, "POST", "/v1/eval-jobs", { rawBody: "{nope" });
    assertEq(notJson.status, 400);
    const lim = await api(s.base, "GET", "/v1/eval-jobs?limit=0");
    assertEq([lim.status, lim.json.field], [400, "limit"]);
    const st = await api(s.base, "GET", "/v1/eval-jobs?status=done");
    assertEq([st.status, st.json.field], [400, "status"]);
  });
});

Deno.test("callback_url without a signing secret -> 400 (callbacks are always signed)", async () => {
  await withServer({ allowLoopbackCallbacks: true }, async (s, t) => {
    const r = await api(s.base, "POST", "/v1/eval-jobs", {
      body: { adapter: t.adapter, data: t.dataFile, callback_url: "http://127.0.0.1:9/cb" },
    });
    assertEq([r.status, r.json.field], [400, "callback_url"]);
  });
});

Deno.test("path escapes -> 400 (.., absolute outside, symlinks out)", async () => {
  await withServer({}, async (s, t) => {
    await Deno.symlink(join(t.root, "outside.json"), join(t.data, "link.json"));
    await Deno.symlink(t.root, join(t.data, "linkdir"));
    await Deno.mkdir(join(t.root, "evil-adapter"));
    await Deno.writeTextFile(join(t.root, "evil-adapter", "adapter_config.json"), "{}");
    await Deno.symlink(join(t.root, "evil-adapter"), join(t.models, "evil"));
    const bad: [Record<string, unknown>, string][] = [
      [{ data: "../outside.json" }, "data"],
      [{ data: join(t.root, "outside.json") }, "data"],
      [{ data: "/etc/passwd" }, "data"],
      [{ data: "d.json/../../outside.json" }, "data"],
      [{ data: "link.json" }, "data"],
      [{ data: "linkdir/outside.json" }, "data"],
      [{ data: "missing.json" }, "data"],
      [{ data: "." }, "data"],
      [{ adapter: "../evil-adapter" }, "adapter"],
      [{ adapter: join(t.root, "evil-adapter") }, "adapter"],
      [{ adapter: "evil" }, "adapter"],
      [{ adapter: ".." }, "adapter"],
      [{ adapter: "/" }, "adapter"],
      [{ adapter: "run1/model" }, "adapter"], // no adapter_config.json
    ];
    for (const [over, field] of bad) {
      const body = { adapter: t.adapter, data: t.dataFile, ...over };
      const r = await api(s.base, "POST", "/v1/eval-jobs", { body });
      assertEq([r.status, r.json.field], [400, field], JSON.stringify(over));
    }
    // Accepted spellings of the same files.
    const good: Record<string, unknown>[] = [
      { data: join(t.data, "d.json") },
      { data: "./d.json" },
      { adapter: join(t.models, t.adapter) },
      { adapter: "run1/checkpoint-10" },
      { adapter: "run1" },
    ];
    for (const over of good) {
      const r = await api(s.base, "POST", "/v1/eval-jobs", {
        body: { adapter: t.adapter, data: t.dataFile, ...over },
      });
      assertEq(r.status, 202, JSON.stringify(over));
    }
  });
});

Deno.test("full queue -> 429 with Retry-After", async () => {
  const gate = new Gate();
  await withServer({ runner: fakeRunner({ gate }), queueSize: 2 }, async (s, t) => {
    const body = { adapter: t.adapter, data: t.dataFile };
    const first = await api(s.base, "POST", "/v1/eval-jobs", { body });
    assertEq(first.status, 202);
    await waitStatus(s.base, String(first.json.id), "running");
    assertEq((await api(s.base, "POST", "/v1/eval-jobs", { body })).status, 202);
    assertEq((await api(s.base, "POST", "/v1/eval-jobs", { body })).status, 202);
    const full = await api(s.base, "POST", "/v1/eval-jobs", { body });
    assertEq(full.status, 429);
    assert(full.headers.get("retry-after"), "Retry-After");
    gate.open();
    await waitFor(
      () => s.server.queueDepth() === 0 && s.server.store.count("succeeded") === 3,
      "queue drained",
    );
    assertEq((await api(s.base, "POST", "/v1/eval-jobs", { body })).status, 202);
  });
});

Deno.test("a job runs to succeeded; report, timings and file on disk", async () => {
  const runner = fakeRunner({
    report: { eval_loss: 0.25, eval_perplexity: 1.284, eval_tokens: 9, eval_samples: 2 },
  });
  await withServer({ runner, model: "tiny" }, async (s, t) => {
    const r = await api(s.base, "POST", "/v1/eval-jobs", {
      body: { adapter: t.adapter, data: t.dataFile, generate: true, max_samples: 5 },
    });
    assertEq(r.status, 202);
    assertEq(r.json.status, "queued");
    const id = String(r.json.id);
    assertEq(r.headers.get("location"), `/v1/eval-jobs/${id}`);
    const done = await waitStatus(s.base, id, "succeeded");
    assertEq(done.report, { eval_loss: 0.25, eval_perplexity: 1.284, eval_tokens: 9, eval_samples: 2 });
    assertEq(done.request, { adapter: t.adapter, data: t.dataFile, generate: true, max_samples: 5 });
    assertEq(done.attempts, 1);
    assertEq(done.model, "tiny");
    const tm = done.timings as Record<string, number>;
    assert(tm.queued_ms >= 0 && tm.run_ms >= 0 && tm.total_ms >= tm.run_ms, JSON.stringify(tm));
    assert(done.started_at && done.finished_at, "timestamps");
    assert(!("resolved" in done) && !("pid" in done), "server paths are not exposed");
    const onDisk = JSON.parse(await Deno.readTextFile(join(t.jobs, `${id}.json`)));
    assertEq(onDisk.status, "succeeded");
    assertEq(onDisk.report.eval_loss, 0.25);
    assertEq(onDisk.resolved.data, await Deno.realPath(join(t.data, "d.json")));
    assertEq(runner.ran, [id]);
    assertEq((await api(s.base, "GET", "/v1/eval-jobs/00000000-0000-4000-8000-000000000000")).status, 404);
    assertEq((await api(s.base, "GET", "/v1/eval-jobs/../../etc")).status, 404);
    assertEq((await api(s.base, "PUT", `/v1/eval-jobs/${id}`)).status, 405);
  });
});

Deno.test("runner failure and timeout -> failed with the reason; secrets redacted", async () => {
  await withServer({ runner: fakeRunner({ fail: `boom ${TOKEN}` }) }, async (s, t) => {
    const r = await api(s.base, "POST", "/v1/eval-jobs", { body: { adapter: t.adapter, data: t.dataFile } });
    const j = await waitStatus(s.base, String(r.json.id), "failed");
    assertEq(j.error, "boom ***");
  });
  await withServer({ runner: fakeRunner({ delayMs: 5000 }), jobTimeoutS: 0.2 }, async (s, t) => {
    const r = await api(s.base, "POST", "/v1/eval-jobs", { body: { adapter: t.adapter, data: t.dataFile } });
    const j = await waitStatus(s.base, String(r.json.id), "failed");
    assert(String(j.error).includes("timed out"), String(j.error));
  });
});

Deno.test("DELETE cancels queued and running jobs; 409 once finished", async () => {
  const gate = new Gate();
  await withServer({ runner: fakeRunner({ gate }) }, async (s, t) => {
    const body = { adapter: t.adapter, data: t.dataFile };
    const a = String((await api(s.base, "POST", "/v1/eval-jobs", { body })).json.id);
    const b = String((await api(s.base, "POST", "/v1/eval-jobs", { body })).json.id);
    await waitStatus(s.base, a, "running");
    const cb = await api(s.base, "DELETE", `/v1/eval-jobs/${b}`);
    assertEq([cb.status, cb.json.status], [200, "cancelled"]);
    const ca = await api(s.base, "DELETE", `/v1/eval-jobs/${a}`);
    assertEq([ca.status, ca.json.status], [200, "cancelled"]);
    assertEq((await api(s.base, "DELETE", `/v1/eval-jobs/${a}`)).status, 409);
    const c = String((await api(s.base, "POST", "/v1/eval-jobs", { body })).json.id);
    await waitStatus(s.base, c, "running");
    gate.open();
    await waitStatus(s.base, c, "succeeded");
  });
});

Deno.test("GET /v1/eval-jobs pages newest first", async () => {
  await withServer({ queueSize: 50 }, async (s, t) => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push(
        String(
          (await api(s.base, "POST", "/v1/eval-jobs", { body: { adapter: t.adapter, data: t.dataFile } }))
            .json.id,
        ),
      );
    }
    await waitFor(() => s.server.store.count("succeeded") === 7, "all done");
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const q: string = `/v1/eval-jobs?limit=3${cursor ? `&cursor=${cursor}` : ""}`;
      const r = await api(s.base, "GET", q);
      assertEq(r.status, 200);
      const jobs = r.json.jobs as { id: string; status: string }[];
      assert(jobs.length <= 3, "page size");
      seen.push(...jobs.map((j) => j.id));
      cursor = r.json.next_cursor as string | null;
      if (!cursor) break;
    }
    assertEq(seen, [...ids].reverse());
    const ok = await api(s.base, "GET", "/v1/eval-jobs?status=succeeded&limit=100");
    assertEq((ok.json.jobs as unknown[]).length, 7);
  });
});

Deno.test("callback delivered with a valid signature, retried after failures", async () => {
  const received: { sig: string | null; body: string; path: string }[] = [];
  let failFirst = 2;
  const ac = new AbortController();
  const receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (req) => {
      const body = await req.text();
      if (failFirst-- > 0) return new Response("busy", { status: 503 });
      const u = new URL(req.url);
      received.push({ sig: req.headers.get("x-maieutic-signature"), body, path: u.pathname + u.search });
      return new Response(null, { status: 204 });
    },
  );
  const cbUrl = `http://127.0.0.1:${receiver.addr.port}/hook?src=test`;
  try {
    await withServer({ signingSecret: SECRET, allowLoopbackCallbacks: true }, async (s, t) => {
      const r = await api(s.base, "POST", "/v1/eval-jobs", {
        body: { adapter: t.adapter, data: t.dataFile, callback_url: cbUrl },
      });
      assertEq(r.status, 202);
      const id = String(r.json.id);
      await waitFor(() => received.length === 1, "callback");
      const got = received[0];
      const v = await verify(SECRET, got.sig, { method: "POST", path: got.path, body: got.body });
      assert(v.ok, `signature: ${JSON.stringify(v)}`);
      assert(
        !(await verify("other", got.sig, { method: "POST", path: got.path, body: got.body })).ok,
        "other secret",
      );
      const payload = JSON.parse(got.body);
      assertEq([payload.id, payload.status], [id, "succeeded"]);
      assertEq(payload.report.eval_tokens, 42);
      const j = await waitFor(async () => {
        const g = await api(s.base, "GET", `/v1/eval-jobs/${id}`);
        return (g.json.callback as { state: string }).state === "delivered" ? g.json : undefined;
      }, "delivered state");
      assertEq((j.callback as { attempts: number }).attempts, 3);
    });
  } finally {
    ac.abort();
    await receiver.finished;
  }
});

Deno.test("the token and the signing secret never reach logs or job files", async () => {
  await withServer({ signingSecret: SECRET }, async (s, t) => {
    await api(s.base, "POST", "/v1/eval-jobs", { body: { adapter: t.adapter, data: t.dataFile } });
    await api(s.base, "POST", "/v1/eval-jobs", { body: { adapter: t.adapter, data: "../x" } });
    await api(s.base, "GET", "/v1/eval-jobs", { token: "wrong-0123456789abcdef" });
    await api(s.base, "GET", "/v1/eval-jobs", { sign: { secret: SECRET } });
    await waitFor(() => s.server.store.count("succeeded") === 1, "job done");
    await s.server.store.flush();
    assert(s.logs.length > 3, "logged something");
    let files = "";
    for await (const e of Deno.readDir(t.jobs)) files += await Deno.readTextFile(join(t.jobs, e.name));
    for (const text of [s.logs.join("\n"), files]) {
      assert(!text.includes(TOKEN) && !text.includes(SECRET), "secret leaked");
      assert(!text.includes("wrong-0123456789abcdef"), "a presented token leaked");
    }
  });
});

Deno.test("server refuses to start without a token unless --insecure-localhost on 127.0.0.1", async () => {
  const tree = await makeTree();
  try {
    const base = {
      dataRoots: [tree.data],
      adapterRoot: tree.models,
      jobsDir: tree.jobs,
      runner: fakeRunner(),
    };
    const { EvalServer } = await import("../../src/serve/server.ts");
    let threw = false;
    try {
      await EvalServer.create({ ...base, hostname: "127.0.0.1" });
    } catch (e) {
      threw = String(e).includes("MAIEUTIC_EVAL_TOKEN");
    }
    assert(threw, "no token must refuse");
    threw = false;
    try {
      await EvalServer.create({ ...base, hostname: "0.0.0.0", insecureLocalhost: true });
    } catch {
      threw = true;
    }
    assert(threw, "insecure on 0.0.0.0 must refuse");
    const s = await startTestServer(tree, { token: undefined, insecureLocalhost: true });
    try {
      assertEq((await api(s.base, "GET", "/v1/eval-jobs", { token: null })).status, 200);
    } finally {
      await s.close();
    }
  } finally {
    await tree.cleanup();
  }
});
