/** The optimizer file of a checkpoint (src/train/checkpoint.ts): written and read back, refused when it does not fit. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError } from "../../src/util/errors.ts";
import { readSafetensorsFile } from "../../src/safetensors/read_file.ts";
import { OPTIMIZER_FILE, readOptimizerState, writeOptimizerState } from "../../src/train/checkpoint.ts";

Deno.test("optimizer.safetensors: exp_avg and exp_avg_sq round-trip exactly, tagged with the step", async () => {
  const dir = await Deno.makeTempDir({ prefix: "maieutic-opt-" });
  try {
    const m = new Float32Array([0.5, -1.25, 3e-8, 7]);
    const v = new Float32Array([1e-12, 2, 0, 4.5]);
    await writeOptimizerState(dir, { m, v }, 12);
    const back = await readOptimizerState(dir, 4);
    assert.deepEqual([...back.m], [...m]);
    assert.deepEqual([...back.v], [...v]);
    const file = await readSafetensorsFile(join(dir, OPTIMIZER_FILE));
    assert.deepEqual(file.metadata, { format: "maieutic-adamw", step: "12" });
    assert.deepEqual([...file.tensors.keys()].sort(), ["exp_avg", "exp_avg_sq"]);
    assert.equal(file.tensors.get("exp_avg")?.dtype, "F32");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("optimizer.safetensors of another LoRA size is a usage error naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "maieutic-opt-" });
  try {
    await writeOptimizerState(dir, { m: new Float32Array(3), v: new Float32Array(3) }, 1);
    await assert.rejects(() => readOptimizerState(dir, 4), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.equal(e.message, `${dir}/optimizer.safetensors does not fit this model and LoRA configuration`);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
