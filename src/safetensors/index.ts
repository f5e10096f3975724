/**
 * Sharded checkpoints: `model.safetensors.index.json` = {"metadata": {"total_size": N}, "weight_map":
 * {tensor name: shard file name}} (transformers `save_pretrained` with max_shard_size).
 */
import { z } from "zod";
import { SafetensorsError } from "./header.ts";

export const INDEX_FILE = "model.safetensors.index.json";
export const SINGLE_FILE = "model.safetensors";

export const ShardIndexSchema = z.object({
  metadata: z.object({ total_size: z.number().int().min(0).optional() }).passthrough().optional(),
  weight_map: z.record(z.string(), z.string()),
}).passthrough();
export type ShardIndex = z.infer<typeof ShardIndexSchema>;

/** Parses and validates an index: every shard is a plain file name (no directories, no `..`). */
export function parseShardIndex(text: string, file: string): ShardIndex {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const r = ShardIndexSchema.safeParse(obj);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new SafetensorsError(`${file}: field "${i.path.join(".")}": ${i.message}`);
  }
  for (const [name, shard] of Object.entries(r.data.weight_map)) {
    if (!/^[\w.\-]+\.safetensors$/.test(shard) || shard.includes("..")) {
      throw new SafetensorsError(
        `${file}: tensor "${name}" maps to "${shard}", which is not a safetensors file name`,
      );
    }
  }
  if (Object.keys(r.data.weight_map).length === 0) throw new SafetensorsError(`${file}: weight_map is empty`);
  return r.data;
}

/** Shard file names in order of first appearance in weight_map, each once. */
export function shardFiles(index: ShardIndex): string[] {
  return [...new Set(Object.values(index.weight_map))];
}

/**
 * Checks that the shards' headers hold exactly the tensors the index names, each in the shard it names.
 * `shardTensors` maps shard file name -> tensor names in that shard.
 */
export function checkShards(index: ShardIndex, shardTensors: Map<string, string[]>, file: string): void {
  for (const [shard, names] of shardTensors) {
    for (const n of names) {
      const want = index.weight_map[n];
      if (want === undefined) {
        throw new SafetensorsError(`${file}: ${shard} holds "${n}", which the index does not list`);
      }
      if (want !== shard) {
        throw new SafetensorsError(`${file}: "${n}" is in ${shard} but the index says ${want}`);
      }
    }
  }
  for (const [n, shard] of Object.entries(index.weight_map)) {
    if (!shardTensors.get(shard)?.includes(n)) {
      throw new SafetensorsError(`${file}: "${n}" should be in ${shard} but is not there`);
    }
  }
}
