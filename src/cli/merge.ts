/**
 * `maieutic merge`: fold a PEFT LoRA adapter into the base model's weights (W + α/r·B·A) and write a
 * Hub-layout model directory (sharded safetensors + index, config.json, tokenizer files) that transformers'
 * `from_pretrained` and `maieutic --model DIR` load. The work is in src/lora/merge_model.ts.
 */
import { configFromArgs, parse } from "./args.ts";
import { UsageError } from "../util/errors.ts";
import { formatBytes } from "../util/progress.ts";
import {
  DEFAULT_MAX_SHARD_SIZE,
  MERGE_DTYPES,
  mergeAdapterIntoModel,
  type MergeDtype,
  parseShardSize,
} from "../lora/merge_model.ts";

const USAGE =
  "maieutic merge --adapter DIR --out DIR [--model M] [--dtype float32|float16|bfloat16] [--max-shard-size 2GB]";

const HELP = `${USAGE}

Folds a LoRA adapter into the base weights, W' = W + (lora_alpha/r)·B·A on every targeted projection (PEFT
merge_and_unload), and writes a model directory the Hub, transformers and maieutic load:
model-0000i-of-0000n.safetensors + model.safetensors.index.json, config.json (torch_dtype updated) and the
base model's tokenizer files. The base is read in its original precision (not NF4); only a Hub model that is
offline with nothing but its NF4 cache is merged into the dequantized NF4 weights (with a warning).

  --adapter DIR            PEFT adapter directory (adapter_config.json + adapter_model.safetensors),
                           e.g. models/1gouki/model/checkpoint-120
  --out DIR                where to write the merged model (must not exist, or be empty)
  --model M                base model: Hub id[@revision], local directory or "tiny" (default: model.name)
  --dtype D                float32, float16 or bfloat16 (default: the base config's torch_dtype)
  --max-shard-size SIZE    bytes per safetensors shard, e.g. 2GB, 500MB, 1GiB (default 2GB)
  --config FILE            JSON config (model.name, quantization.*)
  --set key.path=value     override one key (repeatable)
  --quiet                  no progress line

Environment: HUGGINGFACE_API_KEY (gated repos, from .env), HF_ENDPOINT, HF_HUB_OFFLINE=1, MAIEUTIC_CACHE.`;

const OPTIONS = {
  config: { type: "string" },
  set: { type: "string", multiple: true },
  model: { type: "string" },
  adapter: { type: "string" },
  out: { type: "string" },
  dtype: { type: "string" },
  "max-shard-size": { type: "string" },
  quiet: { type: "boolean" },
} as const;

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS, USAGE);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const adapter = values.adapter;
  const out = values.out;
  if (typeof adapter !== "string" || !adapter) {
    throw new UsageError(`--adapter DIR is required (a PEFT adapter directory)\nusage: ${USAGE}`);
  }
  if (typeof out !== "string" || !out) {
    throw new UsageError(`--out DIR is required (where the merged model is written)\nusage: ${USAGE}`);
  }
  let dtype: MergeDtype | undefined;
  if (values.dtype !== undefined) {
    if (!(MERGE_DTYPES as readonly unknown[]).includes(values.dtype)) {
      throw new UsageError(`--dtype "${values.dtype}": expected one of ${MERGE_DTYPES.join(", ")}`);
    }
    dtype = values.dtype as MergeDtype;
  }
  const maxShardSize = typeof values["max-shard-size"] === "string"
    ? parseShardSize(values["max-shard-size"])
    : DEFAULT_MAX_SHARD_SIZE;
  const config = configFromArgs(values);
  const t0 = performance.now();
  // Ctrl-C / SIGTERM: stop between tensors and remove the partial output (exit 130).
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  let r;
  try {
    r = await mergeAdapterIntoModel({
      model: config.model.name,
      adapter,
      out,
      dtype,
      maxShardSize,
      quantization: config.quantization,
      progress: !values.quiet,
      signal: ac.signal,
    });
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
  }
  const seconds = (performance.now() - t0) / 1000;
  const a = r.adapterConfig;
  const targets = Array.isArray(a.target_modules) ? a.target_modules.join(", ") : String(a.target_modules);
  console.log([
    `model     ${r.source}${r.revision ? ` @ ${r.revision}` : ""}${r.fromNf4 ? " (NF4-dequantized)" : ""}`,
    `adapter   ${adapter} (r ${a.r}, lora_alpha ${a.lora_alpha}, ${targets}): ${r.mergedModules} projections merged`,
    `output    ${r.out}: ${r.tensors} tensors, ${r.dtype}, ${
      formatBytes(r.totalSize)
    } in ${r.shards.length} shard${r.shards.length === 1 ? "" : "s"}`,
    `files     ${["config.json", "model.safetensors.index.json", ...r.copied].join(", ")}`,
    `time      ${seconds.toFixed(seconds < 10 ? 2 : 1)} s`,
  ].join("\n"));
  return 0;
}
