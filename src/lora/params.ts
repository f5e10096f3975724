/**
 * LoRA parameters: one lora_A [r, in] and one lora_B [out, r] per targeted projection per layer (PEFT
 * lora/layer.py LoraLayer.update_layer), all f32 and held in ONE flat Float32Array / GPU buffer so the optimizer,
 * the gradient norm and checkpoints see a single tensor. Every tensor starts at a multiple of 64 elements (256
 * bytes), so each can be bound as `{buffer, offset, size}` (WebGPU's largest storage offset alignment is 256).
 *
 * Init (PEFT `reset_lora_parameters` with init_lora_weights=True): A ~ kaiming_uniform_(a=√5), which for a
 * [r, in] weight is U(-1/√in, 1/√in); B = 0, so a fresh adapter is a no-op. Our generator is seeded and
 * counter-based (the same hash as the dropout masks, src/lora/dropout.ts), so each tensor's values depend only on
 * (seed, layer, module), not on which other modules are targeted; it is not torch's RNG stream.
 */
import {
  type Gemma2Config,
  isProjection,
  peftKey,
  type Projection,
  projectionDims,
  PROJECTIONS,
} from "../config/gemma2.ts";
import type { Binding } from "../gpu/recorder.ts";
import type { BufferPool } from "../gpu/buffers.ts";
import { upload } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { readF32 } from "../gpu/readback.ts";
import { dropoutKey, type DropoutSpec, pcgHash } from "./dropout.ts";

/** The projections LoRA can target (PEFT can wrap every one), in the order of their stream ids. */
export const LORA_TARGETS: readonly Projection[] = PROJECTIONS;
export type LoraTarget = Projection;

export function isLoraTarget(s: string): s is LoraTarget {
  return isProjection(s);
}

/** The dropout stream of one LoRA layer: distinct per (layer, module) so masks are independent (PEFT: one
 *  nn.Dropout per wrapped module). */
export function loraStreamId(layer: number, m: LoraTarget): number {
  return layer * 8 + LORA_TARGETS.indexOf(m);
}

/** PEFT LoraLayer.update_layer: lora_alpha / r, or lora_alpha / √r with use_rslora. */
export function loraScaling(alpha: number, r: number, useRslora = false): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

export interface LoraTensorInfo {
  key: string;
  layer: number;
  module: LoraTarget;
  which: "A" | "B";
  /** [r, in] for A, [out, r] for B. */
  shape: [number, number];
  /** Element offset in the flat array (a multiple of 64). */
  offset: number;
  size: number;
}

/** One targeted projection: its two tensors and dims. */
export interface LoraModuleInfo {
  layer: number;
  module: LoraTarget;
  inF: number;
  outF: number;
  stream: number;
  A: LoraTensorInfo;
  B: LoraTensorInfo;
}

export interface LoraLayout {
  r: number;
  /** Targeted modules in LORA_TARGETS order. */
  targets: LoraTarget[];
  layers: number[];
  modules: LoraModuleInfo[];
  /** All tensors, in flat-array order (layer, module, A then B). */
  tensors: LoraTensorInfo[];
  /** Elements of the flat array, padding included. */
  total: number;
  /** Parameters without padding (what PEFT's print_trainable_parameters counts). */
  count: number;
}

const ALIGN = 64;

/** The flat layout for a model config, rank and targets (optionally restricted to some layers). */
export function loraLayout(
  cfg: Gemma2Config,
  r: number,
  targetModules: readonly string[],
  layers?: readonly number[],
): LoraLayout {
  if (!Number.isInteger(r) || r < 1) throw new RangeError(`LoRA rank must be a positive integer, got ${r}`);
  for (const t of targetModules) {
    if (!isLoraTarget(t)) {
      throw new RangeError(`unknown LoRA target module "${t}" (one of ${LORA_TARGETS.join(", ")})`);
    }
  }
  const targets = LORA_TARGETS.filter((t) => targetModules.includes(t));
  const layerList = layers ? [...layers].sort((a, b) => a - b) : [...Array(cfg.num_hidden_layers).keys()];
  const modules: LoraModuleInfo[] = [];
  const tensors: LoraTensorInfo[] = [];
  let offset = 0;
  let count = 0;
  const add = (layer: number, module: LoraTarget, which: "A" | "B", shape: [number, number]) => {
    const size = shape[0] * shape[1];
    const t: LoraTensorInfo = {
      key: peftKey(layer, module, which),
      layer,
      module,
      which,
      shape,
      offset,
      size,
    };
    tensors.push(t);
    offset += Math.ceil(size / ALIGN) * ALIGN;
    count += size;
    return t;
  };
  for (const layer of layerList) {
    for (const module of targets) {
      const { inF, outF } = projectionDims(cfg, module);
      const A = add(layer, module, "A", [r, inF]);
      const B = add(layer, module, "B", [outF, r]);
      modules.push({ layer, module, inF, outF, stream: loraStreamId(layer, module), A, B });
    }
  }
  return { r, targets, layers: layerList, modules, tensors, total: offset, count };
}

export interface LoraParams {
  layout: LoraLayout;
  lora_alpha: number;
  use_rslora: boolean;
  /** lora_alpha / r (or / √r). */
  scaling: number;
  /** All tensors, flat (see LoraTensorInfo.offset). */
  data: Float32Array<ArrayBuffer>;
}

/** The view of one tensor inside the flat array (shares memory). */
export function tensorView(
  p: { data: Float32Array<ArrayBuffer> },
  t: LoraTensorInfo,
): Float32Array<ArrayBuffer> {
  return p.data.subarray(t.offset, t.offset + t.size);
}

/** Init domain for the counter-based generator: a `step` value dropout never uses. */
const INIT_STEP = 0xffffffff;

/** Fresh parameters: A ~ U(-1/√in, 1/√in) seeded per (seed, layer, module), B = 0. */
export function initLoraParams(
  cfg: Gemma2Config,
  lora: { r: number; lora_alpha: number; target_modules: readonly string[]; use_rslora?: boolean },
  seed: number,
): LoraParams {
  const layout = loraLayout(cfg, lora.r, lora.target_modules);
  const data = new Float32Array(layout.total);
  for (const m of layout.modules) {
    const [k0, k1] = dropoutKey(seed >>> 0, INIT_STEP, m.stream);
    const bound = 1 / Math.sqrt(m.inF); // kaiming_uniform_(a=√5) on [r, in]: gain √(1/3), bound √3·gain/√in
    const a = data.subarray(m.A.offset, m.A.offset + m.A.size);
    for (let i = 0; i < a.length; i++) {
      const u = (pcgHash((pcgHash((i + k0) >>> 0) ^ k1) >>> 0) >>> 8) / 2 ** 24; // [0, 1), 24 bits
      a[i] = (2 * u - 1) * bound;
    }
  }
  const use_rslora = lora.use_rslora ?? false;
  return {
    layout,
    lora_alpha: lora.lora_alpha,
    use_rslora,
    scaling: loraScaling(lora.lora_alpha, lora.r, use_rslora),
    data,
  };
}

// ---- GPU side ----

/** The flat parameter (or gradient) buffer on the GPU, in a LoraLayout. */
export interface LoraGpu {
  layout: LoraLayout;
  buffer: GPUBuffer;
}

/** Uploads the flat parameters (persistent "lora" allocation when a pool is given). */
export function uploadLoraParams(gpu: Gpu, p: LoraParams, label = "lora", pool?: BufferPool): LoraGpu {
  if (!pool) return { layout: p.layout, buffer: upload(gpu, label, p.data) };
  const buffer = pool.persistent(label, "lora", p.data.byteLength);
  gpu.device.queue.writeBuffer(buffer, 0, p.data);
  return { layout: p.layout, buffer };
}

/** A zeroed buffer in the same layout (gradients). */
export function createLoraBuffer(gpu: Gpu, layout: LoraLayout, label: string, pool?: BufferPool): LoraGpu {
  const bytes = layout.total * 4;
  if (!pool) return { layout, buffer: upload(gpu, label, new Float32Array(layout.total)) };
  const buffer = pool.persistent(label, "lora", bytes);
  gpu.device.queue.writeBuffer(buffer, 0, new Float32Array(layout.total));
  return { layout, buffer };
}

/** Reads the GPU copy back into `p.data` (for checkpoints). */
export async function downloadLoraParams(gpu: Gpu, g: LoraGpu, p: LoraParams): Promise<void> {
  p.data.set(await readF32(gpu, g.buffer, 0, p.layout.total));
}

/** The binding of one tensor inside a flat buffer. */
export function tensorBinding(g: LoraGpu, t: LoraTensorInfo): Binding {
  return { buffer: g.buffer, offset: t.offset * 4, size: t.size * 4 };
}

/** The LoRA branch of one projection. */
export interface LoraBranch {
  /** lora_A weight [r, in], f32. */
  A: Binding;
  /** lora_B weight [out, r], f32. */
  B: Binding;
  r: number;
  /** lora_alpha / r (or / sqrt(r) with use_rslora). */
  scaling: number;
  /** Training: the micro-batch's mask spec. Eval / inference: null or omitted (or p = 0). */
  dropout?: DropoutSpec | null;
}

/**
 * The LoraBranch of one projection for linearForward / linearBackward. `dropout` is the micro-batch's
 * {p, seed, step} (training) or null (eval); the stream is filled in per module.
 */
export function loraBranch(
  g: LoraGpu,
  p: Pick<LoraParams, "scaling">,
  m: LoraModuleInfo,
  dropout: Omit<DropoutSpec, "stream"> | null,
): LoraBranch {
  return {
    A: tensorBinding(g, m.A),
    B: tensorBinding(g, m.B),
    r: g.layout.r,
    scaling: p.scaling,
    dropout: dropout && dropout.p > 0 ? { ...dropout, stream: m.stream } : null,
  };
}

/** The module info of (layer, module), or undefined when that projection is not targeted. */
export function findModule(
  layout: LoraLayout,
  layer: number,
  module: LoraTarget,
): LoraModuleInfo | undefined {
  return layout.modules.find((m) => m.layer === layer && m.module === module);
}
