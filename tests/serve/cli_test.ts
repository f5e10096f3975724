// `maieutic serve` as a user starts it: flags, the token rule, SIGTERM, and a job through the real runner
// into the real `main.ts eval` subprocess.
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { api, assert, assertEq, makeTree, TOKEN, waitFor } from "./helpers.ts";

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));

function spawn(args: string[], env: Record<string, string>, cwd: string) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "serve", ...args],
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", ...env },
    clearEnv: true,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test("serve CLI: refuses to start without a token (exit 2); --insecure-localhost only on 127.0.0.1", async () => {
  const tree = await makeTree();
  try {
    for (const args of [[], ["--insecure-localhost", "--hostname", "0.0.0.0"]]) {
      const r = await spawn(["--port", "0", ...args], {}, tree.root).output();
      assertEq(r.code, 2, args.join(" "));
      assert(new TextDecoder().decode(r.stderr).includes("MAIEUTIC_EVAL_TOKEN"), "names the variable");
    }
    const bad = await spawn(["--queue-size", "0"], { MAIEUTIC_EVAL_TOKEN: TOKEN }, tree.root).output();
    assertEq(bad.code, 2);
  } finally {
    await tree.cleanup();
  }
});

Deno.test("serve CLI: listens, answers, runs a job through `main.ts eval`, stops on SIGTERM; token never printed", async () => {
  const tree = await makeTree();
  const child = spawn(
    [
      "--port",
      "0",
      "--data-root",
      "data",
      "--adapter-root",
      "models",
      "--jobs-dir",
      "models/_jobs",
      "--model",
      "tiny",
    ],
    { MAIEUTIC_EVAL_TOKEN: TOKEN },
    tree.root,
  );
  let err = "";
  const errDone = (async () => {
    for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) err += c;
  })();
  try {
    const base = await waitFor(
      () => err.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)?.[1],
      "listen line",
      30_000,
    );
    assertEq((await api(base, "GET", "/healthz", { token: null })).json, { status: "ok" });
    const h = await api(base, "GET", "/healthz");
    assertEq([h.status, h.json.model, h.json.queue_depth], [200, "tiny", 0]);
    assertEq((await api(base, "GET", "/v1/eval-jobs", { token: null })).status, 401);
    const r = await api(base, "POST", "/v1/eval-jobs", {
      body: { adapter: tree.adapter, data: tree.dataFile },
    });
    assertEq(r.status, 202);
    // Whatever the real eval says about these stand-in files, the job must end and say why.
    const j = await waitFor(
      async () => {
        const g = await api(base, "GET", `/v1/eval-jobs/${r.json.id}`);
        return ["succeeded", "failed"].includes(String(g.json.status)) ? g.json : undefined;
      },
      "job to end",
      120_000,
    );
    assert(j.status === "succeeded" || String(j.error).includes("eval"), JSON.stringify(j));
    // The job file follows the in-memory state through the store's serialized durable writes: it reaches the
    // same end state (a read right after the API answered may still see the previous write).
    const onDisk = await waitFor(
      async () => {
        const d = JSON.parse(await Deno.readTextFile(join(tree.jobs, `${r.json.id}.json`)));
        return d.status === j.status ? d : undefined;
      },
      "job file to reach the end state",
      10_000,
    );
    assertEq(onDisk.status, j.status);
  } finally {
    child.kill("SIGTERM");
    const st = await child.status;
    await child.stdout.cancel().catch(() => {});
    await errDone;
    await tree.cleanup();
    assertEq(st.code, 0, `exit after SIGTERM (stderr: ${err})`);
    assert(!err.includes(TOKEN), "token printed");
  }
});

Deno.test("serve CLI: --help shows the signature with its nonce, the limits and the callback allow-list", async () => {
  const tree = await makeTree();
  try {
    const r = await spawn(["--help"], {}, tree.root).output();
    const out = new TextDecoder().decode(r.stdout);
    assertEq(r.code, 0);
    assert(out.includes("t=<unix s>,n=<hex nonce>,v1=<hex>"), out);
    for (const flag of ["--max-jobs", "--callback-host", "--header-timeout-s", "--max-connections"]) {
      assert(out.includes(flag), `${flag} in help`);
    }
  } finally {
    await tree.cleanup();
  }
});
