/**
 * `maieutic report models/{ver}`: regenerates logs/metrics_plot.png and logs/metrics_plot.html of a run from its
 * logs/training_metrics.csv alone (model name from model/training_config.json when present). No browser, network
 * or system fonts (src/report/plot.ts). With several run directories: one dashboard overlaying them
 * (src/report/overlay.ts), compare_plot.png/.html in their common parent directory or --out DIR.
 */
import { parse } from "./args.ts";
import { UsageError } from "../util/errors.ts";
import {
  closeReportRenderer,
  DEFAULT_HEIGHT,
  DEFAULT_WIDTH,
  renderReport,
  reportPaths,
} from "../report/plot.ts";
import { renderOverlay } from "../report/overlay.ts";

const USAGE =
  "maieutic report <run-dir> [<run-dir>...] [--out DIR] [--width PX] [--height PX] [--scale N] [--live]";

const HELP = `${USAGE}

Re-renders <run-dir>/logs/metrics_plot.png and <run-dir>/logs/metrics_plot.html from
<run-dir>/logs/training_metrics.csv (e.g. maieutic report models/1gouki).

With several run directories (maieutic report models/1gouki models/1gouki_lr2e-4) it draws one dashboard
that overlays them, one colour per run named by its directory: train and eval loss, the Socratic score and
figures, learning rate, gradient norm and throughput. It writes compare_plot.png and compare_plot.html to the
runs' common parent directory (or --out DIR); the runs' own dashboards are left as they are.

  --width PX     figure width in CSS px (default ${DEFAULT_WIDTH})
  --height PX    figure height in CSS px (default ${DEFAULT_HEIGHT})
  --scale N      PNG pixels per CSS px (default 1; 2 for a sharper image)
  --live         the HTML keeps refreshing its data (as while training runs; one run only)
  --out DIR      with several runs: where compare_plot.png/.html go (default: the runs' common parent)`;

const OPTIONS = {
  width: { type: "string" },
  height: { type: "string" },
  scale: { type: "string" },
  live: { type: "boolean" },
  out: { type: "string" },
} as const;

function number(name: string, v: unknown, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name} expects a number in [${min}, ${max}], got "${v}"\nusage: ${USAGE}`);
  }
  return n;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS, USAGE, true);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length < 1) {
    throw new UsageError(
      `expected a run directory (e.g. models/1gouki), or several to compare\nusage: ${USAGE}`,
    );
  }
  const runDir = positionals[0];
  const width = number("width", values.width, 200, 8000);
  const height = number("height", values.height, 200, 8000);
  const scale = number("scale", values.scale, 0.1, 8);
  for (const dir of positionals) {
    const csv = reportPaths(dir).csv;
    try {
      const st = await Deno.stat(csv);
      if (!st.isFile) throw new Error("not a file");
    } catch {
      throw new UsageError(
        `${csv} not found: give a run directory written by \`maieutic train\` (it holds logs/training_metrics.csv)`,
      );
    }
  }
  if (positionals.length > 1) {
    if (values.live) throw new UsageError(`--live applies to one run's dashboard\nusage: ${USAGE}`);
    try {
      const out = typeof values.out === "string" ? values.out : undefined;
      const r = await renderOverlay(positionals, { outDir: out, width, height, scale });
      console.log(
        `wrote ${r.png} and ${r.html} (${r.runs.join(", ")}; ${r.traces} traces, ${Math.round(r.ms)} ms)`,
      );
    } finally {
      await closeReportRenderer();
    }
    return 0;
  }
  if (values.out !== undefined) throw new UsageError(`--out applies to several runs\nusage: ${USAGE}`);
  try {
    const r = await renderReport(runDir, {
      width,
      height,
      scale,
      live: values.live === true,
      inProcess: true,
    });
    console.log(
      `wrote ${r.png} and ${r.html} ` +
        `(${r.rows} rows, ${r.traces} traces, ${Math.round(r.ms)} ms)`,
    );
  } finally {
    await closeReportRenderer();
  }
  return 0;
}
