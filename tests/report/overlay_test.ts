// `maieutic report a b` (src/report/overlay.ts): several runs on one dashboard, each named by its directory
// and drawn in its own colour in every panel; PNG and HTML written beside the runs (or --out).
import assert from "node:assert/strict";
import { join } from "node:path";
import { run } from "../../src/cli/report.ts";
import { buildOverlayFigure, commonParent, runNames } from "../../src/report/overlay.ts";
import { parseCsv } from "../../src/report/metrics_csv.ts";
import { UsageError } from "../../src/util/errors.ts";
import { decodePng } from "./png.ts";
import { csvText, syntheticRows } from "./synthetic.ts";

async function runDir(root: string, name: string, csv: string): Promise<string> {
  const dir = join(root, name);
  await Deno.mkdir(join(dir, "logs"), { recursive: true });
  await Deno.writeTextFile(join(dir, "logs", "training_metrics.csv"), csv);
  return dir;
}

/** Pixels within `tol` of an RGB colour. */
function countColour(img: ReturnType<typeof decodePng>, rgb: [number, number, number], tol = 24): number {
  let n = 0;
  for (let i = 0; i < img.width * img.height; i++) {
    const o = i * img.channels;
    if (rgb.every((c, k) => Math.abs(img.pixels[o + k] - c) <= tol)) n++;
  }
  return n;
}

Deno.test("overlay: runs are named by their directories, with parents only where names collide", () => {
  assert.deepEqual(runNames(["/x/models/1gouki", "/x/models/2gouki"]), ["1gouki", "2gouki"]);
  assert.deepEqual(runNames(["/x/a/1gouki", "/x/b/1gouki"]), ["a/1gouki", "b/1gouki"]);
  assert.equal(commonParent(["/x/models/a", "/x/models/b"]), "/x/models");
  assert.equal(commonParent(["/x/a/run", "/x/b/c/run"]), "/x");
});

Deno.test("overlay: every panel carries every run; one legend entry per run; older runs' headline column", () => {
  const a = parseCsv(csvText(syntheticRows(40, 10))).rows;
  // An older run: the headline figure was called eval_socratic_pattern_score, no throughput column.
  const b = parseCsv(
    "step,epoch,loss,learning_rate,grad_norm,eval_loss,eval_socratic_pattern_score\n" +
      "1,0.1,3,0.001,1,,\n2,0.2,2.5,0.001,0.9,,\n2,0.2,,,,2.7,0.4\n",
  ).rows;
  const fig = buildOverlayFigure([{ name: "run-a", rows: a }, { name: "run-b", rows: b }]);
  const of = (name: string) => fig.data.filter((t) => t.name === name);
  // run-a: train loss, eval loss, Socratic score, 4 other figures, lr, grad norm, tokens/s.
  assert.equal(of("run-a").length, 10);
  // run-b: train loss, eval loss, Socratic score (old name), lr, grad norm.
  assert.equal(of("run-b").length, 5);
  assert.deepEqual(fig.data.filter((t) => t.showlegend).map((t) => t.name), ["run-a", "run-b"]);
  const colours = (name: string) => new Set(of(name).map((t) => t.line.color));
  assert.equal(colours("run-a").size, 1);
  assert.notDeepEqual([...colours("run-a")], [...colours("run-b")]);
  const score = fig.data.filter((t) => t.xaxis === "x2").map((t) => t.name);
  assert.deepEqual(score, ["run-a", "run-b"], "both runs on the Socratic score panel");
});

Deno.test("cli report a b: one PNG and HTML overlaying both runs, beside them or in --out", async () => {
  const root = await Deno.makeTempDir({ prefix: "maieutic-overlay-" });
  try {
    const a = await runDir(root, "lr8e-5", csvText(syntheticRows(30, 5)));
    const slower = syntheticRows(30, 5).map((r) => ({ ...r, ...(r.loss ? { loss: r.loss * 1.5 } : {}) }));
    const b = await runDir(root, "lr2e-5", csvText(slower));
    assert.equal(await run([a, b, "--width", "1000", "--height", "700"]), 0);
    const img = decodePng(await Deno.readFile(join(root, "compare_plot.png")));
    assert.deepEqual([img.width, img.height], [1000, 700]);
    // Both runs are drawn: the first run's blue (#0072B2) and the second's vermilion (#D55E00).
    const blue = countColour(img, [0, 114, 178]), red = countColour(img, [213, 94, 0]);
    assert.ok(blue > 300 && red > 300, `run colours in the PNG: ${blue} blue, ${red} vermilion pixels`);
    const html = await Deno.readTextFile(join(root, "compare_plot.html"));
    assert.ok(html.includes('"name":"lr8e-5"') && html.includes('"name":"lr2e-5"'), "both runs in the HTML");
    assert.ok(!html.includes("<script src="), "the HTML loads nothing external");
    // The runs' own dashboards are not touched.
    for (const d of [a, b]) {
      assert.deepEqual((await Array.fromAsync(Deno.readDir(join(d, "logs")))).map((e) => e.name), [
        "training_metrics.csv",
      ]);
    }
    const out = join(root, "cmp");
    assert.equal(await run([a, b, "--out", out]), 0);
    assert.ok((await Deno.stat(join(out, "compare_plot.png"))).isFile);
    await assert.rejects(() => run([a, b, "--live"]), UsageError);
    await assert.rejects(() => run([a, join(root, "missing")]), (e: Error) => /not found/.test(e.message));
    await assert.rejects(() => run([a, "--out", out]), UsageError);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
