// The eval API under attack (issue #18), over real HTTP on 127.0.0.1. Every callback target here is a loopback
// listener this file starts; names are resolved by a stand-in resolver, never by DNS.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_CONNECTION_LIMITS } from "../../src/serve/http1.ts";
import type { EvalJob } from "../../src/serve/schema.ts";
import { sign, verify } from "../../src/serve/sign.ts";
import {
  alive,
  api,
  assert,
  assertEq,
  fakeRunner,
  Gate,
  makeTree,
  SECRET,
  TOKEN,
  waitFor,
  waitStatus,
  withServer,
} from "./helpers.ts";

const enc = new TextEncoder();

/** Resolves with the ms until the server closed `conn` (EOF or reset), or Infinity after `limitMs`. */
async function closedWithin(conn: Deno.Conn, limitMs: number): Promise<number> {
  const t0 = Date.now();
  const buf = new Uint8Array(4096);
  const read = (async () => {
    try {
      while ((await conn.read(buf)) !== null) { /* a response, then EOF */ }
    } catch { /* reset */ }
    return Date.now() - t0;
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const r = await Promise.race([
    read,
    new Promise<number>((r) => (timer = setTimeout(() => r(Infinity), limitMs))),
  ]);
  clearTimeout(timer);
  return r;
}

/** A raw HTTP/1.1 exchange: writes `head` (+ body) and reads the response until the server closes. */
async function raw(port: number, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(enc.encode(text));
    let out = "";
    const buf = new Uint8Array(65536);
    const end = Date.now() + 5000;
    while (Date.now() < end) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      out += new TextDecoder().decode(buf.subarray(0, n));
      if (/\r\n\r\n/.test(out) && /content-length: 0\r\n|\}\n$/i.test(out)) break;
    }
    return out;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

function portOf(base: string): number {
  return Number(new URL(base).port);
}

Deno.test("slow clients are cut at the deadlines while /healthz keeps answering; connections are capped", async () => {
  await withServer({ connection: { headerTimeoutMs: 1500, bodyTimeoutMs: 2000 } }, async (s, t) => {
    const port = portOf(s.base);
    const conns: Deno.Conn[] = [];
    const writers: Promise<void>[] = [];
    // 20 clients that send half a request line (no token needed for that).
    for (let i = 0; i < 20; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      await c.write(enc.encode("POST /v1/eval-jobs HT"));
      conns.push(c);
    }
    // 20 authenticated clients whose chunked body never ends.
    const body = JSON.stringify({ adapter: t.adapter, data: t.dataFile });
    for (let i = 0; i < 20; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      await c.write(enc.encode(
        `POST /v1/eval-jobs HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TOKEN}\r\n` +
          `content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`,
      ));
      conns.push(c);
      writers.push((async () => {
        for (let k = 0; k < 200; k++) {
          try {
            await c.write(enc.encode(`1\r\n${body[k % body.length]}\r\n`));
          } catch {
            return;
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      })());
    }
    const t0 = performance.now();
    const h = await api(s.base, "GET", "/healthz", { token: null });
    assertEq(h.status, 200);
    assert(performance.now() - t0 < 1000, "healthz answered promptly");
    const times = await Promise.all(conns.map((c) => closedWithin(c, 8000)));
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await Promise.all(writers);
    assert(times.every((ms) => ms < 6000), `every slow client cut within the deadline: ${times.join(",")}`);
    // The same deadlines by default bound a slow client to 45 s (issue #18).
    const d = DEFAULT_CONNECTION_LIMITS;
    assert(d.headerTimeoutMs + d.bodyTimeoutMs <= 45_000, "default deadlines within 45 s");
    assertEq(s.server.store.size(), 0, "no trickled body made a job");
    assertEq((await api(s.base, "GET", "/healthz", { token: null })).status, 200);
  });

  await withServer({ connection: { maxConnections: 4, headerTimeoutMs: 20_000 } }, async (s) => {
    const port = portOf(s.base);
    const idle = await Promise.all([0, 1, 2, 3].map(() => Deno.connect({ hostname: "127.0.0.1", port })));
    await new Promise((r) => setTimeout(r, 100));
    // The fifth is answered 503 at once and closed, not queued behind the idle ones.
    const over = await raw(port, "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    assert(over.startsWith("HTTP/1.1 503"), over);
    for (const c of idle) c.close();
    await waitFor(
      async () => (await api(s.base, "GET", "/healthz", { token: null })).status === 200,
      "freed",
    );
  });
});

Deno.test("HTTP/1.1 framing: ambiguous lengths, oversized heads and bad request lines are refused", async () => {
  await withServer({}, async (s) => {
    const port = portOf(s.base);
    const smuggle = await raw(
      port,
      "POST /v1/eval-jobs HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert(smuggle.startsWith("HTTP/1.1 400"), smuggle);
    const big = await raw(port, `GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: ${"a".repeat(40_000)}\r\n\r\n`);
    assert(big.startsWith("HTTP/1.1 431"), big.slice(0, 80));
    const line = await raw(port, "GET http://evil.example/ HTTP/1.1\r\nhost: x\r\n\r\n");
    assert(line.startsWith("HTTP/1.1 400"), line);
    const ok = await raw(port, "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert(ok.startsWith("HTTP/1.1 200"), ok);
  });
});

Deno.test("callback names that mean loopback or embed it are refused at submission", async () => {
  const gate = new Gate();
  await withServer({ signingSecret: SECRET, runner: fakeRunner({ gate }) }, async (s, t) => {
    // The server is never let run these jobs: the gate stays shut and close() requeues, so no callback is sent.
    for (
      const url of [
        "https://localhost./cb",
        "https://a.localhost/cb",
        "https://[::127.0.0.1]/cb",
        "https://[64:ff9b::7f00:1]/cb",
        "https://[::ffff:7f00:1]/cb",
        "https://0x7f.1/cb",
        "https://2130706433/cb",
      ]
    ) {
      const r = await api(s.base, "POST", "/v1/eval-jobs", {
        body: { adapter: t.adapter, data: t.dataFile, callback_url: url },
      });
      assertEq([r.status, r.json.field], [400, "callback_url"], `${url}:`);
    }
  });
});

/** A loopback listener of this test that records what it receives. */
function listener() {
  const got: { host: string | null; sig: string | null; path: string; body: string }[] = [];
  const ac = new AbortController();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (req) => {
      const u = new URL(req.url);
      got.push({
        host: req.headers.get("host"),
        sig: req.headers.get("x-maieutic-signature"),
        path: u.pathname,
        body: await req.text(),
      });
      return new Response(null, { status: 204 });
    },
  );
  return { got, port: http.addr.port, close: async () => (ac.abort(), await http.finished) };
}

Deno.test("callbacks: every resolved address is checked at send time and the checked address is the one connected to", async () => {
  const l = listener();
  const resolved: string[] = [];
  try {
    await withServer({
      signingSecret: SECRET,
      allowLoopbackCallbacks: true, // test-only: loopback listeners of this test
      resolveHost: (host: string) => {
        resolved.push(host);
        // "rebind.test" resolves to loopback at first and to a private address afterwards.
        if (host === "cb.test") return Promise.resolve(["127.0.0.1"]);
        if (host === "mixed.test") return Promise.resolve(["127.0.0.1", "10.0.0.7"]);
        return Promise.resolve([]);
      },
    }, async (s, t) => {
      const post = (url: string) =>
        api(s.base, "POST", "/v1/eval-jobs", {
          body: { adapter: t.adapter, data: t.dataFile, callback_url: url },
        });
      const a = await post(`http://cb.test:${l.port}/hook?x=1`);
      assertEq(a.status, 202, JSON.stringify(a.json));
      const b = await post(`http://mixed.test:${l.port}/other`);
      assertEq(b.status, 202, JSON.stringify(b.json));
      await waitFor(
        () => s.server.store.get(String(a.json.id))?.callback?.state === "delivered",
        "delivered",
      );
      const failed = await waitFor(() => {
        const c = s.server.store.get(String(b.json.id))?.callback;
        return c?.state === "failed" ? c : undefined;
      }, "refused callback");
      assert(/10\.0\.0\.7/.test(failed.last_error ?? ""), String(failed.last_error));
      assertEq(l.got.length, 1, "only the checked destination was contacted");
      assertEq([l.got[0].path, l.got[0].host], ["/hook", `cb.test:${l.port}`]);
      const v = await verify(SECRET, l.got[0].sig, {
        method: "POST",
        path: "/hook?x=1",
        body: l.got[0].body,
      });
      assert(v.ok, "signed");
      assert(resolved.includes("mixed.test"), "resolved at send time");
    });
  } finally {
    await l.close();
  }
});

Deno.test("job count and report size are bounded (429 when full); finished jobs and their eval files are pruned periodically", async () => {
  await withServer({ maxJobs: 3, runner: fakeRunner({ gate: new Gate() }) }, async (s, t) => {
    const body = { adapter: t.adapter, data: t.dataFile };
    for (let i = 0; i < 3; i++) {
      const r = await api(s.base, "POST", "/v1/eval-jobs", { body });
      assertEq(r.status, 202);
      assertEq((await api(s.base, "DELETE", `/v1/eval-jobs/${r.json.id}`)).json.status, "cancelled");
    }
    const full = await api(s.base, "POST", "/v1/eval-jobs", { body });
    assertEq(full.status, 429, "cancelled jobs count too:");
    assert(full.headers.get("retry-after"), "Retry-After");
  });

  const tree = await makeTree();
  const evalsDir = join(tree.models, "run1", "evals");
  await Deno.mkdir(evalsDir, { recursive: true });
  const manual = join(evalsDir, "manual.json"); // written by a person's own `maieutic eval`: never touched
  await Deno.writeTextFile(manual, "{}");
  let n = 0;
  const runner = async (job: EvalJob) => {
    const path = join(evalsDir, `job-${n++}.json`);
    await Deno.writeTextFile(path, "{}");
    return { eval_loss: 1, report_path: path, samples: "x".repeat(100_000), job: job.id };
  };
  await withServer(
    { runner, maxReportBytes: 4096, keepDays: 0.5 / 86_400, pruneIntervalMs: 100 },
    async (s, t) => {
      const r = await api(s.base, "POST", "/v1/eval-jobs", {
        body: { adapter: t.adapter, data: t.dataFile },
      });
      const done = await waitStatus(s.base, String(r.json.id), "succeeded");
      const report = done.report as Record<string, unknown>;
      assertEq(report.eval_loss, 1, "scalars kept:");
      assert(JSON.stringify(report).length <= 4096, `report capped: ${JSON.stringify(report).length}`);
      assert(report.truncated, "marked truncated");
      const file = join(tree.jobs, `${r.json.id}.json`);
      assert((await Deno.stat(file)).size < 16_384, "job file small");
      // No restart: the periodic prune removes the job and the eval files it wrote.
      await waitFor(
        async () => (await api(s.base, "GET", `/v1/eval-jobs/${r.json.id}`)).status === 404,
        "pruned",
      );
      await waitFor(() => Deno.stat(file).then(() => false, () => true), "job file gone");
      await waitFor(
        () => Deno.stat(join(evalsDir, "job-0.json")).then(() => false, () => true),
        "eval file gone",
      );
      assert(await Deno.stat(manual).then(() => true, () => false), "a manual eval report is kept");
    },
    tree,
  );
  await tree.cleanup();
});

Deno.test("an eval child left by a crash before its pid was saved is found and killed before the retry", async () => {
  const tree = await makeTree();
  const id = crypto.randomUUID();
  await Deno.mkdir(tree.jobs, { recursive: true });
  const job: EvalJob = {
    id,
    seq: 0,
    status: "running",
    request: { adapter: tree.adapter, data: tree.dataFile },
    resolved: { adapter: join(tree.models, tree.adapter), data: join(tree.data, tree.dataFile) },
    attempts: 1,
    created_at: new Date().toISOString(),
    started_at: new Date().toISOString(),
    timings: {},
    events: [],
  };
  await Deno.writeTextFile(join(tree.jobs, `${id}.json`), JSON.stringify(job));
  // The orphan: an eval child of the crashed server, its pid never written.
  const orphan = new Deno.Command("sleep", { args: ["30"], env: { MAIEUTIC_JOB_ID: id } }).spawn();
  const aliveAtRetry: boolean[] = [];
  try {
    assert(alive(orphan.pid), "orphan running");
    await withServer({
      runner: (j) => {
        aliveAtRetry.push(alive(orphan.pid));
        return Promise.resolve({ eval_loss: 1, job: j.id });
      },
    }, async (s) => {
      await waitStatus(s.base, id, "succeeded");
      assertEq(aliveAtRetry, [false], "the retry ran once, after the orphan was gone:");
    }, tree);
  } finally {
    try {
      orphan.kill("SIGKILL");
    } catch { /* already dead */ }
    await orphan.status;
    await tree.cleanup();
  }
});

Deno.test("the eval child dies with a SIGKILLed server", async () => {
  const tree = await makeTree();
  const script = fileURLToPath(new URL("./fixtures/server_main.ts", import.meta.url));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
    env: {
      JOBS_DIR: tree.jobs,
      DATA_ROOT: tree.data,
      ADAPTER_ROOT: tree.models,
      FAKE_EVAL_MODE: "sleep",
      FAKE_EVAL_SLEEP_MS: "20000",
      MAIEUTIC_EVAL_TOKEN: TOKEN,
    },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!/LISTENING (\d+)/.test(out)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`server exited: ${out}`);
      out += value;
    }
    reader.releaseLock();
    child.stdout.cancel().catch(() => {});
    const base = `http://127.0.0.1:${out.match(/LISTENING (\d+)/)![1]}`;
    const r = await api(base, "POST", "/v1/eval-jobs", {
      body: { adapter: tree.adapter, data: tree.dataFile },
    });
    await waitStatus(base, String(r.json.id), "running");
    const pid = await waitFor(async () => {
      const j = JSON.parse(await Deno.readTextFile(join(tree.jobs, `${r.json.id}.json`)));
      return j.pid as number | undefined;
    }, "pid recorded");
    await waitFor(() => alive(pid), "eval child running");
    child.kill("SIGKILL");
    await child.status;
    await waitFor(() => !alive(pid), "eval child gone with its parent", 5000);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    await tree.cleanup();
  }
});

Deno.test("Idempotency-Key: a retried submission returns the first job, across restarts; another body with the key is 422", async () => {
  const tree = await makeTree();
  const body = { adapter: tree.adapter, data: tree.dataFile };
  const headers = { "idempotency-key": "cron-2026-12-07T03:00Z" };
  let id = "";
  await withServer({ runner: fakeRunner({ gate: new Gate() }) }, async (s) => {
    const a = await api(s.base, "POST", "/v1/eval-jobs", { body, headers });
    const b = await api(s.base, "POST", "/v1/eval-jobs", { body, headers });
    assertEq(a.status, 202);
    assertEq([b.status, b.json.id], [200, a.json.id]);
    assertEq(s.server.store.size(), 1);
    const c = await api(s.base, "POST", "/v1/eval-jobs", { body: { ...body, max_samples: 2 }, headers });
    assertEq(c.status, 422);
    id = String(a.json.id);
  }, tree);
  await withServer({ runner: fakeRunner({ gate: new Gate() }) }, async (s) => {
    const again = await api(s.base, "POST", "/v1/eval-jobs", { body, headers });
    assertEq([again.status, again.json.id], [200, id]);
    assertEq(s.server.store.size(), 1);
  }, tree);
  await tree.cleanup();
});

Deno.test("a signed request replayed after a restart is refused", async () => {
  const tree = await makeTree();
  const body = JSON.stringify({ adapter: tree.adapter, data: tree.dataFile });
  const signature = await sign(SECRET, { method: "POST", path: "/v1/eval-jobs", body });
  const send = (base: string) =>
    api(base, "POST", "/v1/eval-jobs", { rawBody: body, headers: { "x-maieutic-signature": signature } });
  await withServer({ signingSecret: SECRET }, async (s) => {
    assertEq((await send(s.base)).status, 202);
    assertEq((await send(s.base)).status, 401);
  }, tree);
  await withServer({ signingSecret: SECRET }, async (s) => {
    const r = await send(s.base);
    assertEq([r.status, r.json.error], [401, "replayed X-Maieutic-Signature"]);
    assertEq(s.server.store.size(), 1);
  }, tree);
  await tree.cleanup();
});

Deno.test("--insecure-localhost: cross-site requests (content type, Origin, Host) are refused", async () => {
  await withServer({ token: undefined, insecureLocalhost: true }, async (s, t) => {
    const port = portOf(s.base);
    const body = JSON.stringify({ adapter: t.adapter, data: t.dataFile });
    const post = (headers: string) =>
      raw(
        port,
        `POST /v1/eval-jobs HTTP/1.1\r\n${headers}content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
    const text = await post(`host: 127.0.0.1:${port}\r\ncontent-type: text/plain\r\n`);
    assert(text.startsWith("HTTP/1.1 415"), text);
    const form = await post(`host: 127.0.0.1:${port}\r\ncontent-type: application/x-www-form-urlencoded\r\n`);
    assert(form.startsWith("HTTP/1.1 415"), form);
    const origin = await post(
      `host: 127.0.0.1:${port}\r\ncontent-type: application/json\r\norigin: https://evil.example\r\n`,
    );
    assert(origin.startsWith("HTTP/1.1 403"), origin);
    const rebound = await post(`host: evil.example:${port}\r\ncontent-type: application/json\r\n`);
    assert(rebound.startsWith("HTTP/1.1 403"), rebound);
    const getRebound = await raw(
      port,
      `GET /v1/eval-jobs HTTP/1.1\r\nhost: evil.example\r\nconnection: close\r\n\r\n`,
    );
    assert(getRebound.startsWith("HTTP/1.1 403"), getRebound);
    assertEq(s.server.store.size(), 0);
    const ok = await post(`host: 127.0.0.1:${port}\r\ncontent-type: application/json\r\n`);
    assert(ok.startsWith("HTTP/1.1 202"), ok);
    const same = await post(
      `host: localhost:${port}\r\ncontent-type: application/json; charset=utf-8\r\norigin: http://localhost:${port}\r\n`,
    );
    assert(same.startsWith("HTTP/1.1 202"), same);
  });
});

Deno.test("reports, errors and callback payloads carry relative paths only; the HF token is redacted", async () => {
  const hf = "hf_TESTTOKEN0123456789abcdefghij";
  Deno.env.set("HUGGINGFACE_API_KEY", hf);
  const l = listener();
  try {
    await withServer({
      signingSecret: SECRET,
      allowLoopbackCallbacks: true,
      runner: (job) => {
        if (job.request.max_samples === 1) {
          return Promise.reject(
            new Error(`eval failed on ${job.resolved.data} with token ${hf} in /home/u/.env`),
          );
        }
        return Promise.resolve({
          eval_loss: 1,
          adapter: { path: job.resolved.adapter },
          data: { path: job.resolved.data, file: "d.json" },
          config: { data: job.resolved.data, output_dir: Deno.cwd() + "/models" },
          report_path: job.resolved.adapter + "/../evals/x.json",
          note: `token ${hf}`,
        });
      },
    }, async (s, t) => {
      const cb = `http://127.0.0.1:${l.port}/cb`;
      const ok = await api(s.base, "POST", "/v1/eval-jobs", {
        body: { adapter: t.adapter, data: t.dataFile, callback_url: cb },
      });
      const bad = await api(s.base, "POST", "/v1/eval-jobs", {
        body: { adapter: t.adapter, data: t.dataFile, max_samples: 1, callback_url: cb },
      });
      const a = await waitStatus(s.base, String(ok.json.id), "succeeded");
      const b = await waitStatus(s.base, String(bad.json.id), "failed");
      await waitFor(() => l.got.length === 2, "two callbacks");
      const report = a.report as Record<string, Record<string, unknown>>;
      assertEq(report.adapter.path, t.adapter);
      assertEq(report.data.path, t.dataFile);
      assertEq(report.config.data, t.dataFile);
      assertEq(report.report_path as unknown, "run1/model/evals/x.json");
      const everything = JSON.stringify([a, b, l.got.map((g) => g.body)]);
      assert(!s.logs.join("\n").includes(hf), "HF token not logged");
      for (const secret of [t.root, Deno.cwd(), "/home/u", hf]) {
        assert(!everything.includes(secret), `${secret} leaked: ${everything.slice(0, 2000)}`);
      }
      assert(String(b.error).includes("d.json"), String(b.error));
    });
  } finally {
    Deno.env.delete("HUGGINGFACE_API_KEY");
    await l.close();
  }
});

Deno.test("/healthz tells an unauthenticated caller only that the server is up", async () => {
  await withServer(
    { adapterInfo: { vendor: "NVIDIA", description: "H100" }, model: "google/gemma-2-2b" },
    async (s) => {
      const anon = await api(s.base, "GET", "/healthz", { token: null });
      assertEq([anon.status, anon.json], [200, { status: "ok" }]);
      const wrong = await api(s.base, "GET", "/healthz", { token: "wrong-token-0123456789abcdef" });
      assertEq(wrong.json, { status: "ok" });
      const authed = await api(s.base, "GET", "/healthz");
      assertEq([authed.json.model, (authed.json.adapter as { vendor: string }).vendor], [
        "google/gemma-2-2b",
        "NVIDIA",
      ]);
    },
  );
});

Deno.test("https callbacks: TLS is started on the checked address and verified against the URL's name", async () => {
  const cert = await Deno.readTextFile(new URL("./fixtures/cb_test.crt", import.meta.url));
  const key = await Deno.readTextFile(new URL("./fixtures/cb_test.key", import.meta.url));
  const got: string[] = [];
  const ac = new AbortController();
  // A loopback TLS listener of this test, with a test certificate for "cb.test" only.
  const tls = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, signal: ac.signal, onListen: () => {} },
    async (req) => {
      got.push(`${req.headers.get("host")} ${new URL(req.url).pathname} ${(await req.text()).length > 0}`);
      return new Response(null, { status: 204 });
    },
  );
  const port = tls.addr.port;
  try {
    await withServer({
      signingSecret: SECRET,
      allowLoopbackCallbacks: true,
      resolveHost: (h: string) => Promise.resolve(h === "cb.test" || h === "other.test" ? ["127.0.0.1"] : []),
      callback: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20, timeoutMs: 2000, caCerts: [cert] },
    }, async (s, t) => {
      const post = (url: string) =>
        api(s.base, "POST", "/v1/eval-jobs", {
          body: { adapter: t.adapter, data: t.dataFile, callback_url: url },
        });
      const good = await post(`https://cb.test:${port}/hook`);
      const wrongName = await post(`https://other.test:${port}/hook`);
      await waitFor(
        () => s.server.store.get(String(good.json.id))?.callback?.state === "delivered",
        "delivered",
      );
      const c = await waitFor(() => {
        const cb = s.server.store.get(String(wrongName.json.id))?.callback;
        return cb?.state === "failed" ? cb : undefined;
      }, "refused by certificate check");
      assert(
        c.last_error && !/HTTP \d/.test(c.last_error),
        `a TLS error, not an HTTP answer: ${c.last_error}`,
      );
      assertEq(got, [`cb.test:${port} /hook true`]);
    });
  } finally {
    ac.abort();
    await tls.finished;
  }
});
