/**
 * maieutic: QLoRA training of Gemma-2 on Socratic dialogue, on WebGPU.
 * `deno run -A main.ts <subcommand>` == `maieutic <subcommand>` == `deno task <subcommand>` (docs/ARCHITECTURE.md#commands-and-exit-codes).
 */
import { exitCodeFor } from "./src/util/errors.ts";
import { loadDotEnv } from "./src/cli/env.ts";
import { COMMANDS, usage } from "./src/cli/commands.ts";

async function main(argv: string[]): Promise<number> {
  loadDotEnv();
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
    console.log(usage());
    return cmd ? 0 : 2;
  }
  if (cmd === "--version" || cmd === "version") {
    console.log("maieutic 0.1.0");
    return 0;
  }
  const command = COMMANDS[cmd];
  if (!command) {
    console.error(`unknown subcommand "${cmd}"\n${usage()}`);
    return 2;
  }
  try {
    const mod = await command.load();
    return await mod.run(rest);
  } catch (err) {
    const code = exitCodeFor(err);
    // Runtime failures show their stack only with MAIEUTIC_DEBUG=1; usage errors are one clear message.
    const debug = Boolean(Deno.env.get("MAIEUTIC_DEBUG"));
    const msg = err instanceof Error
      ? (debug && code === 1 ? err.stack ?? err.message : err.message)
      : String(err);
    console.error(`error: ${msg}`);
    if (code === 1 && !debug) console.error("(set MAIEUTIC_DEBUG=1 for the stack trace)");
    return code;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
