/** `maieutic generate`: a reply to every record of a dialogue file, as chat records (src/chat/generate_file.ts). */
import { CONFIG_HELP, configFromArgs, parse } from "./args.ts";
import { UsageError } from "../util/errors.ts";
import { ProgressLine } from "../util/progress.ts";
import { describeSampling, positiveIntFlag, samplingHelp } from "./sampling_args.ts";
import { GENERATION_OPTIONS, generationFlags, openForGeneration } from "./generation_flags.ts";
import { generateForDialogues, writeGeneratedJsonl } from "../chat/generate_file.ts";
import { loadDialogues } from "../data/load.ts";
import { formatDuration } from "../util/format.ts";

const DEFAULT_MAX_NEW = 128;
const DEFAULT_CONTEXT = 2048;
const DEFAULT_BATCH = 8;

const USAGE = "maieutic generate --data FILE --out FILE.jsonl [--model M] [--adapter DIR] [--samples K] " +
  "[--batch N] [--temperature T --top-p P --top-k K --max-new-tokens N --seed S]";

const HELP = `${USAGE}

Generates a reply to every record of FILE (chat, ShareGPT or pairs; JSON or JSONL): the prompt is the
conversation up to its last user turn, through the model's chat template; the model turn after it, if any,
is kept as "reference". Writes one chat record per line to --out (atomically):
  {"messages": [..., {"role": "assistant", "content": REPLY}], "reference": ..., "samples": [...], "index": I,
   "finish": "stop"|"length", "prompt_tokens": N, "generated_tokens": N, "dropped_exchanges": N}
ready for \`maieutic score\`, for --data, and for reading two adapters side by side (same order and index).

  --data FILE              the records (required)
  --out FILE.jsonl         where the replies go (required)
  --adapter DIR            PEFT adapter directory; without it the base model
  --samples K              replies per record (default 1); the first is the record's reply, the others go
                           to "samples"; K > 1 needs sampling (temperature > 0)
  --batch N                decoder rows decoded side by side: N / K records at a time (default 8)
  --context N              prompt + reply tokens (default ${DEFAULT_CONTEXT}); longer prompts lose their oldest
                           exchanges first
${samplingHelp(DEFAULT_MAX_NEW)}
${CONFIG_HELP}

Example:
  maieutic generate --adapter models/1gouki/model --data held_out.json --out replies.jsonl --samples 4`;

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...GENERATION_OPTIONS,
    out: { type: "string" },
    samples: { type: "string" },
    batch: { type: "string" },
  }, USAGE);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (typeof values.data !== "string") throw new UsageError(`--data FILE is required\nusage: ${USAGE}`);
  if (typeof values.out !== "string") throw new UsageError(`--out FILE.jsonl is required\nusage: ${USAGE}`);
  const out = values.out;
  const flags = generationFlags(values, { maxNewTokens: DEFAULT_MAX_NEW, context: DEFAULT_CONTEXT });
  const { sampling, maxNewTokens } = flags;
  const samples = positiveIntFlag("samples", values.samples) ?? 1;
  if (samples > 1 && !sampling.doSample) {
    throw new UsageError(
      `--samples ${samples} with greedy decoding gives ${samples} identical replies; use --temperature > 0`,
    );
  }
  const batch = positiveIntFlag("batch", values.batch) ?? DEFAULT_BATCH;
  const cfg = configFromArgs(values);
  const dialogues = await loadDialogues(cfg.data);
  try {
    const st = await Deno.stat(out);
    if (st.isDirectory) throw new UsageError(`--out ${out} is a directory; give a file name (FILE.jsonl)`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const { model, maxLen } = await openForGeneration(cfg, flags);
  console.error(
    `generate with ${model.description}: ${dialogues.length} records of ${cfg.data}, ${samples} ` +
      `repl${samples === 1 ? "y" : "ies"} each, ${describeSampling(sampling)}, seed ${cfg.training.seed}`,
  );
  const progress = new ProgressLine();
  const t0 = performance.now();
  const r = await generateForDialogues(model.session.engine, model.tok, dialogues, {
    samples,
    sampling,
    maxNewTokens,
    seed: cfg.training.seed,
    maxLen,
    batch,
  }, (done, total, tokens) => {
    const s = (performance.now() - t0) / 1000;
    const eta = done < total
      ? `ETA ${formatDuration((s / done) * (total - done))}`
      : `in ${formatDuration(s)}`;
    const pct = Math.floor((100 * done) / total);
    progress.update(
      `generating ${done}/${total} (${pct}%) | ${(tokens / Math.max(1e-9, s)).toFixed(1)} tok/s | ${eta}`,
    );
  });
  progress.done();
  await writeGeneratedJsonl(out, r.records);
  if (r.skipped.length) {
    console.error(
      `warning: ${r.skipped.length} record(s) left out, their last user turn alone exceeds the prompt budget ` +
        `(records ${r.skipped.slice(0, 10).join(", ")}${
          r.skipped.length > 10 ? ", ..." : ""
        }; raise --context)`,
    );
  }
  const cut = r.records.filter((x) => x.finish === "length").length;
  console.log(
    `wrote ${r.records.length} record(s) to ${out}: ${r.newTokens} tokens in ${formatDuration(r.seconds)}` +
      (cut ? `, ${cut} cut at --max-new-tokens ${maxNewTokens}` : ""),
  );
  return 0;
}
