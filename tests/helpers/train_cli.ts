// Shared by the end-to-end training tests: a fast tiny-model configuration, the `maieutic train` CLI as a
// subprocess, and adapter comparison.
import { join } from "node:path";
import { resolveConfig } from "../../src/config/merge.ts";
import { readSafetensorsFile } from "../../src/safetensors/read_file.ts";

export const MAIN = new URL("../../main.ts", import.meta.url).pathname;
export const DATA = new URL("../../data/dialogue/processed/1gouki.json", import.meta.url).pathname;
/** One model cache for the whole test process and its subprocesses (the tiny model is generated once). */
export const cache = Deno.makeTempDirSync({ prefix: "maieutic-cache-" });
Deno.env.set("MAIEUTIC_CACHE", cache);

/** A short, fast tiny-model run (sequences of ≤ 64 tokens). */
export const FAST = [
  "model.max_sequence_length=64",
  "training.per_device_train_batch_size=2",
  "training.per_device_eval_batch_size=8",
  "training.eval_generate_samples=0",
];

export function cfg(out: string, sets: string[]) {
  return resolveConfig({
    sets: [...FAST, ...sets],
    flags: { model: { name: "tiny" }, output_dir: out, data: DATA },
  });
}

export async function adapter(dir: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensorsFile(join(dir, "adapter_model.safetensors"));
  return new Map([...tensors].map(([k, t]) => [k, t.data as Float32Array]));
}

export function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let d = 0;
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y) throw new Error(`missing ${k}`);
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  }
  return d;
}

/** `maieutic train ARGS` as a subprocess (stdout and stderr piped). */
export function cli(args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "train", ...args],
    env: { MAIEUTIC_CACHE: cache, NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  });
}

/** CLI flags of cfg(out, extra). */
export const fastFlags = (out: string, extra: string[] = []) => [
  "--model",
  "tiny",
  "--data",
  DATA,
  "--output-dir",
  out,
  ...FAST.flatMap((s) => ["--set", s]),
  ...extra.flatMap((s) => ["--set", s]),
];
