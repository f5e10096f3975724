/**
 * Dashboard rendering without a browser (issue #8, docs/ARCHITECTURE.md#the-output-tree): training_metrics.csv -> Plotly figure
 * (src/report/figure.ts) -> SVG from Plotly.toImage inside a headless DOM (npm:happy-dom, with real text metrics
 * from src/report/text_layout.ts) -> PNG via npm:@resvg/resvg-wasm with embedded fonts (src/report/fonts.ts);
 * plus the interactive logs/metrics_plot.html (src/report/html.ts).
 *
 * Plotly, the fonts and the wasm are imports (text/bytes), so `deno compile` carries them; nothing is read from
 * the source tree, no system font, browser or network is used. The only file outside the run directory is a V8
 * code cache of plotly.min.js in the maieutic cache directory (optional; it makes loading Plotly ~3x faster).
 *
 * The trainer fires renders in the background: `ReportScheduler.request()` never blocks (the work runs in a
 * worker thread, src/report/render_worker.ts), renders never overlap (one at a time per process), and requests
 * made during a render collapse into one follow-up render with the latest options.
 */
import plotlySource from "plotly.js-dist-min/plotly.min.js" with { type: "text" };
import resvgWasm from "@resvg/resvg-wasm/index_bg.wasm" with { type: "bytes" };
import { initWasm, Resvg } from "@resvg/resvg-wasm";
import { Window } from "happy-dom";
import { Worker } from "node:worker_threads";
import vm from "node:vm";
import { basename, dirname, join, resolve } from "node:path";
import { parseCsv } from "./metrics_csv.ts";
import { buildFigure, type Figure, type FigureMeta } from "./figure.ts";
import { buildHtml } from "./html.ts";
import { DEFAULT_FAMILY, FIGURE_FONT_FAMILY, FONTS } from "./fonts.ts";
import { installSvgTextMetrics, type PatchableWindow, TextShaper } from "./text_layout.ts";
import { writeFileAtomic } from "../util/atomic.ts";

export const DEFAULT_WIDTH = 1400;
export const DEFAULT_HEIGHT = 900;

export interface ReportOptions {
  /** Figure size in CSS px (default 1400 x 900). */
  width?: number;
  height?: number;
  /** PNG pixels per CSS px (default 1): the PNG is (width*scale) x (height*scale) pixels. */
  scale?: number;
  /** True while training runs: the HTML page keeps polling for new data. */
  live?: boolean;
  /** Overrides model.name from model/training_config.json. */
  modelName?: string;
  /** Render on the calling thread instead of the render worker (the CLI does; the trainer should not). */
  inProcess?: boolean;
}

export interface ReportResult {
  /** Paths written. */
  png: string;
  html: string;
  /** When the render started (epoch ms) and its wall time in milliseconds. */
  startedAt: number;
  ms: number;
  rows: number;
  /** Number of traces drawn in the SVG stage. */
  traces: number;
}

export interface RenderedFigure {
  svg: string;
  png: Uint8Array;
  traces: number;
  width: number;
  height: number;
}

// ---------------------------------------------------------------------------------------------------------------
// The engine: one happy-dom window with Plotly loaded, one resvg instance, one text shaper per thread.

interface PlotlyApi {
  toImage(
    fig: Figure & { config?: Record<string, unknown> },
    opts: { format: "svg"; width: number; height: number; imageDataOnly?: boolean },
  ): Promise<string>;
}

/** A headless Plotly: load once (~1 s to evaluate plotly.min.js; ~0.3 s with the code cache), render many times. */
export class PlotEngine {
  private renders = 0;
  private constructor(
    private readonly win: Window,
    private readonly plotly: PlotlyApi,
    readonly shaper: TextShaper,
    private codeCache: CodeCache | null,
  ) {}

  static async create(): Promise<PlotEngine> {
    const wasm = initResvg(); // compiles on V8's background threads meanwhile
    const shaper = sharedShaper();
    const win = new Window({
      width: 1600,
      height: 1200,
      url: "http://localhost/",
      settings: {
        enableJavaScriptEvaluation: true,
        suppressInsecureJavaScriptEnvironmentWarning: true,
        disableJavaScriptFileLoading: true,
        disableCSSFileLoading: true,
        navigation: { disableMainFrameNavigation: true, disableChildFrameNavigation: true },
      },
    });
    installSvgTextMetrics(win as unknown as PatchableWindow, shaper);
    // Only our own bundled plotly.min.js is evaluated in the window (a VM context happy-dom created).
    const cache = await CodeCache.open();
    const script = new vm.Script(plotlySource, { filename: "plotly.min.js", cachedData: cache.data });
    script.runInContext(win as unknown as vm.Context);
    const plotly = (win as unknown as { Plotly?: PlotlyApi }).Plotly;
    if (!plotly) throw new Error("plotly.js did not load in the headless DOM");
    await wasm;
    const stale = !cache.data || script.cachedDataRejected === true;
    return new PlotEngine(win, plotly, shaper, stale ? cache.with(script) : null);
  }

  /** The figure as SVG, laid out by Plotly with real text metrics. */
  async toSvg(fig: Figure, width: number, height: number): Promise<string> {
    this.renders++;
    const svg = await this.plotly.toImage(
      { data: fig.data, layout: fig.layout, config: { staticPlot: true } },
      { format: "svg", width, height, imageDataOnly: true },
    );
    if (typeof svg !== "string" || !svg.startsWith("<svg")) throw new Error("Plotly.toImage returned no SVG");
    // After the first render the code cache also holds the functions a render compiles.
    const cc = this.codeCache;
    this.codeCache = null;
    await cc?.save();
    return svg;
  }

  get renderCount(): number {
    return this.renders;
  }

  async close(): Promise<void> {
    await this.win.happyDOM.close();
  }
}

/**
 * V8 code cache of plotly.min.js (node:vm cachedData) in $MAIEUTIC_CACHE, else $XDG_CACHE_HOME/maieutic, else
 * ~/.cache/maieutic: cuts loading Plotly from ~1 s to ~0.3 s. Keyed by the source (version, length, sampled hash) and the V8 version;
 * V8 rejects a cache that does not match, and any I/O failure just means no cache.
 */
class CodeCache {
  private script: vm.Script | null = null;
  private constructor(readonly path: string | null, readonly data: Uint8Array | undefined) {}

  static async open(): Promise<CodeCache> {
    try {
      const path = join(cacheRoot(), "plotly", `plotly-${sourceKey()}-v8-${Deno.version.v8}.bin`);
      const data = await Deno.readFile(path).catch(() => undefined);
      return new CodeCache(path, data);
    } catch {
      return new CodeCache(null, undefined);
    }
  }

  with(script: vm.Script): CodeCache {
    this.script = script;
    return this;
  }

  async save(): Promise<void> {
    if (!this.path || !this.script) return;
    try {
      await writeFileAtomic(this.path, this.script.createCachedData());
      // Caches of other plotly or V8 versions are dead weight.
      const dir = dirname(this.path);
      for await (const e of Deno.readDir(dir)) {
        if (e.isFile && /^plotly-.*\.bin$/.test(e.name) && e.name !== basename(this.path)) {
          await Deno.remove(join(dir, e.name)).catch(() => {});
        }
      }
    } catch { /* read-only or missing home: run without a cache */ }
  }
}

/** Plotly's version (from its banner), source length and a sampled hash: cheap, and enough next to V8's checks. */
function sourceKey(): string {
  const version = /plotly\.js v([\w.-]+)/.exec(plotlySource.slice(0, 200))?.[1] ?? "unknown";
  let h = 0x811c9dc5;
  for (let i = 0; i < plotlySource.length; i += 97) h = Math.imul(h ^ plotlySource.charCodeAt(i), 0x01000193);
  return `${version}-${plotlySource.length}-${(h >>> 0).toString(16)}`;
}

function cacheRoot(): string {
  const own = Deno.env.get("MAIEUTIC_CACHE");
  if (own) return own;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE") ?? ".";
  return join(xdg || join(home, ".cache"), "maieutic");
}

let resvgReady: Promise<void> | null = null;
function initResvg(): Promise<void> {
  resvgReady ??= initWasm(resvgWasm).catch((e) => {
    // Another module of this process may have initialized resvg-wasm already.
    if (e instanceof Error && /already initialized/i.test(e.message)) return;
    resvgReady = null;
    throw e;
  });
  return resvgReady;
}

let shaper: TextShaper | null = null;
function sharedShaper(): TextShaper {
  shaper ??= new TextShaper(FONTS, DEFAULT_FAMILY);
  return shaper;
}

/** SVG -> PNG with resvg and the embedded fonts (no system fonts). */
export async function svgToPng(svg: string, scale = 1): Promise<Uint8Array> {
  await initResvg();
  const r = new Resvg(svg, {
    font: {
      fontBuffers: FONTS.map((f) => f.bytes),
      defaultFontFamily: DEFAULT_FAMILY,
      sansSerifFamily: DEFAULT_FAMILY,
      serifFamily: DEFAULT_FAMILY,
      monospaceFamily: DEFAULT_FAMILY,
      cursiveFamily: DEFAULT_FAMILY,
      fantasyFamily: DEFAULT_FAMILY,
      defaultFontSize: 12,
    },
    fitTo: scale === 1 ? { mode: "original" } : { mode: "zoom", value: scale },
    background: "#ffffff",
    shapeRendering: 2,
    textRendering: 1,
  });
  try {
    const img = r.render();
    try {
      return img.asPng();
    } finally {
      img.free();
    }
  } finally {
    r.free();
  }
}

let engine: Promise<PlotEngine> | null = null;
/** Engines are recycled now and then so a long run does not accumulate DOM garbage. */
const RENDERS_PER_ENGINE = 50;

async function getEngine(): Promise<PlotEngine> {
  if (engine) {
    const e = await engine.catch(() => null);
    if (e && e.renderCount < RENDERS_PER_ENGINE) return e;
    engine = null;
    await e?.close().catch(() => {});
  }
  engine = PlotEngine.create();
  engine.catch(() => engine = null);
  return engine;
}

/** Counts the traces Plotly drew (one `g.trace` group per trace). */
export function countTraces(svg: string): number {
  return (svg.match(/class="trace [a-z]/g) ?? []).length;
}

/** Renders a figure to SVG and PNG on this thread. */
export async function renderFigure(fig: Figure, opts: { scale?: number } = {}): Promise<RenderedFigure> {
  const width = Number(fig.layout.width ?? DEFAULT_WIDTH),
    height = Number(fig.layout.height ?? DEFAULT_HEIGHT);
  const svg = await (await getEngine()).toSvg(fig, width, height);
  const png = await svgToPng(svg, opts.scale ?? 1);
  return { svg, png, traces: countTraces(svg), width, height };
}

// ---------------------------------------------------------------------------------------------------------------
// Run directory -> logs/metrics_plot.{png,html}

export function reportPaths(runDir: string): { csv: string; config: string; png: string; html: string } {
  return {
    csv: join(runDir, "logs", "training_metrics.csv"),
    config: join(runDir, "model", "training_config.json"),
    png: join(runDir, "logs", "metrics_plot.png"),
    html: join(runDir, "logs", "metrics_plot.html"),
  };
}

async function readRunMeta(configPath: string): Promise<Pick<FigureMeta, "modelName" | "maxGradNorm">> {
  try {
    const cfg = JSON.parse(await Deno.readTextFile(configPath));
    const name = cfg?.model?.name;
    const clip = cfg?.training?.max_grad_norm;
    return {
      modelName: typeof name === "string" ? name : undefined,
      maxGradNorm: typeof clip === "number" && Number.isFinite(clip) && clip > 0 ? clip : undefined,
    };
  } catch {
    return {}; // no config (yet) or unreadable: the title goes without the model name
  }
}

function checkSize(name: string, v: number | undefined, min: number, max: number): void {
  if (v !== undefined && !(Number.isFinite(v) && v >= min && v <= max)) {
    throw new RangeError(`report ${name} must be in [${min}, ${max}], got ${v}`);
  }
}

/** The render itself, on this thread (the worker calls this too). Not serialized: use renderReport. */
export async function renderReportNow(runDir: string, opts: ReportOptions = {}): Promise<ReportResult> {
  const startedAt = Date.now(), t0 = performance.now();
  checkSize("width", opts.width, 200, 8000);
  checkSize("height", opts.height, 200, 8000);
  checkSize("scale", opts.scale, 0.1, 8);
  const paths = reportPaths(runDir);
  const csvText = await Deno.readTextFile(paths.csv);
  const { rows } = parseCsv(csvText);
  const runMeta = await readRunMeta(paths.config);
  const meta: FigureMeta = {
    version: basename(resolve(runDir)),
    modelName: opts.modelName ?? runMeta.modelName,
    maxGradNorm: runMeta.maxGradNorm,
    fontFamily: FIGURE_FONT_FAMILY,
    width: Math.round(opts.width ?? DEFAULT_WIDTH),
    height: Math.round(opts.height ?? DEFAULT_HEIGHT),
  };
  // The PNG draws long series reduced per pixel column (same picture); the HTML keeps every point.
  const fig = buildFigure(rows, { ...meta, decimateTo: (meta.width ?? DEFAULT_WIDTH) * (opts.scale ?? 1) });
  const r = await renderFigure(fig, { scale: opts.scale });
  const html = buildHtml(csvText, meta, { live: opts.live ?? false });
  await writeFileAtomic(paths.png, r.png);
  await writeFileAtomic(paths.html, html);
  return {
    png: paths.png,
    html: paths.html,
    startedAt,
    ms: performance.now() - t0,
    rows: rows.length,
    traces: r.traces,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Worker client: keeps the render (a few hundred ms to seconds of CPU) off the training loop's thread.

interface Job {
  runDir: string;
  opts: ReportOptions;
  resolve: (r: ReportResult) => void;
  reject: (e: Error) => void;
}

class WorkerClient {
  private worker: Worker | null = null;
  private broken = false;
  private nextId = 1;
  private readonly jobs = new Map<number, Job>();

  run(runDir: string, opts: ReportOptions): Promise<ReportResult> {
    if (this.broken) return renderReportNow(runDir, opts);
    const w = this.ensure();
    if (!w) return renderReportNow(runDir, opts);
    return new Promise<ReportResult>((resolve, reject) => {
      const id = this.nextId++;
      this.jobs.set(id, { runDir, opts, resolve, reject });
      w.ref(); // a pending render keeps the process alive; an idle worker does not
      w.postMessage({ id, runDir, opts });
    });
  }

  private ensure(): Worker | null {
    if (this.worker) return this.worker;
    try {
      const w = new Worker(new URL("./render_worker.ts", import.meta.url));
      w.on("message", (m: { id: number; ok: boolean; result?: ReportResult; error?: string }) => {
        const job = this.jobs.get(m.id);
        if (!job) return;
        this.jobs.delete(m.id);
        if (!this.jobs.size) w.unref();
        if (m.ok && m.result) job.resolve(m.result);
        else job.reject(new Error(m.error ?? "render worker failed"));
      });
      w.on("error", (e: Error) => this.fail(w, e));
      w.on("exit", () => this.fail(w, new Error("render worker exited")));
      w.unref();
      this.worker = w;
      return w;
    } catch {
      // e.g. a compiled binary built without the worker module: render on this thread.
      this.broken = true;
      return null;
    }
  }

  /** The worker died or never started: finish its jobs on this thread and stop using workers. */
  private fail(w: Worker, _e: Error): void {
    if (this.worker !== w) return;
    this.worker = null;
    this.broken = true;
    const jobs = [...this.jobs.values()];
    this.jobs.clear();
    for (const j of jobs) renderReportNow(j.runDir, j.opts).then(j.resolve, j.reject);
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}

/**
 * Never called: a statically analyzable import makes `deno compile` embed the worker module (workers are otherwise
 * embedded only with `--include`). The module does nothing outside a worker.
 */
export const embedRenderWorker = (): Promise<unknown> => import("./render_worker.ts");

let client: WorkerClient | null = null;
let tail: Promise<unknown> = Promise.resolve();

/**
 * Regenerates logs/metrics_plot.png and logs/metrics_plot.html of a run directory from its CSV (atomically).
 * Renders are serialized: a call waits for the previous one to finish, so two never overlap. By default the work
 * runs in a worker thread, so firing this from the training loop does not stall it; the caller must handle
 * rejection (or use ReportScheduler, which does).
 */
export function renderReport(runDir: string, opts: ReportOptions = {}): Promise<ReportResult> {
  const run = tail.then(() => {
    if (opts.inProcess) return renderReportNow(runDir, opts);
    client ??= new WorkerClient();
    return client.run(runDir, opts);
  });
  tail = run.catch(() => {});
  return run;
}

/** Releases the render worker and the in-process engine (after the last render; the process can exit anyway). */
export async function closeReportRenderer(): Promise<void> {
  await tail;
  const c = client;
  client = null;
  await c?.close();
  const e = engine;
  engine = null;
  if (e) await (await e.catch(() => null))?.close();
}

/**
 * Fire-and-forget rendering for the trainer: `request()` returns at once; while a render runs, further requests
 * collapse into one follow-up render with the latest options. Errors go to `onError` (never thrown).
 *
 *   const report = new ReportScheduler(runDir, { live: true });
 *   report.request();                         // after each eval
 *   report.request({ live: false });          // at the end of training
 *   await report.idle(); await closeReportRenderer();
 */
export class ReportScheduler {
  private running: Promise<void> | null = null;
  private pending: ReportOptions | null = null;
  /** The last successful render, and how many renders finished (successful or not). */
  last: ReportResult | undefined;
  renders = 0;

  constructor(
    readonly runDir: string,
    readonly defaults: ReportOptions = {},
    readonly onError: (e: unknown) => void = (e) =>
      console.warn(`warning: metrics plot not rendered: ${e instanceof Error ? e.message : e}`),
  ) {}

  request(opts: ReportOptions = {}): void {
    this.pending = { ...this.defaults, ...opts };
    this.running ??= this.drain();
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const o = this.pending;
      this.pending = null;
      try {
        this.last = await renderReport(this.runDir, o);
      } catch (e) {
        this.onError(e);
      }
      this.renders++;
    }
    this.running = null;
  }

  /** Resolves when nothing is rendering or queued; returns the last successful render. */
  async idle(): Promise<ReportResult | undefined> {
    while (this.running) await this.running;
    return this.last;
  }
}
