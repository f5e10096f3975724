/**
 * Argument parsing shared by the subcommands (node:util parseArgs; JSR's @std/cli is unreachable here).
 * Unknown flags are a UsageError (exit 2) with the subcommand's usage line.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../util/errors.ts";
import { resolveConfig } from "../config/merge.ts";
import type { Config } from "../config/schema.ts";

export type Options = NonNullable<ParseArgsConfig["options"]>;

/** The flags that feed the configuration (docs/ARCHITECTURE.md#configuration), shared by train/eval/bench/quantize/info/merge. */
export const CONFIG_OPTIONS = {
  config: { type: "string" },
  set: { type: "string", multiple: true },
  model: { type: "string" },
  data: { type: "string" },
  "eval-data": { type: "string" },
  "output-dir": { type: "string" },
  epochs: { type: "string" },
  "max-steps": { type: "string" },
  seed: { type: "string" },
} as const satisfies Options;

export const CONFIG_HELP = `  --config FILE            JSON config (same keys as model/training_config.json)
  --set key.path=value     override one key (repeatable; value parsed as JSON when it parses)
  --model M                Hub id[@revision], local directory, "tiny" or "gemma-2-2b-random"
  --data FILE              dialogue file (chat / ShareGPT / pairs; JSON or JSONL)
  --eval-data FILE         held-out dialogue file (overrides training.eval_split)
  --output-dir DIR         root of the output tree (default models)
  --epochs N               training.num_train_epochs
  --max-steps N            training.max_steps
  --seed N                 training.seed`;

export interface Parsed {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

export function parse(args: string[], options: Options, usage: string, allowPositionals = false): Parsed {
  try {
    const r = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals,
    });
    return { values: r.values as Parsed["values"], positionals: r.positionals };
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\nusage: ${usage}`);
  }
}

function num(name: string, v: unknown): number {
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`--${name} expects a number, got "${v}"`);
  }
  return n;
}

/** Builds the resolved Config from the shared config flags. */
export function configFromArgs(values: Parsed["values"]): Config {
  const flags: Record<string, Record<string, unknown> | string> = {};
  const model: Record<string, unknown> = {};
  const training: Record<string, unknown> = {};
  if (typeof values.model === "string") model.name = values.model;
  if (values.epochs !== undefined) training.num_train_epochs = num("epochs", values.epochs);
  if (values["max-steps"] !== undefined) training.max_steps = num("max-steps", values["max-steps"]);
  if (values.seed !== undefined) training.seed = num("seed", values.seed);
  if (Object.keys(model).length) flags.model = model;
  if (Object.keys(training).length) flags.training = training;
  if (typeof values.data === "string") flags.data = values.data;
  if (typeof values["eval-data"] === "string") flags.eval_data = values["eval-data"];
  if (typeof values["output-dir"] === "string") flags.output_dir = values["output-dir"];
  return resolveConfig({
    configFile: typeof values.config === "string" ? values.config : undefined,
    sets: (values.set as string[] | undefined) ?? [],
    // deno-lint-ignore no-explicit-any
    flags: flags as any,
  });
}
