// Any machine (the README's promise): what a newcomer without a Vulkan driver gets (Deno's WebGPU through
// OpenGL, reproduced with DENO_WEBGPU_BACKEND=gl), adapters without shader-f16 (MAIEUTIC_F16=0), and the
// backend settings, all through the CLI as a user runs it.
import assert from "node:assert/strict";
import { cache, DATA, MAIN } from "../helpers/train_cli.ts";

async function run(args: string[], env: Record<string, string>) {
  const t0 = performance.now();
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: {
      MAIEUTIC_CACHE: cache,
      NO_COLOR: "1",
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: r.code,
    out: dec.decode(r.stdout),
    err: dec.decode(r.stderr),
    s: (performance.now() - t0) / 1000,
  };
}

Deno.test("the try-out on a software OpenGL adapter refuses within 60 s, naming the fix", async () => {
  const out = await Deno.makeTempDir();
  const r = await run(
    ["train", "--model", "tiny", "--max-steps", "2", "--data", DATA, "--output-dir", out],
    { DENO_WEBGPU_BACKEND: "gl", MAIEUTIC_BACKEND: "" },
  );
  assert.equal(r.code, 1, `exit ${r.code}\n${r.err}`);
  assert.ok(r.s < 60, `took ${r.s.toFixed(1)} s`);
  assert.match(r.err, /through OpenGL/);
  assert.match(r.err, /apt-get install -y mesa-vulkan-drivers libvulkan1/);
  assert.match(r.err, /MAIEUTIC_ALLOW_SLOW_ADAPTER=1/);
  await Deno.remove(out, { recursive: true });
});

Deno.test("info names the backend it chose, Vulkan before GL, and MAIEUTIC_BACKEND forces one", async () => {
  const auto = await run(["info", "--json"], { DENO_WEBGPU_BACKEND: "", MAIEUTIC_BACKEND: "" });
  assert.equal(auto.code, 0, auto.err);
  const a = JSON.parse(auto.out).adapter;
  assert.equal(a.backend_chosen_by, "auto");
  assert.ok(
    a.backend === "vulkan" || a.backend === "metal" || a.backend === "dx12",
    `auto chose ${a.backend}`,
  );
  assert.deepEqual(a.backend_probes[a.backend_probes.length - 1].backend, a.backend);
  assert.ok(a.calibration_gflops > 0.05, `calibration ${a.calibration_gflops}`);

  // A list that names GL first still opens Vulkan first.
  const list = await run(["info", "--json"], { DENO_WEBGPU_BACKEND: "gl,vulkan", MAIEUTIC_BACKEND: "" });
  assert.equal(list.code, 0, list.err);
  assert.equal(JSON.parse(list.out).adapter.backend, a.backend);

  // Forced GL, allowed explicitly: opens, reports gl and no shader-f16.
  const gl = await run(["info", "--json"], { MAIEUTIC_BACKEND: "gl", MAIEUTIC_ALLOW_SLOW_ADAPTER: "1" });
  assert.equal(gl.code, 0, gl.err);
  const g = JSON.parse(gl.out);
  assert.equal(g.adapter.backend, "gl");
  assert.equal(g.adapter.backend_chosen_by, "MAIEUTIC_BACKEND");
  assert.equal(g.compute.matmul_operands, "f32");

  const bad = await run(["info"], { MAIEUTIC_BACKEND: "opengl" });
  assert.equal(bad.code, 2, bad.err);
  assert.match(bad.err, /MAIEUTIC_BACKEND=opengl.*vulkan, metal, dx12, gl/);
});

Deno.test("MAIEUTIC_F16=0: the try-out trains on the f32 kernels and says float16 fell back, once", async () => {
  const out = await Deno.makeTempDir();
  const r = await run(
    [
      "train",
      "--model",
      "tiny",
      "--max-steps",
      "2",
      "--data",
      DATA,
      "--output-dir",
      out,
      "--set",
      'quantization.bnb_4bit_compute_dtype="float16"',
      "--set",
      "model.max_sequence_length=64",
    ],
    { MAIEUTIC_F16: "0" },
  );
  assert.equal(r.code, 0, r.err);
  const warnings = r.err.match(/computing in float32/g) ?? [];
  assert.equal(warnings.length, 1, r.err);
  assert.match(r.out + r.err, /f32 operands/);
  const csv = await Deno.readTextFile(`${out}/1gouki/logs/training_metrics.csv`);
  assert.ok(csv.trim().split("\n").length >= 3, csv);
  await Deno.remove(out, { recursive: true });

  const bad = await run(["info"], { MAIEUTIC_F16: "half" });
  assert.equal(bad.code, 2, bad.err);
  assert.match(bad.err, /MAIEUTIC_F16=half/);
});
