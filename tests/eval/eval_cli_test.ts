// `maieutic eval` (src/cli/eval.ts, src/eval/run.ts): as a subprocess (exit codes, one clean JSON object on
// stdout) and in-process (adapter vs base model, the exact-f32 path, where reports go).
import { join } from "node:path";
import { configFromArgs } from "../../src/cli/args.ts";
import { UsageError } from "../../src/util/errors.ts";
import { evalModelVersion, reportTimestamp, runEval } from "../../src/eval/run.ts";
import { EVAL_METRICS } from "../../src/report/metrics_csv.ts";
import { GOLDEN } from "../helpers/golden.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const DATA = new URL("../../data/dialogue/processed/sample_en.jsonl", import.meta.url).pathname;
const ADAPTER = join(GOLDEN, "lora_adapter");

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}

/** The golden adapter with r claimed as 8: every tensor's shape then mismatches. */
async function mismatchedAdapter(root: string): Promise<string> {
  const dir = join(root, "bad_adapter");
  await Deno.mkdir(dir, { recursive: true });
  const cfg = JSON.parse(await Deno.readTextFile(join(ADAPTER, "adapter_config.json")));
  await Deno.writeTextFile(join(dir, "adapter_config.json"), JSON.stringify({ ...cfg, r: 8 }));
  await Deno.copyFile(join(ADAPTER, "adapter_model.safetensors"), join(dir, "adapter_model.safetensors"));
  return dir;
}

Deno.test("eval --json prints one JSON object with a finite eval_loss; bad input exits 2", async () => {
  const out = await Deno.makeTempDir();
  try {
    const r = await cli("eval", "--model", "tiny", "--data", DATA, "--json", "--output-dir", out);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.err}`);
    const j = JSON.parse(r.out); // the whole of stdout is the report
    if (!(Number.isFinite(j.eval_loss) && j.eval_loss > 0)) throw new Error(`eval_loss ${j.eval_loss}`);
    if (Math.abs(j.eval_perplexity - Math.exp(j.eval_loss)) > 1e-9 * j.eval_perplexity) {
      throw new Error("perplexity");
    }
    if (!(j.eval_tokens > 0 && j.eval_samples >= 5 && j.eval_dialogues === 5)) throw new Error(r.out);
    if (j.adapter !== null || j.model_version !== "sample_en" || j.data.sha256.length !== 64) {
      throw new Error(r.out);
    }
    if (!j.report_path.startsWith(join(out, "sample_en", "evals"))) throw new Error(j.report_path);
    const written = JSON.parse(await Deno.readTextFile(j.report_path));
    if (written.eval_loss !== j.eval_loss || written.config.model.name !== "tiny") {
      throw new Error("report file");
    }

    const bad = await mismatchedAdapter(out);
    const m = await cli("eval", "--model", "tiny", "--data", DATA, "--adapter", bad, "--json");
    if (m.code !== 2 || !m.err.includes("shape") || m.out.trim() !== "") {
      throw new Error(`mismatched adapter: exit ${m.code}: ${m.err}`);
    }
    const missing = await cli("eval", "--model", "tiny", "--data", join(out, "nope.json"), "--json");
    if (missing.code !== 2 || !missing.err.includes("not found")) {
      throw new Error(`${missing.code} ${missing.err}`);
    }
    const n = await cli("eval", "--model", "tiny", "--data", DATA, "--max-samples", "abc");
    if (n.code !== 2 || !n.err.includes("--max-samples")) throw new Error(`${n.code} ${n.err}`);
    const noDir = await cli("eval", "--model", "tiny", "--data", DATA, "--adapter", join(out, "none"));
    if (noDir.code !== 2) throw new Error(`${noDir.code} ${noDir.err}`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("eval --generate: the eval_* figures, finish reasons, samples file and readable output", async () => {
  const out = await Deno.makeTempDir();
  try {
    const r = await cli(
      "eval",
      "--model",
      "tiny",
      "--data",
      DATA,
      "--adapter",
      ADAPTER,
      "--generate",
      "--max-samples",
      "2",
      "--max-new-tokens",
      "5",
      "--consistency-samples",
      "2",
      "--output-dir",
      out,
    );
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.err}`);
    for (const m of EVAL_METRICS) {
      const line = r.out.split("\n").find((l) => l.trim().startsWith(`eval_${m} `));
      const v = Number(line?.trim().split(/\s+/)[1]);
      if (!(v >= 0 && v <= 1)) throw new Error(`eval_${m} missing or out of range:\n${r.out}`);
    }
    if (!/eval_loss\s+\d/.test(r.out)) throw new Error(r.out);
    // The golden adapter says base_model_name_or_path "tiny_gemma2": only a warning.
    if (!r.err.includes("warning") || !r.err.includes("base_model_name_or_path")) throw new Error(r.err);
    const reports = [...Deno.readDirSync(join(out, "sample_en", "evals"))].map((e) => e.name).sort();
    if (reports.length !== 2 || !reports[1].endsWith(".samples.jsonl")) throw new Error(`${reports}`);
    const report = JSON.parse(await Deno.readTextFile(join(out, "sample_en", "evals", reports[0])));
    if (report.generation.contexts !== 2 || report.generation.max_new_tokens !== 5) {
      throw new Error("generation");
    }
    // Finish reasons are counted (a reply cut off at the token limit is degenerate).
    const f = report.generation.finish;
    if (f.stop + f.length !== 2) throw new Error(`finish ${JSON.stringify(f)}`);
    const lines = (await Deno.readTextFile(join(out, "sample_en", "evals", reports[1]))).trim().split("\n");
    if (lines.length !== 2 || JSON.parse(lines[0]).samples.length !== 2) throw new Error("samples file");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("runEval: the adapter changes the loss; exact f32; MODEL_VERSION from the adapter's run dir", async () => {
  const out = await Deno.makeTempDir();
  const logs: string[] = [];
  const log = (s: string) => logs.push(s);
  try {
    const f32 = [
      "--set",
      "quantization.load_in_4bit=false",
      "--set",
      "quantization.bnb_4bit_compute_dtype=float32",
    ];
    const cfg = (extra: string[] = []) =>
      configFromArgs({ model: "tiny", data: DATA, "output-dir": out, set: extra.filter((_, i) => i % 2) });
    const base = (await runEval({ config: cfg(f32), log })).report;
    const m = base.model as { quantized: boolean; compute: string };
    if (m.quantized || m.compute !== "f32") throw new Error(`not the f32 path: ${JSON.stringify(m)}`);
    // A run directory under the output root: models/{ver}/model/checkpoint-N.
    const ckpt = join(out, "myrun", "model", "checkpoint-3");
    await Deno.mkdir(ckpt, { recursive: true });
    for (const f of ["adapter_config.json", "adapter_model.safetensors"]) {
      await Deno.copyFile(join(ADAPTER, f), join(ckpt, f));
    }
    const { report, path } = await runEval({ config: cfg(f32), adapter: ckpt, log });
    if (!(Number.isFinite(report.eval_loss) && Math.abs(report.eval_loss - base.eval_loss) > 1e-6)) {
      throw new Error(`adapter loss ${report.eval_loss} vs base ${base.eval_loss}`);
    }
    if (report.eval_tokens !== base.eval_tokens) throw new Error("same data, same target tokens");
    if (report.model_version !== "myrun" || !path.startsWith(join(out, "myrun", "evals"))) {
      throw new Error(path);
    }
    if (!logs.some((l) => l.startsWith("warning:") && l.includes("base_model_name_or_path"))) {
      throw new Error(logs.join("\n"));
    }
    // NF4 base weights give a nearby but different loss.
    const nf4 = (await runEval({ config: cfg(), log })).report;
    if (!(Math.abs(nf4.eval_loss - base.eval_loss) < 0.05)) {
      throw new Error(`${nf4.eval_loss} vs ${base.eval_loss}`);
    }
    let threw = false;
    try {
      await runEval({ config: cfg(), adapter: await mismatchedAdapter(out), log });
    } catch (e) {
      threw = e instanceof UsageError;
    }
    if (!threw) throw new Error("a mismatched adapter was not a UsageError");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("evalModelVersion and reportTimestamp", () => {
  const eq = (a: string, b: string) => {
    if (a !== b) throw new Error(`${a} != ${b}`);
  };
  eq(evalModelVersion("models/1gouki/model/checkpoint-120", "models", "x/held_out.json"), "1gouki");
  eq(evalModelVersion("/elsewhere/models/run7/model", "out", "x/held_out.json"), "run7");
  eq(evalModelVersion("/tmp/adapter", "models", "x/held_out.json"), "held_out");
  eq(evalModelVersion(undefined, "models", "data/1gouki.json"), "1gouki");
  eq(reportTimestamp(new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678))), "2025-01-02T03-04-05-678Z");
});
