/** `maieutic eval`: loss (+ Socratic metrics with --generate) of a model and adapter on a dialogue file. */
import { CONFIG_HELP, CONFIG_OPTIONS, configFromArgs, parse } from "./args.ts";
import { UsageError } from "../util/errors.ts";
import { formatReport, runEval } from "../eval/run.ts";

const USAGE =
  "maieutic eval [--model M] [--adapter DIR] --data FILE [--generate] [--max-samples N] [--json] [options]";

const HELP = `${USAGE}

Evaluates every dialogue of FILE with the training labels (model turns are the targets): eval_loss (the mean
NLL over all target tokens), eval_perplexity, eval_tokens, eval_samples. With --generate it also generates
responses (greedy + seeded samples, KV cache) for eval contexts and scores the Socratic figures of
docs/socratic_metrics.md: eval_socratic_question_rate, eval_socratic_score (the headline),
eval_style_consistency, eval_dialogue_flow, eval_response_consistency, eval_distinct_2 and the failures counted
apart (eval_telling_rate, eval_degenerate_rate, eval_cut_off_rate, eval_closed_question_rate, ...); the
report's "generation" counts the finish reasons. maieutic score scores the replies of any file without a
model. The report is written to {output_dir}/{MODEL_VERSION}/evals/{timestamp}.json (MODEL_VERSION: the
adapter's run directory under models/, else the data file's stem).

  --adapter DIR            PEFT adapter directory (adapter_config.json + adapter_model.safetensors);
                           without it the base model is evaluated
  --generate               also generate and score responses
  --max-samples N          generate for at most N contexts (default training.eval_generate_samples, 32)
  --max-new-tokens N       tokens per generated response (default: 1.25 × the longest reference + 8, at most
                           training.eval_max_new_tokens, 256)
  --consistency-samples K  seeded samples per context for response_consistency (default
                           training.eval_consistency_samples, 3)
  --json                   print only the report, as one JSON object (progress goes to stderr)
${CONFIG_HELP}

Exact f32: --set quantization.load_in_4bit=false --set quantization.bnb_4bit_compute_dtype=float32

Examples:
  maieutic eval --adapter models/1gouki/model/checkpoint-120 --data held_out.json
  maieutic eval --model tiny --data data/dialogue/processed/sample_en.jsonl --generate --json`;

function positiveInt(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || !/^\s*\d+\s*$/.test(v) || !Number.isInteger(n) || n < 1) {
    throw new UsageError(`--${name} expects a positive integer, got "${v}"`);
  }
  return n;
}

function nonNegativeInt(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || !/^\s*\d+\s*$/.test(v) || !Number.isInteger(n)) {
    throw new UsageError(`--${name} expects an integer >= 0, got "${v}"`);
  }
  return n;
}

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, {
    ...CONFIG_OPTIONS,
    adapter: { type: "string" },
    generate: { type: "boolean" },
    "max-samples": { type: "string" },
    "max-new-tokens": { type: "string" },
    "consistency-samples": { type: "string" },
    json: { type: "boolean" },
  }, USAGE);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const maxSamples = positiveInt("max-samples", values["max-samples"]);
  const maxNewTokens = positiveInt("max-new-tokens", values["max-new-tokens"]);
  const consistency = nonNegativeInt("consistency-samples", values["consistency-samples"]);
  const config = configFromArgs(values);
  const { report } = await runEval({
    config,
    adapter: typeof values.adapter === "string" ? values.adapter : undefined,
    generate: Boolean(values.generate),
    maxSamples,
    generation: {
      ...(maxNewTokens !== undefined ? { maxNewTokens } : {}),
      ...(consistency !== undefined ? { consistencySamples: consistency } : {}),
    },
  });
  console.log(values.json ? JSON.stringify(report) : formatReport(report));
  return 0;
}
