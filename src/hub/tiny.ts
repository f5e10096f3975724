/**
 * The built-in tiny random Gemma-2 (`--model tiny`): every gemma-2-2b feature at toy size (head_dim ≠
 * hidden/heads, query_pre_attn_scalar ≠ head_dim, sliding window, GQA, softcaps, tied embeddings), generated
 * deterministically and written once into the cache as a directory laid out like a Hub repo
 * (config.json, model.safetensors in BF16, tokenizer files from src/tokenizer/tiny.ts). From then on it loads
 * through exactly the same path as a local checkpoint.
 *
 * Weights: N(0, 0.02) (transformers' `initializer_range`, what `_init_weights` uses for Linear and
 * Embedding) rounded to bfloat16, so the F32 and BF16 views of the model are identical. RMSNorm weights get
 * the same small random values instead of zeros so a missing `1 + w` is visible in tests.
 */
import { join } from "node:path";
import { f32ToBf16Bits } from "../util/half.ts";
import { mulberry32 } from "../util/random.ts";
import { type Gemma2Config, Gemma2ConfigSchema } from "../config/gemma2.ts";
import { TINY_VOCAB_SIZE, tinyTokenizerFiles } from "../tokenizer/tiny.ts";
import { encodeSafetensors, type WriteTensor } from "../safetensors/write.ts";
import { expectedTensors } from "../quant/plan.ts";

/** Bump when the generated weights or files change, so old cache entries are not reused. */
export const TINY_VERSION = 1;
export const TINY_SEED = 20250301;
export const TINY_INIT_STD = 0.02;

/** The `<end_of_turn>` id in the tiny tokenizer (eos is [1, this]). */
export function tinyEndOfTurnId(files: Record<string, string> = tinyTokenizerFiles()): number {
  const tok = JSON.parse(files["tokenizer.json"]) as { added_tokens?: { id: number; content: string }[] };
  const t = tok.added_tokens?.find((x) => x.content === "<end_of_turn>");
  if (!t) throw new Error("tiny tokenizer has no <end_of_turn> token");
  return t.id;
}

/** config.json of the tiny model (transformers' Gemma2Config field names). */
export function tinyConfigJson(): Record<string, unknown> {
  return {
    architectures: ["Gemma2ForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    attn_logit_softcapping: 50.0,
    bos_token_id: 2,
    cache_implementation: "hybrid",
    eos_token_id: [1, tinyEndOfTurnId()],
    final_logit_softcapping: 30.0,
    head_dim: 24,
    hidden_act: "gelu_pytorch_tanh",
    hidden_activation: "gelu_pytorch_tanh",
    hidden_size: 64,
    initializer_range: TINY_INIT_STD,
    intermediate_size: 128,
    max_position_embeddings: 1024,
    model_type: "gemma2",
    num_attention_heads: 4,
    num_hidden_layers: 4,
    num_key_value_heads: 2,
    pad_token_id: 0,
    query_pre_attn_scalar: 32,
    rms_norm_eps: 1e-6,
    rope_theta: 10000.0,
    sliding_window: 8,
    tie_word_embeddings: true,
    torch_dtype: "bfloat16",
    use_cache: true,
    vocab_size: TINY_VOCAB_SIZE,
  };
}

export function tinyConfig(): Gemma2Config {
  return Gemma2ConfigSchema.parse(tinyConfigJson());
}

/** FNV-1a of a string: a per-tensor seed, so a tensor's values do not depend on generation order. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** n values ~ N(0, std) as bfloat16 bits (Box-Muller in float64, then round-to-nearest-even). */
export function normalBf16(n: number, std: number, seed: number): Uint16Array<ArrayBuffer> {
  const u = mulberry32(seed);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const th = 2 * Math.PI * u();
    out[i] = f32ToBf16Bits(r * Math.cos(th) * std);
    if (i + 1 < n) out[i + 1] = f32ToBf16Bits(r * Math.sin(th) * std);
  }
  return out;
}

/** All tensors of a random Gemma-2 of config `c` as BF16 (HF names, no lm_head: tied). */
export function randomGemma2Weights(
  c: Gemma2Config,
  seed = TINY_SEED,
  std = TINY_INIT_STD,
): Map<string, WriteTensor> {
  const out = new Map<string, WriteTensor>();
  for (const [name, shape] of expectedTensors(c)) {
    const n = shape.reduce((a, d) => a * d, 1);
    out.set(name, { dtype: "BF16", shape, data: normalBf16(n, std, (seed ^ hash(name)) >>> 0) });
  }
  return out;
}

/** Every file of the tiny model directory, by name. */
export function tinyModelFiles(): Record<string, string | Uint8Array> {
  const cfg = tinyConfigJson();
  return {
    "config.json": JSON.stringify(cfg, null, 2) + "\n",
    ...tinyTokenizerFiles(),
    "model.safetensors": encodeSafetensors(randomGemma2Weights(Gemma2ConfigSchema.parse(cfg)), {
      format: "pt",
    }),
  };
}

/** The directory name of the tiny model under the cache root. */
export function tinyDirName(): string {
  return `tiny-gemma2-v${TINY_VERSION}-vocab${TINY_VOCAB_SIZE}`;
}

/**
 * Writes `files` as directory `dir` atomically: everything goes into a sibling temp directory that is then
 * renamed, so `dir` either does not exist or is complete. A concurrent writer that wins is fine.
 */
export async function writeDirAtomic(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  const tmp = `${dir}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.mkdir(tmp, { recursive: true });
  try {
    for (const [name, data] of Object.entries(files)) {
      const p = join(tmp, name);
      if (typeof data === "string") await Deno.writeTextFile(p, data);
      else await Deno.writeFile(p, data);
    }
    try {
      await Deno.rename(tmp, dir);
    } catch (e) {
      // Someone else completed the same directory first: theirs is identical.
      if (!(await isDir(dir))) throw e;
      await Deno.remove(tmp, { recursive: true });
    }
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await Deno.stat(p)).isDirectory;
  } catch {
    return false;
  }
}

/** The tiny model's directory under `root`, generated on first use. */
export async function ensureTinyModel(root: string): Promise<string> {
  const dir = join(root, "models", tinyDirName());
  if (!(await isDir(dir))) await writeDirAtomic(dir, tinyModelFiles());
  return dir;
}
