/**
 * The building blocks both dashboards are made of: a run's own (src/report/figure.ts) and several runs overlaid
 * (src/report/overlay.ts). Series from the CSV rows, a grid of panels (each an x/y axis pair in paper
 * coordinates with a heading, or a "no data" note where nothing was drawn), scatter traces and the page layout.
 *
 * `figureParts` must stay self-contained — no imports, no module-level helpers or constants — for the same
 * reason as `buildFigure`: src/report/html.ts embeds both sources in metrics_plot.html, which rebuilds the
 * figure in the browser. A test evaluates them in isolation to keep it that way.
 */
import type { MetricsRow, PlotlyObject } from "./figure.ts";

/** Points of one column, x = step. */
export interface Series {
  x: number[];
  y: number[];
}

/** A panel: its axis number (1 = x/y, n = xn/yn) and its domain in paper coordinates. */
export interface PanelBox {
  n: number;
  x: number[];
  y: number[];
}

export interface TraceStyle {
  color: string;
  dash?: string;
  symbol?: string;
  width?: number;
  /** Markers on every point (eval rows, short runs), so that a single row still shows. */
  markers: boolean;
}

export interface PanelOptions {
  /** Nothing was drawn in it: no axes, a note instead. */
  empty: boolean;
  emptyText: string;
  /** Properties of this panel's axes beyond the common ones (matches, range, type, ...). */
  xaxis?: PlotlyObject;
  yaxis?: PlotlyObject;
  /** Properties of the heading beyond the common ones (align, for a heading of several lines). */
  heading?: PlotlyObject;
}

export type FigureParts = ReturnType<typeof figureParts>;

export function figureParts() {
  const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

  // x = step (row number when the CSV has no step column); points sorted by step.
  const series = (rows: readonly MetricsRow[], col: string): Series => {
    const pts: [number, number][] = [];
    rows.forEach((r, i) => {
      const v = r[col];
      if (isNum(v)) pts.push([isNum(r.step) ? r.step : i + 1, v]);
    });
    pts.sort((a, b) => a[0] - b[0]);
    return { x: pts.map((p) => p[0]), y: pts.map((p) => p[1]) };
  };

  const axisIds = (p: PanelBox) => ({
    xaxis: p.n === 1 ? "x" : `x${p.n}`,
    yaxis: p.n === 1 ? "y" : `y${p.n}`,
  });

  /** A line trace of `s` on panel `p`, its hover naming `label`; callers add legend properties. */
  const scatter = (p: PanelBox, s: Series, name: string, label: string, style: TraceStyle): PlotlyObject => ({
    type: "scatter",
    mode: style.markers ? "lines+markers" : "lines",
    name,
    x: s.x,
    y: s.y,
    ...axisIds(p),
    line: { color: style.color, dash: style.dash ?? "solid", width: style.width ?? 1.8 },
    marker: { color: style.color, symbol: style.symbol ?? "circle", size: 6 },
    hovertemplate: `${label}: %{y:.4~g}<extra>step %{x}</extra>`,
  });

  /** The page: size, font, white background, a centred title above the panels, one hover box per step. */
  const baseLayout = (o: {
    width?: number;
    height?: number;
    fontFamily?: string;
    /** Top margin (px): the title and any legend above the panels. */
    top: number;
    title: PlotlyObject;
  }): PlotlyObject => ({
    width: o.width ?? 1400,
    height: o.height ?? 900,
    font: { family: o.fontFamily ?? '"DejaVu Sans", "Noto Sans JP", sans-serif', size: 12, color: "#222" },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    // Fixed margins, no automargin (it costs Plotly extra layout passes): each panel's heading names its
    // quantity, so y axes carry tick labels only.
    margin: { l: 64, r: 24, t: o.top, b: 56 },
    title: { ...o.title, x: 0.5, xanchor: "center", y: 0.985, yanchor: "top", font: { size: 18 } },
    hovermode: "x unified",
    annotations: [] as PlotlyObject[],
  });

  /** Adds panel `p` to `layout`: its two axes, its heading above its top-left corner, a note when empty. */
  const addPanel = (layout: PlotlyObject, p: PanelBox, head: string, o: PanelOptions): void => {
    const { xaxis, yaxis } = axisIds(p);
    const frame = {
      showline: true,
      linecolor: "#888",
      mirror: true,
      ticks: "outside",
      gridcolor: "#e6e6e6",
      zeroline: false,
    };
    // Plotly draws axes only for subplots with traces (and always for the first): an empty panel shows its
    // heading and a note, without axes, whichever panel it is.
    const hidden = o.empty ? { visible: false } : {};
    layout[xaxis.replace("x", "xaxis")] = {
      domain: p.x,
      anchor: yaxis,
      title: { text: "step", standoff: 6 },
      ...o.xaxis,
      ...frame,
      ...hidden,
    };
    layout[yaxis.replace("y", "yaxis")] = { domain: p.y, anchor: xaxis, ...frame, ...o.yaxis, ...hidden };
    layout.annotations.push({
      text: head,
      xref: "paper",
      yref: "paper",
      x: p.x[0],
      y: p.y[1],
      xanchor: "left",
      yanchor: "bottom",
      yshift: 4,
      showarrow: false,
      ...o.heading,
      font: { size: 13, color: "#111" },
    });
    if (o.empty) {
      layout.annotations.push({
        text: o.emptyText,
        xref: "paper",
        yref: "paper",
        x: (p.x[0] + p.x[1]) / 2,
        y: (p.y[0] + p.y[1]) / 2,
        showarrow: false,
        font: { size: 13, color: "#888" },
      });
    }
  };

  return { isNum, series, axisIds, scatter, baseLayout, addPanel };
}
