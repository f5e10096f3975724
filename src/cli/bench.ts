/**
 * `maieutic bench`: kernel and step throughput against the machine's measured limits, and the memory plan
 * (docs/ARCHITECTURE.md#performance). `--plan` prints only the memory plan, computed without a device. `--json` prints one object.
 * Targets are reported as pass/fail figures; they never change the exit code, nor do regressions against an
 * earlier report (`--compare`).
 */
import { CONFIG_HELP, CONFIG_OPTIONS, configFromArgs, parse } from "./args.ts";
import { UsageError } from "../util/errors.ts";
import { getGpu } from "../gpu/device.ts";
import { GEMMA2_2B_RANDOM, TINY } from "../hub/model_name.ts";
import { GEMMA2_2B, type Gemma2Config } from "../config/gemma2.ts";
import { tinyConfig } from "../hub/tiny.ts";
import { openModelSource } from "../model/session.ts";
import { formatPlan } from "../bench/plan.ts";
import { formatReport } from "../bench/report.ts";
import { compareReports, readBaseReport } from "../bench/compare.ts";
import { type BenchSections, defaultSettings, openBenchModel, runBench, seedPlan } from "../bench/suite.ts";
import type { Config } from "../config/schema.ts";

const USAGE =
  "maieutic bench [--plan] [--json] [--model tiny|gemma-2-2b-random|DIR] [--batch B --seq T --steps N]" +
  " [--compare BASE.json]";

const OPTIONS = {
  ...CONFIG_OPTIONS,
  plan: { type: "boolean" },
  json: { type: "boolean" },
  batch: { type: "string" },
  seq: { type: "string" },
  steps: { type: "string" },
  layers: { type: "string" },
  vocab: { type: "string" },
  "decode-tokens": { type: "string" },
  "prompt-tokens": { type: "string" },
  "ce-vocab": { type: "string" },
  skip: { type: "string" },
  clock: { type: "string" },
  compare: { type: "string" },
  tolerance: { type: "string" },
} as const;

const HELP = `${USAGE}

Measures the machine's ceilings (streaming copy GB/s, FMA-loop GFLOP/s), every kernel family on the model's
shapes (GFLOP/s, GB/s, fraction of the ceilings), the kernel ladder (naive -> tiled -> NF4 fused vs
dequantize-then-matmul), one training step (tokens/s, breakdown by kernel family, readbacks), greedy decoding,
and the memory plan of the seed configuration; then the targets with pass/fail. Default model:
gemma-2-2b-random (real widths, cut to --layers layers and a --vocab slice so a step fits a software adapter).

  --plan                 only the memory plan (no device needed): every buffer kind and the peak
  --json                 one JSON object on stdout (progress goes to stderr)
  --batch B --seq T      tokens of the kernels and the step (plan: of the planned batch; default the seed 4 x 512)
  --steps N              timed optimizer steps, the median reported (default 3 real width, 1 small)
  --layers L             decoder layers of the step model (default 1 for real widths, all for small models)
  --vocab V              vocab rows of the step model (default 8192 for real widths)
  --decode-tokens N      greedy decode tokens to time (0 skips; default 1 real width, 8 small)
  --prompt-tokens P      prompt of the decode benchmark (default 1 real width, 8 small)
  --ce-vocab V           vocab rows of the cross-entropy kernel case (default 4096)
  --skip LIST            comma list of sections to leave out: kernels,ladder,step,breakdown,decode
  --clock auto|wall      kernel timings by GPU timestamps where they agree with the wall clock (auto, the
                         default), or by the wall clock only; the training step is always wall clock
  --compare BASE.json    compare with an earlier \`bench --json\` report: every kernel, ladder rung, the
                         step, decode and the memory plan, regressions flagged (the exit code is unchanged)
  --tolerance X          relative worsening --compare flags as a regression (default 0.25 = 25%)
${CONFIG_HELP}`;

function posInt(name: string, v: unknown, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || !Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} expects an integer >= ${min}, got "${v}"`);
  }
  return n;
}

/** The model's architecture config without reading any weights. */
async function architecture(cfg: Config): Promise<{ config: Gemma2Config; source: string }> {
  if (cfg.model.name === GEMMA2_2B_RANDOM) return { config: GEMMA2_2B, source: GEMMA2_2B_RANDOM };
  if (cfg.model.name === TINY) return { config: tinyConfig(), source: TINY };
  const s = await openModelSource(cfg, { log: (l) => console.error(l) });
  s.close();
  return { config: s.config, source: s.source };
}

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS, USAGE);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const withModel = { ...values, model: typeof values.model === "string" ? values.model : GEMMA2_2B_RANDOM };
  const cfg = configFromArgs(withModel);
  const batch = posInt("batch", values.batch);
  const seq = posInt("seq", values.seq);
  const steps = posInt("steps", values.steps);
  const layers = posInt("layers", values.layers);
  const vocab = posInt("vocab", values.vocab, 2);
  const decodeTokens = posInt("decode-tokens", values["decode-tokens"], 0);
  const promptTokens = posInt("prompt-tokens", values["prompt-tokens"]);
  const ceVocab = posInt("ce-vocab", values["ce-vocab"]);
  const clock = values.clock ?? "auto";
  if (clock !== "auto" && clock !== "wall") {
    throw new UsageError(`--clock expects auto or wall, got "${clock}"`);
  }
  let tolerance = 0.25;
  if (values.tolerance !== undefined) {
    tolerance = Number(values.tolerance);
    if (!(tolerance >= 0 && tolerance <= 10)) {
      throw new UsageError(
        `--tolerance expects a number from 0 to 10 (0.25 = 25%), got "${values.tolerance}"`,
      );
    }
    if (values.compare === undefined) throw new UsageError("--tolerance needs --compare BASE.json");
  }

  if (values.plan) {
    const arch = await architecture(cfg);
    const plan = seedPlan(cfg, arch.config, arch.source, batch, seq);
    console.log(values.json ? JSON.stringify(plan, null, 2) : formatPlan(plan));
    return 0;
  }

  const skip = new Set(
    typeof values.skip === "string" ? values.skip.split(",").map((s) => s.trim()).filter(Boolean) : [],
  );
  const known = ["kernels", "ladder", "step", "breakdown", "decode"];
  for (const s of skip) {
    if (!known.includes(s)) {
      throw new UsageError(`--skip: unknown section "${s}" (one of ${known.join(", ")})`);
    }
  }
  const sections: BenchSections = {
    kernels: !skip.has("kernels"),
    ladder: !skip.has("ladder"),
    step: !skip.has("step"),
    breakdown: !skip.has("breakdown") && !skip.has("step"),
    decode: !skip.has("decode"),
  };
  // Read the base before the (minutes-long) run, so a wrong path fails at once.
  const base = typeof values.compare === "string" ? await readBaseReport(values.compare) : undefined;
  const gpu = await getGpu();
  const src = await openBenchModel(cfg);
  try {
    const d = defaultSettings(src.config);
    const settings = {
      batch: batch ?? d.batch,
      seq: seq ?? d.seq,
      steps: steps ?? d.steps,
      layers: layers ?? d.layers,
      vocab: vocab ?? d.vocab,
      decodeTokens: decodeTokens ?? d.decodeTokens,
      promptTokens: promptTokens ?? d.promptTokens,
      ceVocab: ceVocab ?? d.ceVocab,
      clock: clock as "auto" | "wall",
    };
    if (settings.vocab < 3) throw new UsageError("--vocab must be at least 3");
    const log = (line: string) => console.error(`bench: ${line}`);
    const report = await runBench(gpu, cfg, settings, sections, src, log);
    if (base) report.comparison = compareReports(base, report, String(values.compare), tolerance);
    console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
    return 0;
  } finally {
    src.close();
  }
}
