/** `maieutic report <run-dir>` (src/cli/report.ts): regenerates both files from the CSV alone; bad input is exit 2. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { run } from "../../src/cli/report.ts";
import { UsageError } from "../../src/util/errors.ts";
import { csvText, makeRunDir, syntheticRows } from "./synthetic.ts";
import { decodePng } from "./png.ts";

Deno.test("cli report: regenerates metrics_plot.png and metrics_plot.html from the CSV", async () => {
  const dir = await makeRunDir(csvText(syntheticRows(30, 5)), { modelName: "google/gemma-2-2b-jpn-it" });
  try {
    assert.equal(await run([dir, "--width", "1200", "--height", "800"]), 0);
    const img = decodePng(await Deno.readFile(join(dir, "logs", "metrics_plot.png")));
    assert.deepEqual([img.width, img.height], [1200, 800]);
    const html = await Deno.readTextFile(join(dir, "logs", "metrics_plot.html"));
    assert.ok(html.includes("google/gemma-2-2b-jpn-it"), "model name from model/training_config.json");
    assert.match(html, /var LIVE = false;/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli report: usage errors", async () => {
  const dir = await makeRunDir("step,loss\n1,2\n");
  try {
    await assert.rejects(() => run([]), UsageError);
    await assert.rejects(
      () => run([join(dir, "nope")]),
      (e: Error) => e instanceof UsageError && /not found/.test(e.message),
    );
    await assert.rejects(() => run([dir, "--scale", "0"]), UsageError);
    await assert.rejects(() => run([dir, "--width", "wide"]), UsageError);
    await assert.rejects(() => run([dir, "--bogus"]), UsageError);
    assert.equal(await run(["--help"]), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
