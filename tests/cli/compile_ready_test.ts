/**
 * Compile readiness (`deno task compile` -> a `maieutic` executable): the program must run from what
 * `deno compile` embeds, i.e. main.ts's module graph (TypeScript modules plus the text/bytes imports: WGSL
 * kernels, the Plotly bundle, fonts, the resvg wasm) and the npm packages, and never read the source tree by
 * path at run time. `deno compile` itself needs the `denort` binary (downloaded, or DENORT_BIN), which this
 * environment lacks, so the test builds the same closure by hand: it copies exactly the local files
 * `deno info --json main.ts` lists (+ deno.json, deno.lock; node_modules linked) into a temporary directory,
 * then runs `info`, `train --model tiny` and `report` from there with the working directory elsewhere.
 *
 * slow: ~1 min on lavapipe (most of it the two training steps).
 */
import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const DATA = join(REPO, "data/dialogue/processed/1gouki.json");

interface GraphModule {
  specifier: string;
  kind?: string;
  local?: string;
}

async function run(
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: opts.cwd,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...opts.env },
    signal: AbortSignal.timeout(opts.timeoutMs ?? 90_000),
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

/** main.ts's module graph as `deno info --json` reports it (what `deno compile` embeds). */
async function moduleGraph(): Promise<GraphModule[]> {
  const r = await run(["info", "--json", "--config", join(REPO, "deno.json"), join(REPO, "main.ts")], {
    cwd: REPO,
  });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { modules: GraphModule[] }).modules;
}

/** Lines of code (comments dropped) that locate or read files relative to the module itself. */
function pathReads(source: string): { line: number; text: string; url?: string }[] {
  const out: { line: number; text: string; url?: string }[] = [];
  source.split("\n").forEach((text, i) => {
    const t = text.trim();
    if (t.startsWith("//") || t.startsWith("*") || t.startsWith("/*")) return;
    if (/import\.meta\.(dirname|filename)/.test(t)) out.push({ line: i + 1, text: t });
    for (const m of t.matchAll(/new URL\(\s*["'`]([^"'`]+)["'`]\s*,\s*import\.meta\.url\s*\)/g)) {
      out.push({ line: i + 1, text: t, url: m[1] });
    }
    // a string-literal relative path handed to a file read (e.g. Deno.readTextFile("kernels/x.wgsl"))
    if (/Deno\.(readTextFile|readFile|open)(Sync)?\(\s*["'`](?!\/)/.test(t)) {
      out.push({ line: i + 1, text: t });
    }
  });
  return out;
}

Deno.test("slow: compiled-binary readiness: info, train and report run from main.ts's module graph alone", async () => {
  const t0 = performance.now();
  const modules = await moduleGraph();
  const local = modules.filter((m) => m.local).map((m) => m.local!);
  for (const f of local) assert.ok(f.startsWith(REPO + "/"), `${f}: a local module outside the repository`);
  const rel = local.map((f) => relative(REPO, f)).sort();

  // What the binary must carry, all reachable by static imports (so deno compile embeds them without --include).
  const specs = modules.map((m) => m.specifier);
  assert.ok(rel.filter((f) => f.startsWith("kernels/") && f.endsWith(".wgsl")).length >= 20, "WGSL kernels");
  for (
    const [what, re] of [
      ["the Plotly bundle", /plotly\.js-dist-min@[^/]+\/plotly\.min\.js$/],
      ["the resvg wasm", /@resvg\/resvg-wasm@[^/]+\/index_bg\.wasm$/],
      ["a Latin font", /dejavu-fonts-ttf@[^/]+\/.*\.ttf$/],
      ["a Japanese font", /noto-sans-jp@[^/]+\/.*\.ttf$/],
    ] as const
  ) {
    assert.ok(specs.some((s) => re.test(s)), `${what} is not a static import of main.ts's graph`);
  }
  assert.ok(rel.includes("src/report/render_worker.ts"), "the report worker module is in the graph");
  for (const cmd of ["train", "eval", "serve", "bench", "quantize", "merge", "info", "report"]) {
    assert.ok(rel.includes(`src/cli/${cmd}.ts`), `src/cli/${cmd}.ts (dynamic import with a literal)`);
  }

  // No module locates files next to itself unless they are embedded too.
  const offenders: string[] = [];
  for (const f of rel.filter((f) => /\.(ts|js)$/.test(f))) {
    for (const p of pathReads(await Deno.readTextFile(join(REPO, f)))) {
      if (p.url !== undefined) {
        const target = relative(REPO, new URL(p.url, `file://${join(REPO, f)}`).pathname);
        if (rel.includes(target)) continue; // an embedded module (e.g. a Worker's script)
        // src/serve/runner.ts: only outside a compiled binary (isStandalone() picks Deno.execPath() inside).
        if (f === "src/serve/runner.ts" && (target === "deno.json" || target === "main.ts")) continue;
      }
      offenders.push(`${f}:${p.line}: ${p.text}`);
    }
  }
  assert.deepEqual(offenders, [], "code that reads the source tree by path at run time");

  // The closure: exactly the graph's local files + deno.json/deno.lock; npm packages from node_modules.
  const root = await Deno.makeTempDir({ prefix: "maieutic-compile-" });
  try {
    const app = join(root, "app");
    for (const f of [...rel, "deno.json", "deno.lock"]) {
      await Deno.mkdir(dirname(join(app, f)), { recursive: true });
      await Deno.copyFile(join(REPO, f), join(app, f));
    }
    await Deno.symlink(join(REPO, "node_modules"), join(app, "node_modules"));
    const work = join(root, "work");
    await Deno.mkdir(work);
    await Deno.copyFile(DATA, join(work, "dialogues.json"));
    const env = {
      MAIEUTIC_CACHE: join(root, "cache"),
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
    };
    const maieutic = (...args: string[]) =>
      run(["run", "-A", "--cached-only", "--config", join(app, "deno.json"), join(app, "main.ts"), ...args], {
        cwd: work,
        env,
      });

    const info = await maieutic("info");
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /adapter/i);

    const out = join(work, "out");
    const train = await maieutic(
      "train",
      "--model",
      "tiny",
      "--data",
      "dialogues.json",
      "--max-steps",
      "2",
      "--output-dir",
      out,
    );
    assert.equal(train.code, 0, `${train.stdout}\n${train.stderr}`);
    const runDir = join(out, "dialogues");
    for (
      const f of [
        "model/adapter_model.safetensors",
        "model/adapter_config.json",
        "model/checkpoint-2/adapter_model.safetensors",
        "model/training_config.json",
        "logs/training_metrics.csv",
        "logs/training_summary.json",
      ]
    ) {
      assert.ok((await Deno.stat(join(runDir, f))).isFile, f);
    }

    for (const f of ["metrics_plot.png", "metrics_plot.html"]) {
      await Deno.remove(join(runDir, "logs", f)).catch(() => {});
    }
    const report = await maieutic("report", runDir);
    assert.equal(report.code, 0, `${report.stdout}\n${report.stderr}`);
    const png = await Deno.readFile(join(runDir, "logs", "metrics_plot.png"));
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG");
    assert.match(await Deno.readTextFile(join(runDir, "logs", "metrics_plot.html")), /<html/i);

    // nothing was written into the copied program (a compiled binary's embedded files are read-only)
    const after: string[] = [];
    const walk = async (d: string) => {
      for await (const e of Deno.readDir(d)) {
        if (e.name === "node_modules") continue;
        if (e.isDirectory) await walk(join(d, e.name));
        else after.push(relative(app, join(d, e.name)));
      }
    };
    await walk(app);
    assert.deepEqual(after.sort(), [...rel, "deno.json", "deno.lock"].sort());
  } finally {
    await Deno.remove(root, { recursive: true });
  }
  const seconds = (performance.now() - t0) / 1000;
  assert.ok(seconds < 150, `took ${seconds.toFixed(0)} s; keep this test under ~2 minutes`);
});

Deno.test("compile script: a DENORT_BIN that does not exist is refused with the denort to fetch", async () => {
  const o = await new Deno.Command("bash", {
    args: [join(REPO, "scripts/compile.sh")],
    cwd: REPO,
    env: { DENORT_BIN: "/nonexistent/denort", NO_COLOR: "1" },
  }).output();
  assert.equal(o.code, 2);
  assert.match(
    new TextDecoder().decode(o.stderr),
    /DENORT_BIN=\/nonexistent\/denort: no such file; .*Deno \d+\.\d+\.\d+ .*https:\/\/dl\.deno\.land\/release\/v\d+\.\d+\.\d+\/denort-[\w-]+\.zip/,
  );
});
