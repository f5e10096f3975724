/**
 * All LoRA tensors of the model in one flat arena (parameters, gradients, AdamW m and v share the layout),
 * so the gradient norm, clipping and AdamW are one dispatch each over the whole arena (DESIGN §7, §9).
 * Each tensor starts at a 256-byte-aligned offset, so it can be bound as `{buffer, offset, size}` on any
 * adapter; the padding stays zero (zero gradient: it changes neither the norm nor AdamW's state).
 * Keys are PEFT's adapter key names (../shared/golden/PEFT_ADAPTER_FORMAT.md).
 */
import type { Gemma2Config } from "./config.ts";
import type { LoraConfig } from "../config/schema.ts";

export type TargetModule = "q_proj" | "k_proj" | "v_proj" | "o_proj" | "gate_proj" | "up_proj" | "down_proj";

export interface LoraTensorSlot {
  key: string;
  layer: number;
  module: TargetModule;
  which: "A" | "B";
  shape: [number, number];
  /** Offset in f32 elements (a multiple of 64 = 256 bytes). */
  offset: number;
  length: number;
}

export interface LoraModuleSlots {
  layer: number;
  module: TargetModule;
  inF: number;
  outF: number;
  A: LoraTensorSlot;
  B: LoraTensorSlot;
}

export interface LoraLayout {
  r: number;
  scaling: number;
  modules: LoraModuleSlots[];
  tensors: LoraTensorSlot[];
  /** Arena length in f32 elements (padded). */
  length: number;
}

const ALIGN = 64; // f32 elements = 256 bytes

export function moduleDims(c: Gemma2Config, m: TargetModule): { inF: number; outF: number } {
  const H = c.hidden_size;
  switch (m) {
    case "q_proj":
      return { inF: H, outF: c.num_attention_heads * c.head_dim };
    case "k_proj":
    case "v_proj":
      return { inF: H, outF: c.num_key_value_heads * c.head_dim };
    case "o_proj":
      return { inF: c.num_attention_heads * c.head_dim, outF: H };
    case "gate_proj":
    case "up_proj":
      return { inF: H, outF: c.intermediate_size };
    case "down_proj":
      return { inF: c.intermediate_size, outF: H };
  }
}

export function peftKey(layer: number, m: TargetModule, which: "A" | "B"): string {
  const block = m.endsWith("_proj") && ["gate_proj", "up_proj", "down_proj"].includes(m) ? "mlp" : "self_attn";
  return `base_model.model.model.layers.${layer}.${block}.${m}.lora_${which}.weight`;
}

export function loraLayout(c: Gemma2Config, lora: Pick<LoraConfig, "r" | "lora_alpha" | "target_modules">): LoraLayout {
  const modules: LoraModuleSlots[] = [];
  const tensors: LoraTensorSlot[] = [];
  let off = 0;
  const slot = (layer: number, module: TargetModule, which: "A" | "B", shape: [number, number]) => {
    const length = shape[0] * shape[1];
    const s: LoraTensorSlot = { key: peftKey(layer, module, which), layer, module, which, shape, offset: off, length };
    off += Math.ceil(length / ALIGN) * ALIGN;
    tensors.push(s);
    return s;
  };
  // Module order follows the model (q, k, v, o, gate, up, down), whatever order the config lists them in.
  const order: TargetModule[] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
  const targets = order.filter((m) => lora.target_modules.includes(m));
  for (let layer = 0; layer < c.num_hidden_layers; layer++) {
    for (const module of targets) {
      const { inF, outF } = moduleDims(c, module);
      const A = slot(layer, module, "A", [lora.r, inF]);
      const B = slot(layer, module, "B", [outF, lora.r]);
      modules.push({ layer, module, inF, outF, A, B });
    }
  }
  return { r: lora.r, scaling: lora.lora_alpha / lora.r, modules, tensors, length: Math.max(off, ALIGN) };
}

/** Packs named tensors into an arena-shaped Float32Array (missing keys are an error). */
export function packArena(layout: LoraLayout, tensors: Map<string, Float32Array>): Float32Array<ArrayBuffer> {
  const out = new Float32Array(layout.length);
  for (const t of layout.tensors) {
    const v = tensors.get(t.key);
    if (!v) throw new Error(`missing LoRA tensor ${t.key}`);
    if (v.length !== t.length) throw new Error(`${t.key}: ${v.length} values, expected ${t.shape.join("x")}`);
    out.set(v, t.offset);
  }
  return out;
}

export function unpackArena(layout: LoraLayout, arena: Float32Array): Map<string, Float32Array<ArrayBuffer>> {
  const out = new Map<string, Float32Array<ArrayBuffer>>();
  for (const t of layout.tensors) out.set(t.key, arena.slice(t.offset, t.offset + t.length));
  return out;
}

/** PEFT's init: A ~ kaiming_uniform(a=√5) = U(±1/√in), B = 0; seeded (splitmix-style hash per element). */
export function initLoraArena(layout: LoraLayout, seed: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(layout.length);
  for (const m of layout.modules) {
    const bound = 1 / Math.sqrt(m.inF);
    for (let i = 0; i < m.A.length; i++) {
      out[m.A.offset + i] = (uniform01(seed, m.A.offset + i) * 2 - 1) * bound;
    }
  }
  return out;
}

function uniform01(seed: number, i: number): number {
  let h = (Math.imul(seed ^ 0x2545f491, 0x9e3779b1) ^ Math.imul(i, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}
