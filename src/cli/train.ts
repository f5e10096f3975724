/** `maieutic train`: fine-tune LoRA adapters (src/train/run.ts). */
import { UsageError } from "../util/errors.ts";
import { CONFIG_HELP, CONFIG_OPTIONS, configFromArgs, parse } from "./args.ts";
import { runTraining } from "../train/run.ts";
import { parseAcceptedKeys } from "../train/run_identity.ts";

const USAGE = "maieutic train [--model M] [--data FILE] [--resume [CHECKPOINT]] [--accept-changes KEYS] " +
  "[--overwrite] [--json-logs] [options]";

const HELP = `${USAGE}

Fine-tunes LoRA adapters on Gemma-2 (NF4 base) with the seed configuration unless told otherwise, and writes
models/{MODEL_VERSION}/ (checkpoints, adapter, training_config.json, logs/ with the metrics CSV, summary and
plots). MODEL_VERSION is the data file's name without extension.

  --resume [DIR]           continue the run from its latest complete checkpoint (or DIR) with the same data
                           order, schedule, RNG and optimizer state; with no checkpoint yet it starts from
                           step 0, and on a finished run it exits 0, so a boot script can always pass it.
                           Exits 2 naming the keys when the run was trained with a different configuration
                           (model, data contents, LoRA, schedule, seed, batch, ...)
  --accept-changes KEYS    with --resume: continue the checkpoint under these changed keys, deliberately
                           (comma-separated or repeated, e.g. training.learning_rate; data_sha256 for
                           changed data). Saving and watchdog keys may change without it
  --overwrite              replace an existing run directory
  --json-logs              one JSON object per log row on stdout (progress and reports go to stderr)
${CONFIG_HELP}

Signals: Ctrl-C (SIGINT) finishes the current step, writes a checkpoint and exits 130 (a second Ctrl-C exits
at once, naming the checkpoint --resume will continue from); SIGTERM (a VM's preemption notice) does the same
and exits 143. training.save_every_minutes (default 15) also checkpoints by time.

Examples:
  maieutic train --model tiny                       offline try-out on the built-in tiny model
  maieutic train --data my.json --set training.num_train_epochs=3
  maieutic train --resume
  maieutic train --resume --set training.learning_rate=4e-5 --accept-changes training.learning_rate`;

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
    "accept-changes": { type: "string", multiple: true },
    "json-logs": { type: "boolean" },
  }, USAGE);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const config = configFromArgs(values);
  const accept = parseAcceptedKeys((values["accept-changes"] as string[] | undefined) ?? []);
  if (accept.size && typeof values.resume !== "string") {
    throw new UsageError(
      "--accept-changes goes with --resume (it accepts changed keys of the run it continues)",
    );
  }
  return await runTraining({
    config,
    resume: typeof values.resume === "string" ? values.resume : undefined,
    overwrite: Boolean(values.overwrite),
    accept,
    jsonLogs: Boolean(values["json-logs"]),
  });
}
