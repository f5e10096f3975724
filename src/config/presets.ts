/**
 * Presets that fill keys the user did not set. `--model tiny` is the offline try-out (docs/ARCHITECTURE.md#commands-and-exit-codes: the same
 * pipeline, < 2 min on a CPU with lavapipe): the full pipeline runs, but a short schedule with a high learning
 * rate so the random tiny model's loss visibly falls within a minute. Any key given in a config file, --set
 * or a flag still wins.
 */
type Obj = Record<string, unknown>;

export const TINY_TRYOUT_PRESET: Obj = {
  model: { max_sequence_length: 192 },
  training: {
    max_steps: 20,
    per_device_train_batch_size: 4,
    gradient_accumulation_steps: 1,
    learning_rate: 1e-2,
    warmup_ratio: 0.1,
    eval_steps: 10,
    save_steps: 10,
    eval_generate_samples: 2,
    eval_max_new_tokens: 48,
  },
};

/** Adds preset values under every key the user left unset. */
export function applyPreset(user: Obj, preset: Obj): Obj {
  const out: Obj = { ...user };
  for (const [k, v] of Object.entries(preset)) {
    const u = out[k];
    if (v && typeof v === "object" && !Array.isArray(v)) {
      out[k] = applyPreset(u && typeof u === "object" && !Array.isArray(u) ? (u as Obj) : {}, v as Obj);
    } else if (u === undefined) {
      out[k] = v;
    }
  }
  return out;
}

export function presetFor(modelName: unknown): Obj | null {
  return modelName === "tiny" ? TINY_TRYOUT_PRESET : null;
}
