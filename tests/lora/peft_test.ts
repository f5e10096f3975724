/** PEFT adapter directories (src/lora/peft.ts) against PEFT_ADAPTER_FORMAT.md and the golden adapter PEFT wrote. */
import { join } from "node:path";
import { GEMMA2_2B, Gemma2ConfigSchema } from "../../src/config/gemma2.ts";
import { exitCodeFor, UsageError } from "../../src/util/errors.ts";
import { initLoraParams, tensorView } from "../../src/lora/params.ts";
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  adapterConfigJson,
  adapterToParams,
  loadAdapter,
  type LoadedAdapter,
  makeAdapterConfig,
  PEFT_CONFIG_KEYS,
  pyFloat,
  saveAdapter,
  validateAdapter,
} from "../../src/lora/peft.ts";
import { readHeaderFile, readSafetensorsFile } from "../../src/safetensors/read_file.ts";

const FIXTURE = new URL("../fixtures/golden/lora_adapter", import.meta.url).pathname;
const TINY = Gemma2ConfigSchema.parse(
  JSON.parse(Deno.readTextFileSync(new URL("../fixtures/golden/tiny_gemma2/config.json", import.meta.url))),
);

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

function expectUsageError(fn: () => unknown, ...parts: string[]): UsageError {
  try {
    fn();
  } catch (e) {
    assert(e instanceof UsageError, `expected UsageError, got ${(e as Error).name}: ${(e as Error).message}`);
    assert(exitCodeFor(e) === 2, "UsageError exits with 2");
    for (const p of parts) assert(e.message.includes(p), `message "${e.message}" lacks "${p}"`);
    return e;
  }
  throw new Error(`expected a UsageError mentioning ${parts.join(", ")}`);
}

async function expectUsageErrorAsync(fn: () => Promise<unknown>, ...parts: string[]): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof UsageError, `expected UsageError, got ${(e as Error).name}: ${(e as Error).message}`);
    for (const p of parts) assert(e.message.includes(p), `message "${e.message}" lacks "${p}"`);
    return;
  }
  throw new Error(`expected a UsageError mentioning ${parts.join(", ")}`);
}

Deno.test("loading the golden PEFT adapter gives PEFT's config and the right tensors", async () => {
  const a = await loadAdapter(FIXTURE);
  assert(
    a.config.r === 16 && a.config.lora_alpha === 32 && a.config.lora_dropout === 0,
    "r / alpha / dropout",
  );
  assert(a.config.base_model_name_or_path === "tiny_gemma2", "base model");
  assert(a.config.peft_type === "LORA" && a.config.task_type === "CAUSAL_LM", "types");
  assert(a.tensors.size === 4 * 4 * 2, `tensor count ${a.tensors.size}`);
  const { params, warnings } = adapterToParams(a, TINY, {
    baseModel: "tiny_gemma2",
    lora: { r: 16, lora_alpha: 32 },
  });
  assert(warnings.length === 0, `warnings: ${warnings}`);
  assert(params.scaling === 2, "scaling = alpha / r");
  const raw = await readSafetensorsFile(join(FIXTURE, ADAPTER_WEIGHTS_FILE));
  for (const t of params.layout.tensors) {
    const want = raw.tensors.get(t.key);
    assert(want && want.dtype === "F32", `${t.key} missing or not F32 in the golden file`);
    assert(want.shape.join() === t.shape.join(), `${t.key}: shape ${want.shape} vs ${t.shape}`);
    const got = tensorView(params, t);
    assert(got.every((v, i) => v === (want.data as Float32Array)[i]), `${t.key}: values differ`);
  }
  // The golden B is random (non-zero), so a wrong A/B swap or transpose would show above; spot-check a shape:
  const q = params.layout.tensors.find((t) =>
    t.key === "base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight"
  );
  assert(q?.shape.join("x") === "96x16", "q_proj lora_B is [out, r] = [96, 16]");
});

Deno.test("adapter_config.json is byte-identical to what PEFT 0.13.2 wrote; every PEFT field present", async () => {
  const want = await Deno.readTextFile(join(FIXTURE, ADAPTER_CONFIG_FILE));
  const cfg = makeAdapterConfig({
    baseModelNameOrPath: "tiny_gemma2",
    r: 16,
    lora_alpha: 32,
    lora_dropout: 0,
    // PEFT stores a set; the golden file lists them in this order.
    target_modules: ["k_proj", "v_proj", "o_proj", "q_proj"],
  });
  const got = adapterConfigJson(cfg);
  assert(got === want, `adapter_config.json differs:\n${got}\n--- want ---\n${want}`);
  assert(
    JSON.stringify(Object.keys(JSON.parse(got))) === JSON.stringify(PEFT_CONFIG_KEYS),
    "key set and order",
  );
  // Re-serializing a loaded config reproduces the file too.
  assert(adapterConfigJson((await loadAdapter(FIXTURE)).config) === want, "load → serialize round trip");
  // The training run's dropout is written as a Python float.
  const withDropout = adapterConfigJson({
    ...cfg,
    lora_dropout: 0.1,
    base_model_name_or_path: "google/gemma-2-2b-jpn-it",
  });
  assert(withDropout.includes('"lora_dropout": 0.1,'), "lora_dropout 0.1");
  assert(withDropout.includes('"base_model_name_or_path": "google/gemma-2-2b-jpn-it",'), "base model");
});

Deno.test("pyFloat follows Python's float repr", () => {
  const cases: [number, string][] = [
    [0, "0.0"],
    [0.1, "0.1"],
    [0.05, "0.05"],
    [1, "1.0"],
    [123, "123.0"],
    [1e-4, "0.0001"],
    [1e-5, "1e-05"],
    [2.5e-7, "2.5e-07"],
    [1e15, "1000000000000000.0"],
    [1e16, "1e+16"],
    [1.5e16, "1.5e+16"],
    [1e22, "1e+22"],
    [-0.3, "-0.3"],
    [1 / 3, "0.3333333333333333"],
  ];
  for (const [x, want] of cases) assert(pyFloat(x) === want, `pyFloat(${x}) = ${pyFloat(x)}, want ${want}`);
});

Deno.test("save → load round trip: PEFT key names, F32, metadata format=pt, values equal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "maieutic-adapter-" });
  try {
    const lora = { r: 8, lora_alpha: 16, target_modules: ["q_proj", "v_proj", "down_proj"] };
    const p = initLoraParams(TINY, lora, 1234);
    for (let i = 0; i < p.data.length; i++) if (p.data[i] === 0) p.data[i] = Math.fround(Math.sin(i)); // B ≠ 0
    const cfg = makeAdapterConfig({ baseModelNameOrPath: "tiny_gemma2", lora_dropout: 0.1, ...lora });
    await saveAdapter(dir, p, cfg);
    const header = await readHeaderFile(join(dir, ADAPTER_WEIGHTS_FILE));
    assert(
      JSON.stringify(header.metadata) === '{"format":"pt"}',
      `metadata ${JSON.stringify(header.metadata)}`,
    );
    const keys = Object.keys(header.tensors).sort();
    assert(keys.length === 4 * 3 * 2, `key count ${keys.length}`);
    assert(keys.includes("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"), "mlp key");
    assert(keys.includes("base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight"), "attn key");
    for (const k of keys) assert(header.tensors[k].dtype === "F32", `${k} dtype`);
    assert(
      header.tensors["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"].shape.join() === "8,128",
      "A",
    );
    assert(
      header.tensors["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"].shape.join() === "64,8",
      "B",
    );
    const back = adapterToParams(await loadAdapter(dir), TINY, { baseModel: "tiny_gemma2", lora });
    assert(back.params.scaling === 2, "scaling");
    assert(back.params.data.length === p.data.length, "flat length");
    assert(back.params.data.every((v, i) => v === p.data[i]), "values survive the round trip");
    assert(back.config.lora_dropout === 0.1, "dropout survives");
    // No temp files left behind.
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert(names.join() === [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE].sort().join(), `files: ${names}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("golden adapter → params → save reproduces PEFT's tensors and config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "maieutic-adapter-" });
  try {
    const a = await loadAdapter(FIXTURE);
    const { params } = adapterToParams(a, TINY);
    await saveAdapter(dir, params, a.config);
    const want = await readSafetensorsFile(join(FIXTURE, ADAPTER_WEIGHTS_FILE));
    const got = await readSafetensorsFile(join(dir, ADAPTER_WEIGHTS_FILE));
    assert(got.tensors.size === want.tensors.size, "tensor count");
    for (const [k, t] of want.tensors) {
      const g = got.tensors.get(k);
      assert(g && g.dtype === t.dtype && g.shape.join() === t.shape.join(), `${k}: header`);
      assert((g.data as Float32Array).every((v, i) => v === (t.data as Float32Array)[i]), `${k}: data`);
    }
    const cfgWant = await Deno.readTextFile(join(FIXTURE, ADAPTER_CONFIG_FILE));
    assert(await Deno.readTextFile(join(dir, ADAPTER_CONFIG_FILE)) === cfgWant, "config bytes");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mismatched adapters give UsageErrors naming the file and key; another base name only warns", async () => {
  const load = () => loadAdapter(FIXTURE);
  const k0 = "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight";
  const a0: LoadedAdapter = await load();
  // Another model: the tiny adapter on gemma-2-2b shapes.
  expectUsageError(
    () => validateAdapter(a0, GEMMA2_2B),
    ADAPTER_WEIGHTS_FILE,
    "has shape [16,64]",
    "[16,2304]",
  );
  // Fewer layers than the adapter.
  const twoLayers = { ...TINY, num_hidden_layers: 2 };
  expectUsageError(
    () => validateAdapter(a0, twoLayers),
    "unexpected tensor",
    "layers.2.",
    "model has 2 layers",
  );
  // The run targets other modules / another rank.
  expectUsageError(
    () => validateAdapter(a0, TINY, { lora: { target_modules: ["q_proj", "v_proj"] } }),
    ADAPTER_CONFIG_FILE,
    "target_modules",
  );
  expectUsageError(() => validateAdapter(a0, TINY, { lora: { r: 8 } }), '"r" is 16', "lora.r");
  // target_modules in the config disagrees with the tensors in the file.
  const onlyQ: LoadedAdapter = {
    ...a0,
    config: { ...a0.config, target_modules: ["q_proj", "v_proj", "o_proj"] },
  };
  expectUsageError(() => validateAdapter(onlyQ, TINY), "unexpected tensor", k0, "not in target_modules");
  // A tensor missing from the file.
  const missing: LoadedAdapter = { ...a0, tensors: new Map(a0.tensors) };
  missing.tensors.delete("base_model.model.model.layers.2.self_attn.o_proj.lora_B.weight");
  expectUsageError(
    () => validateAdapter(missing, TINY),
    "missing tensor",
    "layers.2.self_attn.o_proj.lora_B.weight",
  );
  // A tensor of the wrong shape (transposed B).
  const transposed: LoadedAdapter = { ...a0, tensors: new Map(a0.tensors) };
  const kb = "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight";
  transposed.tensors.set(kb, { shape: [16, 96], data: a0.tensors.get(kb)!.data });
  expectUsageError(() => validateAdapter(transposed, TINY), kb, "[16,96]", "[96,16]");
  // A stray key.
  const stray: LoadedAdapter = { ...a0, tensors: new Map(a0.tensors) };
  stray.tensors.set("base_model.model.lm_head.weight", { shape: [1, 1], data: new Float32Array(1) });
  expectUsageError(() => validateAdapter(stray, TINY), "base_model.model.lm_head.weight");
  // Unsupported PEFT features.
  expectUsageError(
    () => validateAdapter({ ...a0, config: { ...a0.config, use_dora: true } }, TINY),
    "use_dora",
  );
  expectUsageError(
    () => validateAdapter({ ...a0, config: { ...a0.config, rank_pattern: { q_proj: 4 } } }, TINY),
    "rank_pattern",
  );
  expectUsageError(
    () => validateAdapter({ ...a0, config: { ...a0.config, peft_type: "IA3" } }, TINY),
    "peft_type",
  );
  // Another base model name with matching shapes: a warning only.
  const v = validateAdapter(a0, TINY, { baseModel: "someone/tiny-gemma2-copy" });
  assert(
    v.warnings.length === 1 && v.warnings[0].includes("base_model_name_or_path"),
    `warnings ${v.warnings}`,
  );
  // Not an adapter directory.
  await expectUsageErrorAsync(() => loadAdapter("/nonexistent/adapter"), ADAPTER_CONFIG_FILE, "not found");
  const dir = await Deno.makeTempDir({ prefix: "maieutic-adapter-" });
  try {
    await Deno.copyFile(join(FIXTURE, ADAPTER_CONFIG_FILE), join(dir, ADAPTER_CONFIG_FILE));
    await expectUsageErrorAsync(() => loadAdapter(dir), ADAPTER_WEIGHTS_FILE, "not found");
    await Deno.writeTextFile(join(dir, ADAPTER_CONFIG_FILE), '{"r": "sixteen"}');
    await expectUsageErrorAsync(() => loadAdapter(dir), ADAPTER_CONFIG_FILE, '"r"');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
