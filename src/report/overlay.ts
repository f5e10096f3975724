/**
 * Several runs on one dashboard (`maieutic report RUN_DIR RUN_DIR...`, issue #19): each run's
 * logs/training_metrics.csv, overlaid panel by panel so two trainings compare at a glance. One colour per run,
 * named by its directory (with as many parent directories as it takes to tell two runs apart); within a panel
 * the dash tells the series apart (train loss solid, eval loss dashed, ...).
 *
 *   Loss (train, eval)         | Socratic score (the headline) | the seed's other Socratic figures
 *   Learning rate              | Gradient norm                 | Throughput (real tokens/s)
 *
 * Written beside the runs (their common parent directory, or --out DIR) as compare_plot.png and
 * compare_plot.html: the PNG through the same headless Plotly + resvg path as a run's own dashboard
 * (src/report/plot.ts), the HTML a static interactive page with the data inlined.
 */
import { dirname, join, relative, resolve, sep } from "node:path";
import { writeFileAtomic } from "../util/atomic.ts";
import type { Figure, MetricsRow, PlotlyObject } from "./figure.ts";
import { figureParts } from "./figure_parts.ts";
import { FIGURE_FONT_FAMILY } from "./fonts.ts";
import { jsonLiteral, plotPage } from "./html.ts";
import { parseCsv } from "./metrics_csv.ts";
import { DEFAULT_HEIGHT, DEFAULT_WIDTH, renderFigure, reportPaths } from "./plot.ts";

export interface RunSeries {
  /** How the run is named on the dashboard (from its directory). */
  name: string;
  rows: MetricsRow[];
}

/** Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), then a few more. */
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B"];
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
const SYMBOLS = ["circle", "diamond", "square", "triangle-up", "x", "cross"];

/** The headline Socratic figure, under its name before issue #15 as a fallback for older runs. */
const HEADLINE = ["eval_socratic_score", "eval_socratic_pattern_score"];
const OTHER_SOCRATIC: [string, string][] = [
  ["eval_socratic_question_rate", "question rate"],
  ["eval_style_consistency", "style consistency"],
  ["eval_dialogue_flow", "dialogue flow"],
  ["eval_response_consistency", "response consistency"],
];

/**
 * Names of run directories: the last path component, or as many trailing components as it takes to tell the
 * runs apart (models/a/1gouki and models/b/1gouki -> a/1gouki, b/1gouki).
 */
export function runNames(dirs: readonly string[]): string[] {
  const parts = dirs.map((d) => resolve(d).split(sep).filter(Boolean));
  for (let k = 1;; k++) {
    const names = parts.map((p) => p.slice(-k).join("/"));
    if (new Set(names).size === names.length || parts.every((p) => p.length <= k)) return names;
  }
}

export interface OverlayMeta {
  width?: number;
  height?: number;
  fontFamily?: string;
}

export function buildOverlayFigure(runs: readonly RunSeries[], meta: OverlayMeta = {}): Figure {
  const { isNum, series, scatter, baseLayout, addPanel } = figureParts();
  const panels = {
    loss: { n: 1, x: [0, 0.3], y: [0.58, 1], head: "Loss · 損失 (— train, - - eval)" },
    score: { n: 2, x: [0.36, 0.64], y: [0.58, 1], head: "Socratic score · ソクラテス的スコア (eval)" },
    other: {
      n: 3,
      x: [0.7, 1],
      y: [0.58, 1],
      head:
        "Socratic figures · 指標<br><span style='font-size:11px'>— question rate · - - style · ··· flow · -· " +
        "consistency</span>",
    },
    lr: { n: 4, x: [0, 0.3], y: [0, 0.4], head: "Learning rate · 学習率" },
    gnorm: { n: 5, x: [0.36, 0.64], y: [0, 0.4], head: "Gradient norm (pre-clip) · 勾配ノルム" },
    tps: { n: 6, x: [0.7, 1], y: [0, 0.4], head: "Throughput · 処理速度 (real tokens/s)" },
  };
  type Panel = (typeof panels)["loss"];
  const data: PlotlyObject[] = [];
  const filled = new Set<number>();
  runs.forEach((run, i) => {
    const color = PALETTE[i % PALETTE.length];
    let legendShown = false;
    const add = (p: Panel, col: string, what: string, style: number, sparse = false) => {
      const s = series(run.rows, col);
      if (!s.x.length) return;
      filled.add(p.n);
      data.push({
        ...scatter(p, s, run.name, `${run.name} · ${what}`, {
          color,
          dash: DASHES[style % DASHES.length],
          symbol: SYMBOLS[style % SYMBOLS.length],
          markers: sparse || s.x.length <= 40,
        }),
        legendgroup: run.name,
        showlegend: !legendShown,
      });
      legendShown = true;
    };
    add(panels.loss, "loss", "train loss", 0);
    add(panels.loss, "eval_loss", "eval loss", 1, true);
    const headline = HEADLINE.find((c) => run.rows.some((r) => isNum(r[c])));
    if (headline) add(panels.score, headline, "Socratic score", 0, true);
    OTHER_SOCRATIC.forEach(([col, what], k) => add(panels.other, col, what, k, true));
    add(panels.lr, "learning_rate", "learning rate", 0);
    add(panels.gnorm, "grad_norm", "grad norm", 0);
    add(panels.tps, "tokens_per_second", "tokens/s", 0);
  });

  const layout: PlotlyObject = {
    ...baseLayout({
      width: meta.width,
      height: meta.height,
      fontFamily: meta.fontFamily,
      top: 112,
      title: { text: `maieutic · ${runs.length} runs compared · 比較` },
    }),
    legend: { orientation: "h", x: 0.5, xanchor: "center", y: 1.085, yanchor: "bottom", font: { size: 13 } },
  };
  for (const p of Object.values(panels)) {
    addPanel(layout, p, p.head, {
      empty: !filled.has(p.n),
      emptyText: "no data · データなし",
      heading: { align: "left" },
      yaxis: {
        ...(p.n === 2 || p.n === 3 ? { range: [-0.03, 1.03] } : {}),
        ...(p.n === 4 ? { exponentformat: "power", showexponent: "all", rangemode: "tozero" } : {}),
        ...(p.n >= 5 ? { rangemode: "tozero" } : {}),
      },
    });
  }
  return { data, layout };
}

/** A static interactive page of the figure (plotly.min.js and the data inlined; no network). */
export function buildOverlayHtml(fig: Figure, title: string): string {
  const layout: PlotlyObject = { ...fig.layout, autosize: true };
  delete layout.width;
  delete layout.height;
  const json = jsonLiteral({ data: fig.data, layout });
  return plotPage(
    title,
    `"use strict";
(function () {
  var fig = ${json};
  Plotly.newPlot(document.getElementById("plot"), fig.data, fig.layout, { responsive: true, displaylogo: false });
})();`,
  );
}

/** Where the comparison goes by default: the deepest directory holding every run. */
export function commonParent(dirs: readonly string[]): string {
  let root = dirname(resolve(dirs[0]));
  for (const d of dirs.slice(1)) {
    while (relative(root, resolve(d)).startsWith("..")) root = dirname(root);
  }
  return root;
}

export interface OverlayResult {
  png: string;
  html: string;
  runs: string[];
  traces: number;
  ms: number;
}

/** Reads every run's CSV and writes {outDir}/compare_plot.png and .html (atomically). */
export async function renderOverlay(
  dirs: readonly string[],
  opts: { outDir?: string; width?: number; height?: number; scale?: number } = {},
): Promise<OverlayResult> {
  const t0 = performance.now();
  const names = runNames(dirs);
  const runs: RunSeries[] = [];
  for (const [i, d] of dirs.entries()) {
    runs.push({ name: names[i], rows: parseCsv(await Deno.readTextFile(reportPaths(d).csv)).rows });
  }
  const width = Math.round(opts.width ?? DEFAULT_WIDTH), height = Math.round(opts.height ?? DEFAULT_HEIGHT);
  const fig = buildOverlayFigure(runs, { width, height, fontFamily: FIGURE_FONT_FAMILY });
  const r = await renderFigure(fig, { scale: opts.scale });
  const outDir = opts.outDir ?? commonParent(dirs);
  const png = join(outDir, "compare_plot.png"), html = join(outDir, "compare_plot.html");
  await writeFileAtomic(png, r.png);
  await writeFileAtomic(html, buildOverlayHtml(fig, `maieutic · ${names.join(" vs ")}`));
  return { png, html, runs: names, traces: r.traces, ms: performance.now() - t0 };
}
