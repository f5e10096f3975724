import { resolveConfig } from "../../src/config/merge.ts";
import { defaultConfig } from "../../src/config/schema.ts";
import { UsageError } from "../../src/util/errors.ts";

function assertEq(a: unknown, b: unknown, what: string) {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error(`${what}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`);
  }
}

function expectUsage(fn: () => unknown, ...needles: string[]): string {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    for (const n of needles) {
      if (!e.message.includes(n)) throw new Error(`message lacks "${n}": ${e.message}`);
    }
    return e.message;
  }
  throw new Error("expected a UsageError");
}

Deno.test("defaults are the seed config", () => {
  const c = defaultConfig();
  assertEq(c.model.name, "google/gemma-2-2b-jpn-it", "model");
  assertEq(c.model.max_sequence_length, 512, "seq");
  assertEq(c.quantization, {
    load_in_4bit: true,
    bnb_4bit_use_double_quant: true,
    bnb_4bit_quant_type: "nf4",
    bnb_4bit_compute_dtype: "float16",
  }, "quant");
  assertEq([c.lora.r, c.lora.lora_alpha, c.lora.lora_dropout], [16, 32, 0.1], "lora");
  assertEq(c.lora.target_modules, ["q_proj", "k_proj", "v_proj", "o_proj"], "targets");
  const t = c.training;
  assertEq(
    [t.num_train_epochs, t.learning_rate, t.weight_decay, t.warmup_ratio, t.lr_scheduler_type, t.num_cycles],
    [30, 8e-5, 0.06, 0.25, "cosine_with_restarts", 1],
    "training",
  );
  assertEq([t.per_device_train_batch_size, t.gradient_accumulation_steps, t.max_grad_norm, t.seed], [
    4,
    8,
    1,
    42,
  ], "batch");
  assertEq([t.adam_beta1, t.adam_beta2, t.adam_epsilon], [0.9, 0.999, 1e-8], "adam");
  assertEq(c.data, "data/dialogue/processed/1gouki.json", "data");
});

Deno.test("precedence: defaults < config file < --set < flags", () => {
  const dir = Deno.makeTempDirSync();
  const file = `${dir}/c.json`;
  Deno.writeTextFileSync(
    file,
    JSON.stringify({ training: { learning_rate: 1e-4, seed: 1, num_train_epochs: 2 } }),
  );
  const c = resolveConfig({
    configFile: file,
    sets: ["training.seed=2", "training.num_train_epochs=5", 'lora.target_modules=["q_proj"]'],
    flags: { training: { num_train_epochs: 7 } },
  });
  assertEq(c.training.learning_rate, 1e-4, "file value kept");
  assertEq(c.training.seed, 2, "--set beats file");
  assertEq(c.training.num_train_epochs, 7, "flag beats --set");
  assertEq(c.lora.target_modules, ["q_proj"], "JSON value");
  assertEq(c.training.weight_decay, 0.06, "default kept");
});

Deno.test("unknown key suggests the closest valid key", () => {
  expectUsage(
    () => resolveConfig({ sets: ["training.learing_rate=1"] }),
    "training.learing_rate",
    "training.learning_rate",
  );
  expectUsage(() => resolveConfig({ sets: ["lora.alpha=8"] }), "lora.alpha", "lora.lora_alpha");
});

Deno.test("bad values name the key, the value and what is allowed", () => {
  expectUsage(
    () => resolveConfig({ sets: ["training.lr_scheduler_type=cosine2"] }),
    "training.lr_scheduler_type",
    "cosine2",
  );
  expectUsage(() => resolveConfig({ sets: ["training.learning_rate=-1"] }), "training.learning_rate", "-1");
  expectUsage(() => resolveConfig({ sets: ["noequals"] }), "key.path=value");
});

Deno.test("a config file that is not JSON is a usage error naming the file", () => {
  const dir = Deno.makeTempDirSync();
  Deno.writeTextFileSync(`${dir}/bad.json`, "{nope");
  expectUsage(() => resolveConfig({ configFile: `${dir}/bad.json` }), `${dir}/bad.json`);
});

Deno.test("--model tiny fills the try-out preset only where the user set nothing", () => {
  const c = resolveConfig({ flags: { model: { name: "tiny" } }, sets: ["training.learning_rate=1e-4"] });
  assertEq(c.training.max_steps, 20, "preset max_steps");
  assertEq(c.training.learning_rate, 1e-4, "user value wins");
  assertEq(c.model.max_sequence_length, 192, "preset seq");
  const real = resolveConfig({});
  assertEq(real.training.max_steps, -1, "no preset for the real model");
});
