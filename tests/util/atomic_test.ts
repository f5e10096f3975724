// Temp files and half-written checkpoints of killed writers are removed; a live writer's never.
import assert from "node:assert/strict";
import { join } from "node:path";
import { removeStaleTemps, tempPattern } from "../../src/util/atomic.ts";
import { createSafetensorsWriter } from "../../src/safetensors/write.ts";
import { saveCheckpoint } from "../../src/train/checkpoint.ts";

/** A pid that names no process: one that has exited. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("removeStaleTemps: a dead writer's temp goes, a live writer's and unrelated files stay", async () => {
  assert.equal(Deno.build.os, "linux", "these checks use /proc (the project's CI is Linux)");
  const dir = await Deno.makeTempDir();
  try {
    const dead = await deadPid();
    const live = Deno.ppid; // the test runner's parent: alive while we run
    const files = [
      `model.safetensors.${dead}.0123abcd.tmp`, // stale
      `model.safetensors.${live}.89abcdef.tmp`, // another live writer
      `model.safetensors.${Deno.pid}.00000000.tmp`, // ours
      "model.safetensors", // the real file
      `other.safetensors.${dead}.0123abcd.tmp`, // another file's temp
      `model.safetensors.${dead}.xyz.tmp`, // not our naming
    ];
    for (const f of files) await Deno.writeTextFile(join(dir, f), "x");
    const removed = await removeStaleTemps(dir, tempPattern("model.safetensors"));
    assert.deepEqual(removed, [join(dir, files[0])]);
    assert.deepEqual(await names(dir), files.slice(1).sort());
    assert.deepEqual(await removeStaleTemps(join(dir, "missing"), tempPattern("x")), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a new safetensors writer and a new checkpoint clean what a killed run left", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const dead = await deadPid();
    const staleFile = `adapter_model.safetensors.${dead}.feedf00d.tmp`;
    await Deno.writeTextFile(join(dir, staleFile), "half a tensor");
    const staleCkpt = `.checkpoint-7.tmp-${dead}`;
    await Deno.mkdir(join(dir, staleCkpt));
    await Deno.writeTextFile(join(dir, staleCkpt, "adapter_model.safetensors"), "torn");

    const w = await createSafetensorsWriter(join(dir, "adapter_model.safetensors"), [
      ["a", { dtype: "F32", shape: [2] }],
    ]);
    await w.write("a", new Float32Array([1, 2]));
    await w.finish();
    assert.deepEqual(await names(dir), [staleCkpt, "adapter_model.safetensors"].sort());

    const files = {
      writeAdapter: (d: string) => Deno.writeTextFile(join(d, "adapter_model.safetensors"), "a"),
      writeOptimizer: (d: string) => Deno.writeTextFile(join(d, "optimizer.safetensors"), "o"),
    };
    // deno-lint-ignore no-explicit-any
    await saveCheckpoint(dir, 8, files, {} as any, {} as any);
    assert.deepEqual(await names(dir), ["adapter_model.safetensors", "checkpoint-8"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
