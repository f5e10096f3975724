// A job through the real subprocess runner into the real `maieutic eval` on the tiny model: it succeeds, and
// its report equals what `maieutic eval` prints for the same adapter and data.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createSubprocessRunner } from "../../src/serve/runner.ts";
import { initLoraParams } from "../../src/lora/params.ts";
import { makeAdapterConfig, saveAdapter } from "../../src/lora/peft.ts";
import { tinyConfig } from "../../src/hub/tiny.ts";
import { api, assert, assertEq, makeTree, startTestServer, waitFor } from "./helpers.ts";

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
const SAMPLE = fileURLToPath(new URL("../../data/dialogue/processed/sample_en.jsonl", import.meta.url));

Deno.test("serve: a tiny-model eval job succeeds and its report matches `maieutic eval`", async () => {
  if (!Deno.env.get("MAIEUTIC_CACHE")) Deno.env.set("MAIEUTIC_CACHE", await Deno.makeTempDir());
  const tree = await makeTree();
  const adapterDir = join(tree.models, "tinyrun", "model", "checkpoint-3");
  const lora = initLoraParams(
    tinyConfig(),
    { r: 16, lora_alpha: 32, target_modules: ["q_proj", "v_proj"] },
    9,
  );
  // A non-trivial adapter: B = 0 would make it a no-op.
  for (const m of lora.layout.modules) {
    for (let i = 0; i < m.B.size; i++) lora.data[m.B.offset + i] = Math.cos(i) * 0.05;
  }
  await saveAdapter(
    adapterDir,
    lora,
    makeAdapterConfig({
      baseModelNameOrPath: "tiny",
      r: 16,
      lora_alpha: 32,
      lora_dropout: 0,
      target_modules: ["q_proj", "v_proj"],
    }),
  );
  await Deno.copyFile(SAMPLE, join(tree.data, "sample_en.jsonl"));
  const running = await startTestServer(tree, {
    runner: createSubprocessRunner({ cwd: tree.root }),
    model: "tiny",
  });
  try {
    const r = await api(running.base, "POST", "/v1/eval-jobs", {
      body: { adapter: "tinyrun/model/checkpoint-3", data: "sample_en.jsonl" },
    });
    assertEq(r.status, 202);
    const job = await waitFor(
      async () => {
        const g = await api(running.base, "GET", `/v1/eval-jobs/${r.json.id}`);
        return ["succeeded", "failed"].includes(String(g.json.status)) ? g.json : undefined;
      },
      "job to end",
      240_000,
    );
    assertEq(job.status, "succeeded", JSON.stringify(job));
    const direct = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "eval",
        "--model",
        "tiny",
        "--adapter",
        adapterDir,
        "--data",
        join(tree.data, "sample_en.jsonl"),
        "--json",
      ],
      cwd: tree.root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEq(direct.code, 0, new TextDecoder().decode(direct.stderr));
    const want = JSON.parse(new TextDecoder().decode(direct.stdout));
    const got = (job as { report: Record<string, number> }).report;
    assert(Number.isFinite(want.eval_loss), "finite eval_loss");
    for (const k of ["eval_loss", "eval_perplexity", "eval_tokens", "eval_samples"]) {
      assertEq(got[k], want[k], k);
    }
  } finally {
    await running.close();
    await tree.cleanup();
  }
});
