/**
 * The memory plan (`maieutic bench --plan`, docs/ARCHITECTURE.md#performance): the engine's allocations for a model's real shapes,
 * counted without a device. The weights (randomWeights with gpu = null) and the Gemma2Engine (training
 * buffers, LoRA, AdamW state) are built in BufferPool plan mode, so every figure comes from the same
 * allocation sequence and the same allocator that `maieutic train` runs; this file only adds labels (which
 * buffers make up each kind) and the target.
 */
import { formatMemory as formatBytes } from "../util/format.ts";
import { BufferPool, sizeClass } from "../gpu/buffers.ts";
import { initLoraParams } from "../lora/params.ts";
import type { Gemma2Config } from "../config/gemma2.ts";
import { Gemma2Engine } from "../model/engine.ts";
import { randomWeights } from "../model/weights.ts";
import { allocOptimizer } from "../train/optimizer.ts";

/** The benchmark's target for the seed configuration on gemma-2-2b (issue #5). */
export const PLAN_LIMIT_BYTES = 4 * 2 ** 30;

export interface PlanOptions {
  config: Gemma2Config;
  /** Where the shapes come from (model name). */
  model: string;
  batch: number;
  seq: number;
  /** Matmul operand / embedding-table type (f16 when compute is float16 and the adapter has shader-f16). */
  dtype: "f16" | "f32";
  quantized: boolean;
  checkpointing: boolean;
  training: boolean;
  lora: { r: number; lora_alpha: number; target_modules: readonly string[]; lora_dropout: number } | null;
  limitBytes?: number;
}

export interface PlanGroup {
  /** Buffer label with the layer / index numbers replaced by `#`. */
  group: string;
  kind: string;
  count: number;
  bytes: number;
}

export interface MemoryPlan {
  model: string;
  shapes: {
    layers: number;
    hidden: number;
    intermediate: number;
    heads: number;
    kv_heads: number;
    head_dim: number;
    vocab: number;
    params_projections: number;
  };
  batch: number;
  seq: number;
  tokens: number;
  dtype: "f16" | "f32";
  quantized: boolean;
  checkpointing: boolean;
  training: boolean;
  lora: { r: number; targets: string[]; params: number } | null;
  peak_bytes: number;
  live_bytes: number;
  /** Bytes per kind (weights, embedding, activations, gradients, lora, optimizer, inputs) after construction. */
  by_kind: Record<string, number>;
  /** Bytes per kind at the moment of the peak. */
  at_peak: Record<string, number>;
  /** The buffers behind the kinds, largest first. */
  groups: PlanGroup[];
  target: { limit_bytes: number; pass: boolean };
  /** Device memory the plan does not see. */
  not_counted: string[];
}

/** A pool that also remembers the label and size of every allocation (plan mode only). */
class LabelledPool extends BufferPool {
  readonly groups = new Map<string, PlanGroup>();

  constructor() {
    super(null);
  }

  private note(label: string, kind: string, bytes: number): void {
    const group = label.replace(/\d+/g, "#");
    const key = `${kind}\u0000${group}`;
    const g = this.groups.get(key) ?? { group, kind, count: 0, bytes: 0 };
    g.count++;
    g.bytes += bytes;
    this.groups.set(key, g);
  }

  override persistent(label: string, kind: string, size: number): GPUBuffer {
    this.note(label, kind, Math.ceil(size / 16) * 16);
    return super.persistent(label, kind, size);
  }

  override acquire(label: string, kind: string, size: number): GPUBuffer {
    this.note(label, kind, sizeClass(size));
    return super.acquire(label, kind, size);
  }
}

export function memoryPlan(o: PlanOptions): MemoryPlan {
  const c = o.config;
  const pool = new LabelledPool();
  const weights = randomWeights(null, pool, c, o.dtype, o.quantized);
  const lora = o.lora ? initLoraParams(c, o.lora, 0) : null;
  const engine = new Gemma2Engine(null, pool, weights, lora, {
    maxBatch: o.batch,
    maxSeq: o.seq,
    compute: o.dtype,
    checkpointing: o.checkpointing,
    loraDropout: o.lora?.lora_dropout ?? 0,
    training: o.training,
  });
  // The trainer allocates the optimizer state beside the engine (src/train/step_engine.ts).
  if (o.training && lora) allocOptimizer(engine);
  const st = pool.stats();
  const H = c.hidden_size, I = c.intermediate_size;
  const QD = c.num_attention_heads * c.head_dim, KVD = c.num_key_value_heads * c.head_dim;
  const limit = o.limitBytes ?? PLAN_LIMIT_BYTES;
  return {
    model: o.model,
    shapes: {
      layers: c.num_hidden_layers,
      hidden: H,
      intermediate: I,
      heads: c.num_attention_heads,
      kv_heads: c.num_key_value_heads,
      head_dim: c.head_dim,
      vocab: c.vocab_size,
      params_projections: c.num_hidden_layers * (2 * H * QD + 2 * H * KVD + 3 * H * I),
    },
    batch: o.batch,
    seq: o.seq,
    tokens: o.batch * o.seq,
    dtype: o.dtype,
    quantized: o.quantized,
    checkpointing: o.checkpointing,
    training: o.training,
    lora: lora ? { r: lora.layout.r, targets: [...lora.layout.targets], params: lora.layout.count } : null,
    peak_bytes: st.peakBytes,
    live_bytes: st.liveBytes,
    by_kind: st.byKind,
    at_peak: st.atPeak,
    groups: [...pool.groups.values()].sort((a, b) => b.bytes - a.bytes),
    target: { limit_bytes: limit, pass: st.peakBytes <= limit },
    not_counted: [
      "uniform-parameter arenas of the Recorders (64 KiB chunks, reused)",
      "per-device constants: NF4 tables (1 KiB), placeholder and no-mask buffers (16 B each)",
      "the step's 16-byte mappable scalar buffer (loss and gradient norm)",
      "the driver's own allocations (pipelines, command buffers)",
      'eval-time generation (src/model/decode.ts, kind "decode": KV cache and decode activations)',
    ],
  };
}

/** The plan as text (what `bench --plan` prints without --json). */
export function formatPlan(p: MemoryPlan, maxGroups = 16): string {
  const lines: string[] = [];
  const s = p.shapes;
  lines.push(
    `memory plan: ${p.model} (${s.layers} layers, hidden ${s.hidden}, vocab ${s.vocab}), batch ${p.batch} x seq ${p.seq}` +
      `, ${p.quantized ? "NF4" : "dense"} weights, ${p.dtype} table/operands` +
      `, checkpointing ${p.checkpointing ? "on" : "off"}` +
      (p.lora ? `, LoRA r${p.lora.r} on ${p.lora.targets.join("/")} (${p.lora.params} params)` : ""),
  );
  lines.push("");
  lines.push(`  ${"kind".padEnd(14)}${"bytes".padStart(16)}${"".padStart(12)}${"at peak".padStart(16)}`);
  for (const [k, v] of Object.entries(p.by_kind).sort((a, b) => b[1] - a[1])) {
    lines.push(
      `  ${k.padEnd(14)}${String(v).padStart(16)}${formatBytes(v).padStart(12)}${
        String(p.at_peak[k] ?? 0).padStart(16)
      }`,
    );
  }
  lines.push(
    `  ${"peak".padEnd(14)}${String(p.peak_bytes).padStart(16)}${formatBytes(p.peak_bytes).padStart(12)}`,
  );
  lines.push("");
  lines.push(`  largest buffer groups (# = layer/index):`);
  for (const g of p.groups.slice(0, maxGroups)) {
    lines.push(
      `    ${g.kind.padEnd(12)} ${g.group.padEnd(34)} x${String(g.count).padEnd(5)} ${formatBytes(g.bytes)}`,
    );
  }
  lines.push("");
  lines.push(
    `  target: peak <= ${formatBytes(p.target.limit_bytes)}: ${p.target.pass ? "PASS" : "FAIL"} ` +
      `(${formatBytes(p.peak_bytes)})`,
  );
  lines.push(`  not counted: ${p.not_counted.join("; ")}`);
  return lines.join("\n");
}

export { formatBytes };
