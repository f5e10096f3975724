/**
 * The dashboard figure (Plotly data + layout) built from training_metrics.csv rows.
 *
 * `buildFigure` must stay self-contained but for `figureParts` (src/report/figure_parts.ts, itself
 * self-contained) — no other imports, no module-level helpers or constants — because src/report/html.ts embeds
 * both sources (`.toString()`) in metrics_plot.html, where the page rebuilds the figure from a fresh CSV while
 * the run is live. A test evaluates them in isolation to keep it that way.
 */
import { figureParts } from "./figure_parts.ts";

export type MetricsRow = Record<string, number | undefined>;

export interface FigureMeta {
  /** MODEL_VERSION (the run directory's name). */
  version: string;
  /** model.name from model/training_config.json, when known. */
  modelName?: string;
  /** training.max_grad_norm, drawn as a dotted clip line on the grad-norm panel when known. */
  maxGradNorm?: number;
  /** CSS font-family for every label. */
  fontFamily?: string;
  width?: number;
  height?: number;
  /**
   * Device pixels across the whole figure (width x scale) when rendering a raster: long series are then reduced
   * per panel to first/min/max/last per pixel column (M4), which draws the same line. Unset: all points (HTML).
   */
  decimateTo?: number;
}

// deno-lint-ignore no-explicit-any
export type PlotlyObject = Record<string, any>;

export interface Figure {
  data: PlotlyObject[];
  layout: PlotlyObject;
}

export function buildFigure(rows: MetricsRow[], meta: FigureMeta): Figure {
  const { isNum, series: seriesOf, scatter, baseLayout, addPanel } = figureParts();
  const series = (col: string) => seriesOf(rows, col);

  // M4 reduction to `buckets` x-columns: keeps first, min, max and last point of each column, in order.
  const m4 = (s: { x: number[]; y: number[] }, buckets: number) => {
    const n = s.x.length;
    if (n <= 4 * buckets) return s;
    const x0 = s.x[0], span = s.x[n - 1] - s.x[0] || 1;
    const keep: number[] = [];
    let cur = -1, first = 0, last = 0, lo = 0, hi = 0;
    const flush = () => {
      if (cur >= 0) keep.push(...[...new Set([first, lo, hi, last])].sort((a, b) => a - b));
    };
    for (let i = 0; i < n; i++) {
      const b = Math.min(buckets - 1, Math.floor((s.x[i] - x0) / span * buckets));
      if (b !== cur) {
        flush();
        cur = b;
        first =
          last =
          lo =
          hi =
            i;
      } else {
        last = i;
        if (s.y[i] < s.y[lo]) lo = i;
        if (s.y[i] > s.y[hi]) hi = i;
      }
    }
    flush();
    return { x: keep.map((i) => s.x[i]), y: keep.map((i) => s.y[i]) };
  };

  // Debiased exponential moving average over `span` points (TensorBoard-style smoothing of a noisy series).
  const ema = (s: { x: number[]; y: number[] }, span: number) => {
    const a = 2 / (span + 1);
    let m = 0, w = 0;
    return {
      x: s.x,
      y: s.y.map((v) => {
        m = (1 - a) * m + a * v;
        w = (1 - a) * w + a;
        return m / w;
      }),
    };
  };

  // Panel domains in paper coordinates: loss and Socratic scores on top, the optimizer panels below.
  const panels = {
    loss: { n: 1, x: [0, 0.47], y: [0.57, 1] },
    score: { n: 2, x: [0.56, 0.84], y: [0.8, 1] },
    // The failures counted apart (docs/socratic_metrics.md), so a researcher sees which one grows.
    fail: { n: 6, x: [0.56, 0.84], y: [0.57, 0.73] },
    lr: { n: 3, x: [0, 0.27], y: [0, 0.4] },
    gnorm: { n: 4, x: [0.365, 0.635], y: [0, 0.4] },
    tps: { n: 5, x: [0.73, 1], y: [0, 0.4] },
  };
  type Panel = (typeof panels)["loss"];

  const data: PlotlyObject[] = [];
  const filled = new Set<number>();
  type LineStyle = {
    color: string;
    dash?: string;
    symbol?: string;
    width?: number;
    sparse?: boolean;
    opacity?: number;
    smooth?: number;
  };
  const trace = (
    p: Panel,
    s: { x: number[]; y: number[] },
    name: string,
    style: LineStyle,
    legend?: string,
  ) => {
    filled.add(p.n);
    const pts = meta.decimateTo ? m4(s, Math.max(16, Math.ceil((p.x[1] - p.x[0]) * meta.decimateTo))) : s;
    // Markers where points are few (eval rows, short runs) so a single row still shows.
    data.push({
      ...scatter(p, pts, name, name, { ...style, markers: !!style.sparse || s.x.length <= 40 }),
      ...(style.opacity !== undefined ? { opacity: style.opacity } : {}),
      showlegend: legend !== undefined,
      ...(legend ? { legend } : {}),
    });
  };
  const line = (p: Panel, col: string, name: string, style: LineStyle, legend?: string) => {
    const s = series(col);
    if (!s.x.length) return s;
    // A long noisy series is drawn faint, with its moving average on top.
    if (style.smooth && s.x.length > 100) {
      trace(p, s, name, { ...style, width: 1, opacity: 0.3 }, legend);
      trace(p, ema(s, Math.max(5, Math.round(s.x.length / 50))), `${name} (smoothed)`, style, legend);
    } else {
      trace(p, s, name, style, legend);
    }
    return s;
  };

  // 1. Loss (train, eval).
  const trainLoss = line(
    panels.loss,
    "loss",
    "train loss",
    { color: "#1f5fa8", width: 2, smooth: 1 },
    "legend",
  );
  const evalLoss = line(
    panels.loss,
    "eval_loss",
    "eval loss",
    { color: "#d0342c", dash: "dash", symbol: "diamond", width: 2.2, sparse: true },
    "legend",
  );
  const lossValues = trainLoss.y.concat(evalLoss.y);
  const lossMin = lossValues.reduce((m, v) => Math.min(m, v), Infinity);
  const lossMax = lossValues.reduce((m, v) => Math.max(m, v), -Infinity);
  const logLoss = lossValues.length > 1 && lossMin > 0 && lossMax / lossMin >= 10;

  // 2. Socratic quality scores and, below, the failures counted apart (all 0-1), distinguishable without
  // colour: dash + marker symbol.
  type Eval = [col: string, name: string, color: string, dash: string, symbol: string];
  const evalPanels: [Panel, string, Eval[]][] = [
    [panels.score, "legend2", [
      ["eval_socratic_question_rate", "question rate", "#2a9d3a", "solid", "circle"],
      ["eval_socratic_score", "Socratic score", "#7b3fb0", "dash", "square"],
      ["eval_style_consistency", "style consistency", "#e07b00", "dot", "diamond"],
      ["eval_dialogue_flow", "dialogue flow", "#138d9c", "dashdot", "triangle-up"],
      ["eval_response_consistency", "response consistency", "#8a5a2b", "longdash", "x"],
    ]],
    [panels.fail, "legend3", [
      ["eval_degenerate_rate", "degenerate", "#d0342c", "solid", "x"],
      ["eval_telling_rate", "telling", "#e07b00", "dash", "diamond"],
      ["eval_closed_question_rate", "closed question", "#1f5fa8", "dot", "circle"],
      ["eval_leading_question_rate", "leading question", "#7b3fb0", "dashdot", "triangle-up"],
      ["eval_cut_off_rate", "cut off", "#555555", "longdash", "square"],
    ]],
  ];
  for (const [panel, legend, lines] of evalPanels) {
    for (const [col, name, color, dash, symbol] of lines) {
      line(panel, col, name, { color, dash, symbol, sparse: true }, legend);
    }
  }

  // 3-5. Optimizer and throughput panels.
  line(panels.lr, "learning_rate", "learning rate", { color: "#1f5fa8" });
  const gn = line(panels.gnorm, "grad_norm", "grad norm", { color: "#b5367a", width: 1.4 });
  line(panels.tps, "tokens_per_second", "tokens/s", { color: "#2a7d4f", width: 1.4 });

  // Title: version, model, best eval loss and its step.
  let best = "no eval yet · 評価待ち";
  if (evalLoss.y.length) {
    let bi = 0;
    evalLoss.y.forEach((v, i) => {
      if (v < evalLoss.y[bi]) bi = i;
    });
    const bl = evalLoss.y[bi];
    best = `best eval loss ${bl.toFixed(4)} (ppl ${Math.exp(bl).toPrecision(4)}) at step ${evalLoss.x[bi]}`;
  }
  const maxOf = (col: string) =>
    rows.reduce((m, r) => (isNum(r[col]) ? Math.max(m, r[col] as number) : m), -Infinity);
  const lastStep = maxOf("step"), lastEpoch = maxOf("epoch");
  const progress = [
    lastStep > -Infinity ? `step ${lastStep}` : "",
    lastEpoch > -Infinity ? `epoch ${lastEpoch.toFixed(2)}` : "",
  ].filter((s) => s !== "").join(" · ");
  const titleTop = [`maieutic · ${meta.version}`, meta.modelName ?? ""].filter((s) => s !== "").join(" · ");
  const titleBottom = [best, progress].filter((s) => s !== "").join(" | ");

  const heads: [Panel, string][] = [
    [panels.loss, `Loss · 損失${logLoss ? " (log scale)" : ""}`],
    [panels.score, "Socratic scores · ソクラテス的指標 (0–1)"],
    [panels.fail, "Socratic failures · 失敗の割合 (share, lower is better)"],
    [panels.lr, "Learning rate · 学習率"],
    [panels.gnorm, "Gradient norm (pre-clip) · 勾配ノルム"],
    [panels.tps, "Throughput · 処理速度"],
  ];

  const layout: PlotlyObject = {
    ...baseLayout({
      width: meta.width,
      height: meta.height,
      fontFamily: meta.fontFamily,
      top: 108,
      title: { text: titleTop, subtitle: { text: titleBottom, font: { size: 13, color: "#444" } } },
    }),
    uirevision: "keep",
    legend: {
      x: panels.loss.x[1],
      xanchor: "right",
      y: panels.loss.y[1],
      yanchor: "top",
      bgcolor: "rgba(255,255,255,0.85)",
      bordercolor: "#c8c8c8",
      borderwidth: 1,
    },
    legend2: {
      x: panels.score.x[1] + 0.012,
      xanchor: "left",
      y: panels.score.y[1],
      yanchor: "top",
      bgcolor: "rgba(255,255,255,0)",
      title: { text: "eval (generation)" },
    },
    legend3: {
      x: panels.fail.x[1] + 0.012,
      xanchor: "left",
      y: panels.fail.y[1],
      yanchor: "top",
      bgcolor: "rgba(255,255,255,0)",
      title: { text: "failure rates" },
    },
    shapes: [] as PlotlyObject[],
  };

  for (const [p, head] of heads) {
    const y: PlotlyObject = {};
    // Log ticks labelled with their values (Plotly's default labels minor ticks with a bare digit).
    if (p.n === 1 && logLoss) Object.assign(y, { type: "log", dtick: "D2", tickformat: ".2~g" });
    if (p.n === 2 || p.n === 6) y.range = [-0.03, 1.03];
    if (p.n === 3) Object.assign(y, { exponentformat: "power", showexponent: "all", rangemode: "tozero" });
    if (p.n === 4 || p.n === 5) y.rangemode = "tozero";
    addPanel(layout, p, head, {
      empty: !filled.has(p.n),
      emptyText: "no data yet · データなし",
      // The Socratic panels share their steps: the upper one leaves its axis title to the lower one.
      xaxis: p.n === 1 ? {} : { matches: "x", ...(p.n === 2 ? { title: { text: "" } } : {}) },
      yaxis: y,
    });
  }

  if (isNum(meta.maxGradNorm) && gn.x.length) {
    layout.shapes.push({
      type: "line",
      xref: "x4 domain",
      yref: "y4",
      x0: 0,
      x1: 1,
      y0: meta.maxGradNorm,
      y1: meta.maxGradNorm,
      line: { color: "#555", width: 1, dash: "dot" },
    });
    layout.annotations.push({
      text: `clip ${meta.maxGradNorm}`,
      xref: "x4 domain",
      yref: "y4",
      x: 1,
      y: meta.maxGradNorm,
      xanchor: "right",
      yanchor: "bottom",
      showarrow: false,
      font: { size: 11, color: "#555" },
    });
  }

  return { data, layout };
}
