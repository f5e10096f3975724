/**
 * logs/metrics_plot.html: the dashboard as an interactive page that works offline — plotly.min.js, the CSV and
 * the figure builder are inlined (no external script or style). While the run is live it refreshes itself:
 * served over http(s) it re-fetches training_metrics.csv (beside it in logs/) every 5 s and redraws in place,
 * keeping zoom; opened from file:// (where fetch is blocked) it reloads the page every 15 s, and the final
 * render (live = false) stops that.
 */
import plotlySource from "plotly.js-dist-min/plotly.min.js" with { type: "text" };
import { parseCsv } from "./metrics_csv.ts";
import { buildFigure, type FigureMeta } from "./figure.ts";
import { figureParts } from "./figure_parts.ts";

/** Makes text safe inside <script>: `<!--`, `<script` and `</script` cannot appear (JS strings keep meaning). */
export function scriptSafe(js: string): string {
  return js.replace(/<(?=!--|\/?script)/gi, "\\x3C");
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

/** A JSON literal safe inside <script>. */
export function jsonLiteral(v: unknown): string {
  return JSON.stringify(v).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(
    /\u2029/g,
    "\\u2029",
  );
}

export function buildHtml(csvText: string, meta: FigureMeta, opts: { live: boolean }): string {
  const title = `maieutic · ${meta.version}${
    meta.modelName ? ` · ${meta.modelName}` : ""
  } — training metrics`;
  // The page builds the same figure as the PNG, without fixed size (it fills the window).
  const pageMeta: FigureMeta = { ...meta, width: undefined, height: undefined };
  const app = `"use strict";
(function () {
  var META = ${jsonLiteral(pageMeta)};
  var LIVE = ${opts.live ? "true" : "false"};
  var csv = ${jsonLiteral(csvText)};
  var parseCsv = ${parseCsv.toString()};
  var figureParts = ${figureParts.toString()};
  var buildFigure = ${buildFigure.toString()};
  var el = document.getElementById("plot");
  var status = document.getElementById("status");
  function draw(text) {
    var fig = buildFigure(parseCsv(text).rows, META);
    delete fig.layout.width;
    delete fig.layout.height;
    fig.layout.autosize = true;
    Plotly.react(el, fig.data, fig.layout, { responsive: true, displaylogo: false });
    status.textContent = (LIVE ? "live · updated " : "final · rendered ") + new Date().toLocaleTimeString();
  }
  draw(csv);
  if (!LIVE) return;
  if (location.protocol === "file:") {
    setTimeout(function () { location.reload(); }, 15000);
    return;
  }
  setInterval(function () {
    fetch("training_metrics.csv", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (t) { if (t && t !== csv) { csv = t; draw(t); } })
      .catch(function () {});
  }, 5000);
})();
`;
  return plotPage(title, app, {
    css:
      "  #status { position: fixed; right: 8px; bottom: 4px; font-size: 11px; color: #777; z-index: 10; }\n",
    html: '<div id="status"></div>\n',
  });
}

/**
 * A page that works offline: plotly.min.js and `app` (the script that draws into #plot) inlined, the plot filling
 * the window; `extra` adds CSS rules and elements after #plot.
 */
export function plotPage(title: string, app: string, extra: { css?: string; html?: string } = {}): string {
  return `<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  html, body { margin: 0; padding: 0; background: #fff; font-family: "DejaVu Sans", "Noto Sans JP", sans-serif; }
  #plot { width: 100vw; height: max(100vh, 760px); }
${extra.css ?? ""}</style>
</head>
<body>
<div id="plot"></div>
${extra.html ?? ""}<script>${scriptSafe(plotlySource)}</script>
<script>${scriptSafe(app)}</script>
</body>
</html>
`;
}
