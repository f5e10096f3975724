/**
 * `maieutic quantize`: fetch (or read) a model, NF4-quantize its decoder linears as bitsandbytes does, and
 * store the result in the converted-model cache (src/hub/load.ts), so training and eval start from it and
 * HF_HUB_OFFLINE=1 works afterwards. Prints the sizes before and after and the time taken.
 */
import { CONFIG_HELP, CONFIG_OPTIONS, configFromArgs, parse } from "./args.ts";
import { openModel } from "../hub/load.ts";
import { GEMMA2_2B_RANDOM } from "../hub/model_name.ts";
import { formatBytes } from "../util/progress.ts";
import { quantKey } from "../quant/plan.ts";
import type { Nf4Tensor } from "../quant/nf4.ts";

const USAGE = "maieutic quantize [--model M] [--rebuild] [--gpu] [config flags]";

const HELP = `${USAGE}

Fetches the model (Hub id[@revision], local directory or "tiny"), quantizes every decoder linear to NF4 with
double-quantized absmax (bitsandbytes, blocksize 64/256), keeps the embedding and norms dense, and caches the
result keyed by repo + revision + quantization. Set quantization.load_in_4bit=false to cache it dense.

  --rebuild                convert again even if the cache has the model
  --gpu                    quantize on the GPU (WebGPU; identical bytes)

Environment: HUGGINGFACE_API_KEY (token for gated repos, from .env), HF_ENDPOINT, HF_HUB_OFFLINE=1,
MAIEUTIC_CACHE (cache root; default ~/.cache/maieutic and the Hugging Face cache for small files).

${CONFIG_HELP}`;

export async function run(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    { ...CONFIG_OPTIONS, rebuild: { type: "boolean" }, gpu: { type: "boolean" } },
    USAGE,
  );
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const config = configFromArgs(values);
  const name = config.model.name;
  const quant = config.quantization;
  if (name === GEMMA2_2B_RANDOM) {
    console.log(
      `${GEMMA2_2B_RANDOM} has no weights to fetch or quantize (the engine generates them); nothing to do`,
    );
    return 0;
  }
  let quantizer: ((w: Float32Array<ArrayBuffer>, shape: number[]) => Promise<Nf4Tensor>) | undefined;
  if (values.gpu) {
    const { getGpu } = await import("../gpu/device.ts");
    const { quantizeNf4Gpu } = await import("../quant/nf4_gpu.ts");
    const gpu = await getGpu();
    quantizer = (w, shape) => quantizeNf4Gpu(gpu, w, shape);
  }
  const t0 = performance.now();
  const m = await openModel(name, quant, { rebuild: Boolean(values.rebuild), quantizer });
  let count = 0;
  // Stream through without keeping the tensors: the point is the cache file.
  for await (const _ of m.tensors()) count++;
  const seconds = (performance.now() - t0) / 1000;
  const s = m.stats;
  const c = m.config;
  const ratio = s.sourceBytes ? ` (${((100 * s.storedBytes) / s.sourceBytes).toFixed(0)}%)` : "";
  const lines = [
    `model     ${m.source}${m.revision ? ` @ ${m.revision}` : ""}`,
    `config    gemma2: ${c.num_hidden_layers} layers, hidden ${c.hidden_size}, intermediate ${c.intermediate_size}, ` +
    `heads ${c.num_attention_heads}/${c.num_key_value_heads} x ${c.head_dim}, vocab ${c.vocab_size}`,
    `tensors   ${count} (${s.quantized} NF4, ${count - s.quantized} dense)${
      s.skipped.length ? `; not used: ${s.skipped.join(", ")}` : ""
    }`,
    `size      ${formatBytes(s.sourceBytes)} source -> ${formatBytes(s.storedBytes)} ${
      quantKey(quant)
    }${ratio}`,
    `time      ${seconds.toFixed(seconds < 10 ? 2 : 1)} s${s.fromCache ? " (already cached)" : ""}`,
  ];
  if (m.cachePath) lines.push(`cache     ${m.cachePath}`);
  lines.push(`files     ${m.dir}`);
  console.log(lines.join("\n"));
  return 0;
}
