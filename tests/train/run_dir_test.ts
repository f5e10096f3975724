/** src/train/run_dir.ts: the run's folders, --overwrite, the config hash and training_config.json. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigSchema } from "../../src/config/schema.ts";
import { configHash, prepareRunDir, runPaths, writeTrainingConfig } from "../../src/train/run_dir.ts";
import { planSteps } from "../../src/train/schedule.ts";

Deno.test("runPaths: {output_dir}/{data file stem}/model and logs", () => {
  const p = runPaths(ConfigSchema.parse({ data: "x/y/abc.json", output_dir: "out" }));
  assert.deepEqual(p, {
    runDir: join("out", "abc"),
    modelDir: join("out", "abc", "model"),
    logsDir: join("out", "abc", "logs"),
  });
});

Deno.test("configHash: 16 hex digits, stable, and any field changes it", async () => {
  const a = ConfigSchema.parse({});
  const h = await configHash(a);
  assert.match(h, /^[0-9a-f]{16}$/);
  assert.equal(await configHash(ConfigSchema.parse({})), h);
  assert.notEqual(await configHash(ConfigSchema.parse({ training: { learning_rate: 1e-4 } })), h);
});

Deno.test("prepareRunDir: makes the folders; --overwrite empties a run, otherwise it is kept", async () => {
  const root = await Deno.makeTempDir({ prefix: "maieutic-rundir-" });
  try {
    const paths = runPaths(ConfigSchema.parse({ data: "d/run.json", output_dir: root }));
    await prepareRunDir(paths, false);
    assert.ok((await Deno.stat(paths.modelDir)).isDirectory && (await Deno.stat(paths.logsDir)).isDirectory);
    await Deno.writeTextFile(join(paths.logsDir, "kept.txt"), "x");
    await prepareRunDir(paths, false);
    assert.equal(await Deno.readTextFile(join(paths.logsDir, "kept.txt")), "x");
    await prepareRunDir(paths, true);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(paths.logsDir)), [], "--overwrite starts empty");
    assert.ok((await Deno.stat(paths.modelDir)).isDirectory);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writeTrainingConfig: the config, data path and fingerprints, the source, plan, hash and versions", async () => {
  const root = await Deno.makeTempDir({ prefix: "maieutic-rundir-" });
  try {
    const cfg = ConfigSchema.parse({ data: "d/run.json", output_dir: root });
    const paths = runPaths(cfg);
    await prepareRunDir(paths, false);
    const plan = planSteps(10, cfg.training);
    const hash = await writeTrainingConfig(paths, cfg, {
      fingerprints: { data_sha256: "ab" },
      source: { source: "tiny", randomWeights: false },
      plan,
    });
    assert.equal(hash, await configHash(cfg));
    const j = JSON.parse(await Deno.readTextFile(join(paths.modelDir, "training_config.json")));
    assert.equal(j.training.learning_rate, cfg.training.learning_rate);
    assert.equal(j.resolved_data, join(Deno.cwd(), "d/run.json"));
    assert.equal(j.data_sha256, "ab");
    assert.ok(!("eval_data_sha256" in j));
    assert.deepEqual(j.model_source, { name: "tiny", revision: null, random_weights: false });
    assert.equal(j.config_hash, hash);
    assert.deepEqual(j.plan, plan);
    assert.equal(typeof j.versions.maieutic, "string");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
