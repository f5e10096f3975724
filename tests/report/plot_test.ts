/**
 * The dashboard end to end: synthetic training_metrics.csv -> figure -> SVG (headless Plotly) -> PNG (resvg),
 * and the interactive HTML. Issue #8's checks: the PNG decodes with the configured size and is not blank, the SVG
 * holds every trace, degenerate CSVs render, labels do not overlap, the HTML embeds its data and loads nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Window } from "happy-dom";
import { parseCsv } from "../../src/report/metrics_csv.ts";
import { buildFigure, type Figure } from "../../src/report/figure.ts";
import { figureParts } from "../../src/report/figure_parts.ts";
import { DEFAULT_FAMILY, FIGURE_FONT_FAMILY, FONTS } from "../../src/report/fonts.ts";
import {
  closeReportRenderer,
  countTraces,
  renderFigure,
  renderReport,
  ReportScheduler,
} from "../../src/report/plot.ts";
import { clientBox, type DomNode, TextShaper } from "../../src/report/text_layout.ts";
import { csvText, makeRunDir, syntheticRows } from "./synthetic.ts";
import { decodePng, hasPngSignature, lumaVariance } from "./png.ts";

const MODEL = "google/gemma-2-2b-jpn-it";
const shaper = new TextShaper(FONTS, DEFAULT_FAMILY);

function figureFor(csv: string, width = 1200, height = 800): Figure {
  return buildFigure(parseCsv(csv).rows, {
    version: "1gouki",
    modelName: MODEL,
    fontFamily: FIGURE_FONT_FAMILY,
    width,
    height,
    decimateTo: width,
  });
}

/** Boxes of every non-empty <text> of an SVG, as laid out for resvg. */
async function textBoxes(svg: string) {
  const win = new Window();
  try {
    win.document.body.innerHTML = svg;
    const out: { text: string; x0: number; y0: number; x1: number; y1: number }[] = [];
    for (const t of win.document.querySelectorAll("text")) {
      const text = (t.textContent ?? "").trim();
      if (!text) continue;
      const b = clientBox(shaper, t as unknown as DomNode);
      if (b.width > 0) out.push({ text, x0: b.x, y0: b.y, x1: b.x + b.width, y1: b.y + b.height });
    }
    return out;
  } finally {
    await win.happyDOM.close();
  }
}

/** Pairs of text boxes overlapping by more than `tol` px in both directions. */
function overlaps(boxes: Awaited<ReturnType<typeof textBoxes>>, tol = 0.5): string[] {
  const bad: string[] = [];
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      const ox = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0),
        oy = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
      if (ox > tol && oy > tol) {
        bad.push(`"${a.text}" x "${b.text}" (${ox.toFixed(1)} x ${oy.toFixed(1)} px)`);
      }
    }
  }
  return bad;
}

async function listDir(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("report: a synthetic 30-row run renders a valid, non-blank PNG of the configured size and the HTML", async () => {
  const dir = await makeRunDir(csvText(syntheticRows(30, 5)), { modelName: MODEL });
  try {
    const r = await renderReport(dir, { inProcess: true, width: 1200, height: 800 });
    assert.equal(r.rows, 36);
    assert.equal(
      r.traces,
      15,
      "train loss, eval loss, 5 Socratic scores, 5 failure rates, lr, grad norm, tokens/s",
    );
    const png = await Deno.readFile(join(dir, "logs", "metrics_plot.png"));
    assert.ok(hasPngSignature(png));
    const img = decodePng(png);
    assert.deepEqual([img.width, img.height], [1200, 800]);
    assert.ok(lumaVariance(img) > 200, `PNG looks blank (luma variance ${lumaVariance(img)})`);
    assert.deepEqual(await listDir(join(dir, "logs")), [
      "metrics_plot.html",
      "metrics_plot.png",
      "training_metrics.csv",
    ], "atomic writes leave no temp files");
    const html = await Deno.readTextFile(join(dir, "logs", "metrics_plot.html"));
    assert.ok(html.includes("maieutic · 1gouki · google/gemma-2-2b-jpn-it"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report: the SVG stage holds every trace; titles and tick labels do not overlap (30 and 10,000 rows)", async () => {
  for (const [n, width, height] of [[30, 1200, 800], [10000, 1200, 800], [300, 1600, 1000]]) {
    const fig = figureFor(csvText(syntheticRows(n, Math.max(1, Math.round(n / 6)))), width, height);
    const r = await renderFigure(fig);
    assert.equal(r.traces, fig.data.length);
    assert.equal(countTraces(r.svg), n > 100 ? 16 : 15, "long runs add the smoothed train loss");
    assert.ok(r.svg.includes("Loss · 損失") && r.svg.includes(MODEL));
    const boxes = await textBoxes(r.svg);
    assert.ok(boxes.length > 40, `only ${boxes.length} labels`);
    assert.deepEqual(overlaps(boxes), [], `${n} rows at ${width}x${height}`);
    // Every label lies inside the image.
    for (const b of boxes) {
      assert.ok(b.x0 >= 0 && b.y0 >= 0 && b.x1 <= width && b.y1 <= height, `"${b.text}" outside the image`);
    }
  }
});

Deno.test("report: one row, missing columns and a header-only CSV render; empty series are omitted", async () => {
  const cases: [string, number, string][] = [
    ["step,epoch,loss,learning_rate,grad_norm,tokens_per_second\n1,0.1,2.5,0,1.2,1500\n", 4, "no eval yet"],
    ["step,loss,eval_loss\n1,2.5,\n2,2.3,\n3,2.2,2.4\n4,2.0,\n", 2, "best eval loss 2.4000"],
    ["loss\n3\n2\n", 1, "no eval yet"],
    ["step,epoch,loss,eval_loss\n", 0, "no eval yet"],
    ["", 0, "no eval yet"],
  ];
  for (const [csv, traces, subtitle] of cases) {
    const dir = await makeRunDir(csv);
    try {
      const r = await renderReport(dir, { inProcess: true, width: 800, height: 600, scale: 1.5 });
      assert.equal(r.traces, traces, csv);
      const img = decodePng(await Deno.readFile(r.png));
      assert.deepEqual([img.width, img.height], [1200, 900], "IHDR = size x scale");
      assert.ok(lumaVariance(img) > 20);
      const fig = figureFor(csv);
      assert.equal(fig.data.length, traces);
      assert.ok(fig.layout.title.subtitle.text.includes(subtitle), fig.layout.title.subtitle.text);
      assert.ok(fig.data.every((t) => t.x.length > 0), "no empty traces");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("report: figure details — log-y loss when the range spans a decade, best eval loss in the title", () => {
  const wide = "step,loss,eval_loss\n1,5,\n2,1,\n3,0.2,0.4\n4,0.1,0.3\n5,0.1,0.35\n";
  const fig = figureFor(wide);
  assert.equal(fig.layout.yaxis.type, "log");
  assert.ok(fig.layout.title.subtitle.text.startsWith("best eval loss 0.3000 (ppl 1.350) at step 4"));
  const narrow = figureFor("step,loss\n1,2\n2,1.5\n3,1.2\n");
  assert.equal(narrow.layout.yaxis.type, undefined);
  // Grayscale: the five score lines differ in dash and marker.
  const scores = figureFor(csvText(syntheticRows(30, 5))).data.filter((t) => t.legend === "legend2");
  assert.equal(new Set(scores.map((t) => t.line.dash)).size, 5);
  assert.equal(new Set(scores.map((t) => t.marker.symbol)).size, 5);
  // The PNG path reduces long series per pixel column; the HTML keeps every point.
  const long = parseCsv(csvText(syntheticRows(10000, 1000))).rows;
  const full = buildFigure(long, { version: "v" }),
    reduced = buildFigure(long, { version: "v", decimateTo: 1200 });
  assert.equal(full.data.find((t) => t.name === "grad norm")!.x.length, 10000);
  assert.ok(reduced.data.find((t) => t.name === "grad norm")!.x.length <= 4 * Math.ceil(0.27 * 1200));
});

Deno.test("report: buildFigure (with figureParts only) and parseCsv are self-contained (the HTML page runs their source)", () => {
  const rows = parseCsv(csvText(syntheticRows(40, 10))).rows;
  const meta = { version: "1gouki", modelName: MODEL, maxGradNorm: 1 };
  const parts = new Function(`return (${figureParts.toString()})`)() as typeof figureParts;
  const isolated = new Function("figureParts", `return (${buildFigure.toString()})`)(
    parts,
  ) as typeof buildFigure;
  assert.deepEqual(isolated(rows, meta), buildFigure(rows, meta));
  const isolatedParse = new Function(`return (${parseCsv.toString()})`)() as typeof parseCsv;
  assert.deepEqual(isolatedParse("a,b\n1,2\n"), parseCsv("a,b\n1,2\n"));
});

Deno.test("report: the HTML embeds plotly and the data, loads nothing external, and draws offline", async () => {
  const csv = csvText(syntheticRows(30, 5));
  const dir = await makeRunDir(csv, { modelName: MODEL });
  try {
    await renderReport(dir, { inProcess: true, live: false });
    const html = await Deno.readTextFile(join(dir, "logs", "metrics_plot.html"));
    assert.ok(html.includes(JSON.stringify(csv).slice(0, 200)), "CSV embedded");
    assert.ok(html.includes("plotly.js v4.1.2"), "plotly inlined");
    assert.doesNotMatch(html, /<script[^>]*\ssrc\s*=/i);
    assert.doesNotMatch(html, /<link[^>]*\shref\s*=\s*["']?(https?:)?\/\//i);
    assert.doesNotMatch(html, /@import\s+(url\()?["']?(https?:)?\/\//i);
    assert.match(html, /var LIVE = false;/);

    // Open it as a file:// page in a headless DOM with network loading disabled: it must draw every trace.
    const win = new Window({
      url: `file://${join(dir, "logs", "metrics_plot.html")}`,
      settings: {
        enableJavaScriptEvaluation: true,
        suppressInsecureJavaScriptEnvironmentWarning: true,
        disableJavaScriptFileLoading: true,
        disableCSSFileLoading: true,
      },
    });
    try {
      win.document.write(html);
      await win.happyDOM.waitUntilComplete();
      const gd = win.document.getElementById("plot") as unknown as { data?: unknown[] };
      assert.equal(gd.data?.length, 15);
      assert.ok(win.document.querySelectorAll(".main-svg").length > 0);
    } finally {
      await win.happyDOM.close();
    }

    await renderReport(dir, { inProcess: true, live: true });
    const live = await Deno.readTextFile(join(dir, "logs", "metrics_plot.html"));
    assert.match(live, /var LIVE = true;/);
    assert.match(live, /fetch\("training_metrics\.csv"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await closeReportRenderer();
  }
});

Deno.test("report: background rendering in the worker; renders never overlap; requests coalesce", async () => {
  const dir = await makeRunDir(csvText(syntheticRows(60, 10)), { modelName: MODEL });
  try {
    // Two renders fired together run one after the other.
    const [a, b] = await Promise.all([renderReport(dir), renderReport(dir, { width: 1000, height: 700 })]);
    assert.ok(b.startedAt >= a.startedAt + a.ms - 5, "second render started before the first ended");
    assert.deepEqual(
      [decodePng(await Deno.readFile(b.png)).width, decodePng(await Deno.readFile(b.png)).height],
      [1000, 700],
    );

    // The scheduler: request() returns at once; a burst collapses into at most one follow-up render.
    const errors: unknown[] = [];
    const sched = new ReportScheduler(dir, { live: true }, (e) => errors.push(e));
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) sched.request();
    assert.ok(performance.now() - t0 < 50, "request() must not block");
    const last = await sched.idle();
    assert.ok(last);
    assert.equal(sched.renders, 2, "the first request renders, the other four collapse into one more");
    assert.equal(errors.length, 0);
    assert.match(await Deno.readTextFile(last!.html), /var LIVE = true;/);

    // Errors go to onError, never thrown.
    const broken = new ReportScheduler(join(dir, "missing"), {}, (e) => errors.push(e));
    broken.request();
    await broken.idle();
    assert.equal(errors.length, 1);
  } finally {
    await closeReportRenderer();
    await Deno.remove(dir, { recursive: true });
  }
});
