/**
 * The render worker (node:worker_threads): renders metrics_plot.{png,html} off the training loop's thread.
 * Messages in: {id, runDir, opts}; out: {id, ok, result} or {id, ok: false, error}. One render at a time.
 * `deno compile` embeds it through the never-called import in src/report/plot.ts (`--include
 * src/report/render_worker.ts` does the same); should it be missing, the client renders in the main thread.
 */
import { parentPort } from "node:worker_threads";
import { renderReportNow, type ReportOptions } from "./plot.ts";

if (parentPort) {
  const port = parentPort;
  let chain: Promise<void> = Promise.resolve();
  port.on("message", (m: { id: number; runDir: string; opts: ReportOptions }) => {
    chain = chain.then(async () => {
      try {
        const result = await renderReportNow(m.runDir, { ...m.opts, inProcess: true });
        port.postMessage({ id: m.id, ok: true, result });
      } catch (e) {
        port.postMessage({ id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) });
      }
    });
  });
}
