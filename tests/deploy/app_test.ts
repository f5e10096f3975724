// deploy/ against a real `maieutic serve` (in-process, fake runner) on 127.0.0.1, Deno KV in memory.
// Needs --unstable-kv (or "kv" in deno.json's "unstable" list).
import { fileURLToPath } from "node:url";
import { createApp, type DeployEnv, envFrom, type JobEntry } from "../../deploy/app.ts";
import { sign } from "../../src/serve/sign.ts";
import {
  api,
  assert,
  assertEq,
  fakeRunner,
  makeTree,
  SECRET,
  startTestServer,
  TOKEN,
  waitFor,
} from "../serve/helpers.ts";

const TRIGGER = "trigger-token-0123456789";

interface Rig {
  vm: Awaited<ReturnType<typeof startTestServer>>;
  kv: Deno.Kv;
  app: ReturnType<typeof createApp>;
  base: string;
  env: DeployEnv;
}

async function withRig(fn: (r: Rig) => Promise<void>, over: Partial<DeployEnv> = {}): Promise<void> {
  const tree = await makeTree();
  const vm = await startTestServer(tree, {
    signingSecret: SECRET,
    requireSignature: true, // Deploy always signs
    allowLoopbackCallbacks: true,
    runner: fakeRunner({
      delayMs: 20,
      report: { eval_loss: 0.75, eval_perplexity: 2.117, eval_tokens: 99, eval_samples: 4 },
    }),
  });
  const kv = await Deno.openKv(":memory:");
  const ac = new AbortController();
  const late: { app?: ReturnType<typeof createApp> } = {}; // the app needs the port it is served on
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => late.app!.handler(req),
  );
  const base = `http://127.0.0.1:${http.addr.port}`;
  const env: DeployEnv = {
    ...envFrom(() => undefined),
    vmUrl: vm.base,
    token: TOKEN,
    signingSecret: SECRET,
    callbackUrl: `${base}/callback`,
    triggerToken: TRIGGER,
    adapter: tree.adapter,
    data: tree.dataFile,
    ...over,
  };
  const app = (late.app = createApp(env, kv));
  try {
    await fn({ vm, kv, app, base, env });
  } finally {
    ac.abort();
    await http.finished;
    await vm.close();
    kv.close();
    await tree.cleanup();
  }
}

async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = TRIGGER,
) {
  const res = await fetch(base + path, {
    method,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : {} };
}

Deno.test("deploy: POST /trigger -> VM runs the job -> signed callback -> KV round trip", async () => {
  await withRig(async ({ base, kv, vm }) => {
    const t = await call(base, "POST", "/trigger", { generate: true, max_samples: 4 });
    assertEq(t.status, 202, JSON.stringify(t.json));
    const id = t.json.id as string;
    const stored = await waitFor(async () => {
      const e = (await kv.get<JobEntry>(["jobs", id])).value;
      return e?.status === "succeeded" ? e : undefined;
    }, "result in KV");
    assertEq(stored.via, "callback");
    assertEq(stored.source, "request");
    assertEq(stored.report, { eval_loss: 0.75, eval_perplexity: 2.117, eval_tokens: 99, eval_samples: 4 });
    assertEq(stored.request.generate, true);
    assertEq(stored.request.max_samples, 4);
    assertEq((await kv.get(["latest_succeeded"])).value, id);
    // The VM saw a signed request and a delivered callback.
    const j = await api(vm.base, "GET", `/v1/eval-jobs/${id}`, { sign: { secret: SECRET } });
    assertEq((j.json.callback as { state: string }).state, "delivered");
    assertEq(j.json.request, {
      adapter: "run1/model/checkpoint-10",
      data: "d.json",
      generate: true,
      max_samples: 4,
      callback_url: `${base}/callback`,
    });
    // And the results endpoints show it.
    const one = await call(base, "GET", `/results/${id}`);
    assertEq([one.status, one.json.status], [200, "succeeded"]);
    const list = await call(base, "GET", "/results");
    assertEq(list.json.jobs.map((x: JobEntry) => x.id), [id]);
  });
});

Deno.test("deploy: the cron's work (scheduled) triggers the configured job and stores its result", async () => {
  await withRig(async ({ app, kv }) => {
    await app.scheduled();
    const ids: string[] = [];
    for await (const e of kv.list<string>({ prefix: ["jobs_by_time"] })) ids.push(e.value);
    assertEq(ids.length, 1);
    const e = await waitFor(async () => {
      const v = (await kv.get<JobEntry>(["jobs", ids[0]])).value;
      return v?.status === "succeeded" ? v : undefined;
    }, "scheduled result");
    assertEq(e.source, "cron");
  });
});

Deno.test("deploy: lost callback -> syncPending polls the VM and stores the result", async () => {
  await withRig(async ({ app, kv, vm }) => {
    const { id } = await app.trigger({}, "request");
    await waitFor(() => vm.server.store.get(id)?.status === "succeeded", "VM done");
    assertEq((await kv.get<JobEntry>(["jobs", id])).value?.status, "queued");
    assertEq(await app.syncPending(), 1);
    const e = (await kv.get<JobEntry>(["jobs", id])).value!;
    assertEq([e.status, e.via, e.report?.eval_tokens], ["succeeded", "poll", 99]);
    assertEq(await app.syncPending(), 0);
  }, { callbackUrl: undefined });
});

Deno.test("deploy: callbacks with a bad or stale signature -> 401 and nothing stored; trigger needs its token", async () => {
  await withRig(async ({ base, kv }) => {
    const payload = JSON.stringify({
      id: crypto.randomUUID(),
      status: "succeeded",
      report: { eval_loss: 0 },
    });
    const post = async (sig: string | null) => (await fetch(`${base}/callback`, {
      method: "POST",
      headers: sig ? { "x-maieutic-signature": sig } : {},
      body: payload,
    }).then(async (r) => (await r.body?.cancel(), r.status)));
    assertEq(await post(null), 401);
    assertEq(
      await post(await sign("wrong-secret", { method: "POST", path: "/callback", body: payload })),
      401,
    );
    const old = Math.floor(Date.now() / 1000) - 600;
    assertEq(
      await post(await sign(SECRET, { method: "POST", path: "/callback", body: payload, timestamp: old })),
      401,
    );
    assertEq(await post(await sign(SECRET, { method: "POST", path: "/other", body: payload })), 401);
    let n = 0;
    for await (const _ of kv.list({ prefix: [] })) n++;
    assertEq(n, 0, "KV untouched:");
    assertEq(await post(await sign(SECRET, { method: "POST", path: "/callback", body: payload })), 204);
    assertEq((await call(base, "POST", "/trigger", {}, null)).status, 401);
    assertEq((await call(base, "POST", "/trigger", {}, "wrong")).status, 401);
    assertEq((await call(base, "GET", "/results", undefined, null)).status, 401);
  });
});

Deno.test("deploy: VM refusals pass through (bad path -> 400), misconfiguration -> 502", async () => {
  await withRig(async ({ base }) => {
    const r = await call(base, "POST", "/trigger", { data: "../../etc/passwd" });
    assertEq(r.status, 400);
    assert(String(r.json.error).includes("outside"), r.json.error);
  });
  await withRig(async ({ base }) => {
    const r = await call(base, "POST", "/trigger", {});
    assertEq(r.status, 502); // the VM answers 401 to a wrong token
    assert(!JSON.stringify(r.json).includes("wrong-token"), "token not echoed");
  }, { token: "wrong-token-0123456789abcdef" });
});

Deno.test("deploy/main.ts starts (Deno.cron registered at top level, KV, serve) and answers", async () => {
  const main = fileURLToPath(new URL("../../deploy/main.ts", import.meta.url));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", "--unstable-cron", main],
    env: {
      PORT: "0",
      MAIEUTIC_KV_PATH: ":memory:",
      MAIEUTIC_VM_URL: "http://127.0.0.1:9",
      MAIEUTIC_SIGNING_SECRET: SECRET,
      MAIEUTIC_EVAL_TOKEN: TOKEN,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    const deadline = Date.now() + 20_000;
    while (!/listening on (http:\/\/\S+)/.test(out) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    reader.releaseLock();
    const url = out.match(/listening on (http:\/\/\S+)/)?.[1];
    assert(url, `no listen line: ${out}`);
    const res = await fetch(url);
    const body = await res.json();
    assertEq([res.status, body.schedule], [200, "0 3 * * *"]);
    assertEq(
      await fetch(`${url}/trigger`, { method: "POST" }).then(async (r) => (await r.body?.cancel(), r.status)),
      404,
    );
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel().catch(() => {});
  }
});
