/** `maieutic train`: fine-tune LoRA adapters (src/train/run.ts). */
import { CONFIG_HELP, CONFIG_OPTIONS, configFromArgs, parse } from "./args.ts";
import { runTraining } from "../train/run.ts";

const USAGE =
  "maieutic train [--model M] [--data FILE] [--resume [CHECKPOINT]] [--overwrite] [--json-logs] [options]";

const HELP = `${USAGE}

Fine-tunes LoRA adapters on Gemma-2 (NF4 base) with the seed configuration unless told otherwise, and writes
models/{MODEL_VERSION}/ (checkpoints, adapter, training_config.json, logs/ with the metrics CSV, summary and
plots). MODEL_VERSION is the data file's name without extension.

  --resume [DIR]           continue from the latest complete checkpoint (or DIR) with the same data order,
                           schedule, RNG and optimizer state
  --overwrite              replace an existing run directory
  --json-logs              one JSON object per log row on stdout (progress and reports go to stderr)
${CONFIG_HELP}

Examples:
  maieutic train --model tiny                       offline try-out on the built-in tiny model
  maieutic train --data my.json --set training.num_train_epochs=3
  maieutic train --resume`;

/** `--resume` takes an optional value: a bare flag means the latest checkpoint. */
export function normalizeResume(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--resume" && (i + 1 >= args.length || args[i + 1].startsWith("-"))) {
      out.push("--resume=latest");
    } else out.push(a);
  }
  return out;
}

export async function run(args: string[]): Promise<number> {
  const { values } = parse(normalizeResume(args), {
    ...CONFIG_OPTIONS,
    resume: { type: "string" },
    overwrite: { type: "boolean" },
    "json-logs": { type: "boolean" },
  }, USAGE);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const config = configFromArgs(values);
  return await runTraining({
    config,
    resume: typeof values.resume === "string" ? values.resume : undefined,
    overwrite: Boolean(values.overwrite),
    jsonLogs: Boolean(values["json-logs"]),
  });
}
