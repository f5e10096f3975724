// Shared by the chat and generate tests: a tiny-model adapter made in the test (A as initialized, B random, so
// the adapter changes the replies), the CLI as a subprocess, and the tiny model opened in-process.
import { join } from "node:path";
import { configFromArgs } from "../../src/cli/args.ts";
import { openGenerationModel } from "../../src/chat/model.ts";
import { initLoraParams } from "../../src/lora/params.ts";
import { makeAdapterConfig, saveAdapter } from "../../src/lora/peft.ts";
import { tinyConfig } from "../../src/hub/tiny.ts";
import { rng } from "../helpers/gpu.ts";

export const MAIN = new URL("../../main.ts", import.meta.url).pathname;
export const SAMPLE_DATA = new URL("../../data/dialogue/processed/sample_en.jsonl", import.meta.url).pathname;

export async function makeTinyAdapter(dir: string, seed = 7): Promise<string> {
  const lora = { r: 4, lora_alpha: 8, target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"] };
  const p = initLoraParams(tinyConfig(), lora, seed);
  const rand = rng(seed);
  for (const m of p.layout.modules) {
    const b = p.data.subarray(m.B.offset, m.B.offset + m.B.size);
    for (let i = 0; i < b.length; i++) b[i] = (rand() - 0.5) * 0.2;
  }
  await saveAdapter(dir, p, makeAdapterConfig({ baseModelNameOrPath: "tiny", lora_dropout: 0, ...lora }));
  return dir;
}

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

export async function cli(args: string[], stdin?: string): Promise<CliResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const r = await child.output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}

/** The tiny model (+ adapter) opened for generation, as chat and generate open it. */
export function openTiny(adapter?: string) {
  return openGenerationModel(configFromArgs({ model: "tiny" }), adapter);
}

export async function withTempDir<T>(f: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "maieutic-chat-" });
  try {
    return await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export { join };
