// The CLI as a user runs it: exit codes and messages.
import { COMMANDS } from "../../src/cli/commands.ts";
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}

Deno.test("bad config key exits 2 and suggests the right key", async () => {
  const r = await cli("info", "--set", "training.learing_rate=1");
  if (r.code !== 2) throw new Error(`exit ${r.code}: ${r.err}`);
  if (!r.err.includes('did you mean "training.learning_rate"')) throw new Error(r.err);
});

Deno.test("unknown subcommand and unknown flag exit 2 with a usage line", async () => {
  const a = await cli("frobnicate");
  if (a.code !== 2 || !a.err.includes("usage: maieutic")) throw new Error(`${a.code} ${a.err}`);
  const b = await cli("info", "--nope");
  if (b.code !== 2 || !b.err.includes("usage: maieutic info")) throw new Error(`${b.code} ${b.err}`);
});

Deno.test("every subcommand has --help", async () => {
  for (const c of Object.keys(COMMANDS)) {
    const r = await cli(c, "--help");
    if (r.code !== 0 || !r.out.includes(`maieutic ${c}`)) {
      throw new Error(`${c} --help: exit ${r.code} ${r.out}${r.err}`);
    }
  }
});

Deno.test("info prints the adapter, features and limits", async () => {
  const r = await cli("info", "--json");
  if (r.code !== 0) throw new Error(r.err);
  const j = JSON.parse(r.out);
  if (typeof j.adapter.description !== "string") throw new Error("no adapter description");
  if (!("shader-f16" in j.features)) throw new Error("features missing");
  if (!(j.limits.maxStorageBufferBindingSize > 0)) throw new Error("limits missing");
  if (j.config.training.learning_rate !== 8e-5) throw new Error("config missing");
});

Deno.test("info --model tiny shows the built-in tiny model", async () => {
  const r = await cli("info", "--model", "tiny", "--json");
  if (r.code !== 0) throw new Error(r.err);
  const j = JSON.parse(r.out);
  if (j.model.source !== "tiny" || j.model.config.num_hidden_layers !== 4 || j.model.config.head_dim !== 24) {
    throw new Error(JSON.stringify(j.model));
  }
});
