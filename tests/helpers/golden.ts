/** Loading the golden fixtures (tests/fixtures/golden, made as tests/fixtures/golden/PROVENANCE.md says) for engine tests. */
import { readSafetensorsFile } from "../../src/safetensors/read_file.ts";
import { type Tensor, toFloat64 } from "../../src/safetensors/decode.ts";
import { type Gemma2Config, Gemma2ConfigSchema } from "../../src/config/gemma2.ts";
import type { HostTensor } from "../../src/quant/store.ts";
import { loraLayout, type LoraParams } from "../../src/lora/params.ts";

export const GOLDEN = new URL("../fixtures/golden/", import.meta.url).pathname;

export async function goldenTensors(file: string): Promise<Map<string, Tensor>> {
  return (await readSafetensorsFile(GOLDEN + file)).tensors;
}

export function f64(t: Map<string, Tensor>, name: string): Float64Array {
  const x = t.get(name);
  if (!x) throw new Error(`golden tensor ${name} missing`);
  return toFloat64(x);
}

export async function goldenConfig(dir = "tiny_gemma2"): Promise<Gemma2Config> {
  return Gemma2ConfigSchema.parse(JSON.parse(await Deno.readTextFile(`${GOLDEN}${dir}/config.json`)));
}

/** The tiny checkpoint as dense host tensors (HF names). */
export async function goldenModelTensors(dir = "tiny_gemma2"): Promise<[string, HostTensor][]> {
  const t = await goldenTensors(`${dir}/model.safetensors`);
  return [...t].map((
    [name, x],
  ) => [name, { kind: "dense", shape: x.shape, data: new Float32Array(x.data as Float32Array) }]);
}

/** The golden PEFT adapter as flat LoraParams (r 16, alpha 32, q/k/v/o). */
export async function goldenLora(config: Gemma2Config): Promise<LoraParams> {
  const t = await goldenTensors("lora_adapter/adapter_model.safetensors");
  const layout = loraLayout(config, 16, ["q_proj", "k_proj", "v_proj", "o_proj"]);
  const data = new Float32Array(layout.total);
  for (const info of layout.tensors) {
    const x = t.get(info.key);
    if (!x) throw new Error(`adapter lacks ${info.key}`);
    data.set(x.data as Float32Array, info.offset);
  }
  return { layout, lora_alpha: 32, use_rslora: false, scaling: 2, data };
}
