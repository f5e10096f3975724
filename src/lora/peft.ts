/**
 * PEFT adapter directories (tests/fixtures/golden/PROVENANCE.md#the-peft-adapter-format), so
 * `PeftModel.from_pretrained(base, dir)` loads what we write and we load what PEFT writes:
 *  - adapter_model.safetensors: `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight`,
 *    A [r, in], B [out, r], F32, header metadata {"format": "pt"} (PEFT save_and_load.py
 *    get_peft_model_state_dict: the adapter name `.default` is removed);
 *  - adapter_config.json: exactly PEFT 0.13.2's LoraConfig key set (newer PEFT accepts it; 0.13.2 rejects unknown
 *    keys), written as Python's `json.dumps(indent=2, sort_keys=True)` does (config.py save_pretrained), so a
 *    file we write is byte-identical to PEFT's for the same config.
 * Loading validates the adapter against the model config: missing/unexpected keys, shapes, target modules and
 * unsupported features are UsageErrors naming the file and key; a different base_model_name_or_path is only a
 * warning (the same weights may live under another name or a local path).
 */
import { join } from "node:path";
import { z } from "zod";
import { UsageError } from "../util/errors.ts";
import { type Gemma2Config, modulePath } from "../config/gemma2.ts";
import { readSafetensorsFile } from "../safetensors/read_file.ts";
import { encodeSafetensors, type WriteTensor } from "../safetensors/write.ts";
import { writeFileAtomic } from "../util/atomic.ts";
import {
  isLoraTarget,
  LORA_TARGETS,
  type LoraLayout,
  loraLayout,
  type LoraParams,
  loraScaling,
  type LoraTarget,
  tensorView,
} from "./params.ts";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";

/**
 * PEFT 0.13.2 LoraConfig fields (as save_pretrained writes them) with the dataclass defaults for missing keys.
 * Unknown keys (newer PEFT) are kept and ignored.
 */
export const AdapterConfigSchema = z.object({
  alpha_pattern: z.record(z.string(), z.number()).default({}),
  auto_mapping: z.unknown().default(null),
  base_model_name_or_path: z.string().nullable().default(null),
  bias: z.string().default("none"),
  fan_in_fan_out: z.boolean().default(false),
  inference_mode: z.boolean().default(true),
  init_lora_weights: z.union([z.boolean(), z.string()]).default(true),
  layer_replication: z.unknown().default(null),
  layers_pattern: z.union([z.string(), z.array(z.string())]).nullable().default(null),
  layers_to_transform: z.union([z.number().int(), z.array(z.number().int())]).nullable().default(null),
  loftq_config: z.record(z.string(), z.unknown()).default({}),
  lora_alpha: z.number().default(8),
  lora_dropout: z.number().min(0).max(1).default(0),
  megatron_config: z.unknown().default(null),
  megatron_core: z.string().nullable().default("megatron.core"),
  modules_to_save: z.array(z.string()).nullable().default(null),
  peft_type: z.string().default("LORA"),
  r: z.number().int().positive().default(8),
  rank_pattern: z.record(z.string(), z.number()).default({}),
  revision: z.string().nullable().default(null),
  target_modules: z.union([z.array(z.string()), z.string()]).nullable().default(null),
  task_type: z.string().nullable().default(null),
  use_dora: z.boolean().default(false),
  use_rslora: z.boolean().default(false),
}).passthrough();

export type AdapterConfig = z.infer<typeof AdapterConfigSchema>;

/** The keys PEFT 0.13.2 writes, in file order (sorted). */
export const PEFT_CONFIG_KEYS = [
  "alpha_pattern",
  "auto_mapping",
  "base_model_name_or_path",
  "bias",
  "fan_in_fan_out",
  "inference_mode",
  "init_lora_weights",
  "layer_replication",
  "layers_pattern",
  "layers_to_transform",
  "loftq_config",
  "lora_alpha",
  "lora_dropout",
  "megatron_config",
  "megatron_core",
  "modules_to_save",
  "peft_type",
  "r",
  "rank_pattern",
  "revision",
  "target_modules",
  "task_type",
  "use_dora",
  "use_rslora",
] as const;

/** The adapter_config of a run: PEFT's `LoraConfig(task_type="CAUSAL_LM", ...)` as save_pretrained writes it. */
export function makeAdapterConfig(opts: {
  baseModelNameOrPath: string;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: readonly string[];
  use_rslora?: boolean;
}): AdapterConfig {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: opts.baseModelNameOrPath,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true, // save_pretrained always writes true
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: opts.lora_alpha,
    lora_dropout: opts.lora_dropout,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    peft_type: "LORA",
    r: opts.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...opts.target_modules],
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: opts.use_rslora ?? false,
  };
}

// ---- Python json.dumps(indent=2, sort_keys=True) ----

/** Python's float repr (shortest round-trip digits; exponent form below 1e-4 and from 1e16). */
export function pyFloat(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant, expStr] = x.toExponential().split("e");
  const exp = Number(expStr);
  const neg = mant.startsWith("-");
  const digits = mant.replace("-", "").replace(".", "");
  const sign = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac || "0"}`;
}

/** A value that json.dumps writes as a Python float (e.g. 0.0) rather than an int. */
export class PyFloat {
  constructor(readonly value: number) {}
}

function pyString(s: string): string {
  // ensure_ascii: everything outside printable ASCII becomes \uXXXX (lowercase hex), like Python.
  return JSON.stringify(s).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** json.dumps(value, indent=2, sort_keys=True); numbers are ints when integral unless wrapped in PyFloat. */
export function pythonJson(value: unknown, indent = ""): string {
  const inner = indent + "  ";
  if (value === null || value === undefined) return "null";
  if (value instanceof PyFloat) return pyFloat(value.value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : pyFloat(value);
  if (typeof value === "string") return pyString(value);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => inner + pythonJson(v, inner)).join(",\n")}\n${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (!entries.length) return "{}";
  return `{\n${
    entries.map(([k, v]) => `${inner}${pyString(k)}: ${pythonJson(v, inner)}`).join(",\n")
  }\n${indent}}`;
}

/** adapter_config.json text, byte-identical to PEFT's save_pretrained for the same config (no final newline). */
export function adapterConfigJson(cfg: AdapterConfig): string {
  // LoraConfig types lora_dropout as float (written 0.0, 0.1); r and lora_alpha as int.
  return pythonJson({ ...cfg, lora_dropout: new PyFloat(cfg.lora_dropout) });
}

// ---- save ----

/** Writes adapter_model.safetensors and adapter_config.json into `dir` (each atomically). */
export async function saveAdapter(dir: string, params: LoraParams, config: AdapterConfig): Promise<void> {
  const { layout } = params;
  if (config.r !== layout.r) {
    throw new Error(`saveAdapter: config r ${config.r} != parameters' r ${layout.r}`);
  }
  const tensors: Record<string, WriteTensor> = {};
  for (const t of [...layout.tensors].sort((a, b) => (a.key < b.key ? -1 : 1))) {
    tensors[t.key] = { dtype: "F32", shape: [...t.shape], data: tensorView(params, t) };
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, ADAPTER_WEIGHTS_FILE), encodeSafetensors(tensors, { format: "pt" }));
  await writeFileAtomic(join(dir, ADAPTER_CONFIG_FILE), adapterConfigJson(config));
}

// ---- load and validate ----

export interface LoadedAdapter {
  dir: string;
  config: AdapterConfig;
  /** Tensors by key, widened to f32 (F16/BF16 adapters load too). */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  metadata: Record<string, string>;
}

/** Reads an adapter directory (no model checks yet: see validateAdapter / adapterToParams). */
export async function loadAdapter(dir: string): Promise<LoadedAdapter> {
  const cfgPath = join(dir, ADAPTER_CONFIG_FILE);
  const wPath = join(dir, ADAPTER_WEIGHTS_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(cfgPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `${cfgPath} not found: --adapter must be a PEFT adapter directory (${ADAPTER_CONFIG_FILE} + ${ADAPTER_WEIGHTS_FILE})`,
      );
    }
    throw e;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  const parsed = AdapterConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`${cfgPath}: field "${issue.path.join(".")}": ${issue.message}`);
  }
  try {
    await Deno.stat(wPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      const bin = join(dir, "adapter_model.bin");
      const hasBin = await Deno.stat(bin).then(() => true, () => false);
      throw new UsageError(
        `${wPath} not found` +
          (hasBin
            ? ": only the pickle adapter_model.bin is there; re-save it with safe_serialization=True"
            : ""),
      );
    }
    throw e;
  }
  let file;
  try {
    file = await readSafetensorsFile(wPath);
  } catch (e) {
    throw new UsageError(`${wPath}: ${(e as Error).message}`);
  }
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [key, t] of file.tensors) {
    if (t.dtype !== "F32" && t.dtype !== "F16" && t.dtype !== "BF16") {
      throw new UsageError(
        `${wPath}: tensor "${key}" has dtype ${t.dtype}; LoRA weights must be F32, F16 or BF16`,
      );
    }
    tensors.set(key, { shape: t.shape, data: t.data as Float32Array });
  }
  return { dir, config: parsed.data, tensors, metadata: file.metadata };
}

export interface AdapterExpectations {
  /** The base model the run uses (model.name): a different base_model_name_or_path is a warning. */
  baseModel?: string;
  /** The run's LoRA settings: r / lora_alpha / target_modules must match (resume, continued training). */
  lora?: { r?: number; lora_alpha?: number; target_modules?: readonly string[] };
}

export interface ValidatedAdapter {
  layout: LoraLayout;
  scaling: number;
  warnings: string[];
}

const KEY_RE = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)\.weight$/;

/** Checks an adapter against the model it will be applied to. Throws UsageError; returns warnings. */
export function validateAdapter(
  a: LoadedAdapter,
  model: Gemma2Config,
  expect: AdapterExpectations = {},
): ValidatedAdapter {
  const cfgPath = join(a.dir, ADAPTER_CONFIG_FILE);
  const wPath = join(a.dir, ADAPTER_WEIGHTS_FILE);
  const c = a.config;
  const warnings: string[] = [];
  const unsupported = (field: string, why: string) => {
    throw new UsageError(`${cfgPath}: "${field}" ${why} is not supported; use a plain LoRA adapter`);
  };
  if (c.peft_type !== "LORA") {
    throw new UsageError(`${cfgPath}: "peft_type" is "${c.peft_type}", only LORA adapters are supported`);
  }
  if (c.task_type !== null && c.task_type !== "CAUSAL_LM") {
    warnings.push(`${cfgPath}: task_type "${c.task_type}" (expected "CAUSAL_LM")`);
  }
  if (c.bias !== "none") unsupported("bias", `= "${c.bias}"`);
  if (c.use_dora) unsupported("use_dora", "= true (DoRA)");
  if (c.fan_in_fan_out) unsupported("fan_in_fan_out", "= true (Conv1D layers; Gemma-2 uses nn.Linear)");
  if (Object.keys(c.rank_pattern).length) unsupported("rank_pattern", "(per-module ranks)");
  if (Object.keys(c.alpha_pattern).length) unsupported("alpha_pattern", "(per-module alphas)");
  if (c.modules_to_save?.length) unsupported("modules_to_save", `= ${JSON.stringify(c.modules_to_save)}`);
  if (c.layer_replication !== null) unsupported("layer_replication", "");
  if (
    c.layers_pattern !== null && c.layers_pattern !== "layers" && !(Array.isArray(c.layers_pattern) &&
      c.layers_pattern.every((p) => p === "layers"))
  ) {
    unsupported("layers_pattern", `= ${JSON.stringify(c.layers_pattern)}`);
  }
  if (!Array.isArray(c.target_modules)) {
    throw new UsageError(
      `${cfgPath}: "target_modules" must be a list of module names (${LORA_TARGETS.join(", ")}); ` +
        `got ${JSON.stringify(c.target_modules)}`,
    );
  }
  for (const t of c.target_modules) {
    if (!isLoraTarget(t)) {
      throw new UsageError(
        `${cfgPath}: "target_modules" has "${t}", which is not a Gemma-2 projection (${
          LORA_TARGETS.join(", ")
        })`,
      );
    }
  }
  const targets = c.target_modules as LoraTarget[];
  const nl = model.num_hidden_layers;
  let layers: number[] | undefined;
  if (c.layers_to_transform !== null) {
    layers = [c.layers_to_transform].flat();
    const bad = layers.find((l) => l < 0 || l >= nl);
    if (bad !== undefined) {
      throw new UsageError(
        `${cfgPath}: "layers_to_transform" has layer ${bad}, but the model has ${nl} layers`,
      );
    }
  }
  if (expect.lora) {
    const e = expect.lora;
    if (e.r !== undefined && e.r !== c.r) {
      throw new UsageError(
        `${cfgPath}: "r" is ${c.r} but the run's lora.r is ${e.r}; set lora.r=${c.r} or use another adapter`,
      );
    }
    if (e.lora_alpha !== undefined && e.lora_alpha !== c.lora_alpha) {
      throw new UsageError(
        `${cfgPath}: "lora_alpha" is ${c.lora_alpha} but the run's lora.lora_alpha is ${e.lora_alpha}; set lora.lora_alpha=${c.lora_alpha}`,
      );
    }
    if (e.target_modules) {
      const want = [...e.target_modules].sort().join(",");
      if ([...targets].sort().join(",") !== want) {
        throw new UsageError(
          `${cfgPath}: "target_modules" is ${JSON.stringify(c.target_modules)} but the run targets ` +
            `${JSON.stringify(e.target_modules)}; make lora.target_modules match the adapter`,
        );
      }
    }
  }
  const base = c.base_model_name_or_path;
  if (expect.baseModel !== undefined && base !== expect.baseModel) {
    warnings.push(
      `${cfgPath}: base_model_name_or_path is ${
        JSON.stringify(base)
      } but the model is "${expect.baseModel}"; ` +
        "the shapes match, so it is applied anyway",
    );
  }
  const layout = loraLayout(model, c.r, targets, layers);
  const want = new Map(layout.tensors.map((t) => [t.key, t]));
  for (const [key, t] of a.tensors) {
    const info = want.get(key);
    if (!info) {
      const m = KEY_RE.exec(key);
      let why = "is not a LoRA weight of a Gemma-2 projection";
      if (m) {
        const [, layer, , module] = m;
        if (Number(layer) >= nl) why = `is for layer ${layer}, but the model has ${nl} layers`;
        else if (!isLoraTarget(module)) why = `targets "${module}", which is not a Gemma-2 projection`;
        else if (!targets.includes(module)) {
          why = `targets ${module}, which is not in target_modules ${JSON.stringify(c.target_modules)}`;
        } else if (layers && !layers.includes(Number(layer))) {
          why = `is for layer ${layer}, not in layers_to_transform`;
        } else if (modulePath(Number(layer), module) !== key.slice(17, key.indexOf(".lora_"))) {
          why = `puts ${module} under the wrong block`;
        }
      }
      throw new UsageError(`${wPath}: unexpected tensor "${key}": it ${why}`);
    }
    if (t.shape.length !== 2 || t.shape[0] !== info.shape[0] || t.shape[1] !== info.shape[1]) {
      throw new UsageError(
        `${wPath}: tensor "${key}" has shape [${t.shape}] but this model needs [${info.shape}] ` +
          `(r=${c.r}, ${info.module} ${info.which === "A" ? "in" : "out"} features ` +
          `${
            info.which === "A" ? info.shape[1] : info.shape[0]
          }); the adapter was made for another base model or rank`,
      );
    }
  }
  for (const t of layout.tensors) {
    if (!a.tensors.has(t.key)) {
      throw new UsageError(
        `${wPath}: missing tensor "${t.key}" (target_modules ${JSON.stringify(c.target_modules)} over ` +
          `${layout.layers.length} layers needs it)`,
      );
    }
  }
  return { layout, scaling: loraScaling(c.lora_alpha, c.r, c.use_rslora), warnings };
}

/** Validates and converts an adapter into flat LoraParams for the engine. */
export function adapterToParams(
  a: LoadedAdapter,
  model: Gemma2Config,
  expect: AdapterExpectations = {},
): { params: LoraParams; warnings: string[]; config: AdapterConfig } {
  const v = validateAdapter(a, model, expect);
  const data = new Float32Array(v.layout.total);
  for (const t of v.layout.tensors) data.set(a.tensors.get(t.key)!.data, t.offset);
  return {
    params: {
      layout: v.layout,
      lora_alpha: a.config.lora_alpha,
      use_rslora: a.config.use_rslora,
      scaling: v.scaling,
      data,
    },
    warnings: v.warnings,
    config: a.config,
  };
}
