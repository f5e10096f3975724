/**
 * `maieutic merge` (src/lora/merge_model.ts, src/cli/merge.ts): the merged model directory is a valid sharded
 * Hub checkpoint whose logits equal base + adapter; dtype rounding; adapter validation; the NF4 fallback.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { QuantizationSchema } from "../../src/config/schema.ts";
import { InterruptedError, UsageError } from "../../src/util/errors.ts";
import { loadModel } from "../../src/hub/load.ts";
import { BufferPool } from "../../src/gpu/buffers.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { Gemma2Engine } from "../../src/model/engine.ts";
import { buildWeights } from "../../src/model/weights.ts";
import type { LoraParams } from "../../src/lora/params.ts";
import { mergeLoraWeight } from "../../src/lora/merge.ts";
import {
  encodeAs,
  mergeAdapterIntoModel,
  type MergeOptions,
  parseShardSize,
  planShards,
  shardName,
} from "../../src/lora/merge_model.ts";
import { dequantizeNf4, quantizeNf4 } from "../../src/quant/nf4.ts";
import { expectedTensors } from "../../src/quant/plan.ts";
import type { HostTensor } from "../../src/quant/store.ts";
import { checkShards, INDEX_FILE, parseShardIndex } from "../../src/safetensors/index.ts";
import { readHeaderFile, readSafetensorsFile } from "../../src/safetensors/read_file.ts";
import { encodeSafetensors } from "../../src/safetensors/write.ts";
import { assertClose, testGpu } from "../helpers/gpu.ts";
import {
  f64,
  GOLDEN,
  goldenConfig,
  goldenLora,
  goldenModelTensors,
  goldenTensors,
} from "../helpers/golden.ts";
import { startMockHub } from "../helpers/mock_hub.ts";

const NF4 = QuantizationSchema.parse({});
const DENSE = QuantizationSchema.parse({ load_in_4bit: false });
const BASE = join(GOLDEN, "tiny_gemma2");
const ADAPTER = join(GOLDEN, "lora_adapter");
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const quiet = { progress: false, log: () => {} } as const;

async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "maieutic-merge-" });
  const prev = Deno.env.get("MAIEUTIC_CACHE");
  Deno.env.set("MAIEUTIC_CACHE", join(dir, "cache"));
  try {
    return await fn(dir);
  } finally {
    if (prev === undefined) Deno.env.delete("MAIEUTIC_CACHE");
    else Deno.env.set("MAIEUTIC_CACHE", prev);
    await Deno.remove(dir, { recursive: true });
  }
}

function merge(o: Partial<MergeOptions> & { out: string }) {
  return mergeAdapterIntoModel({ model: BASE, adapter: ADAPTER, quantization: NF4, ...quiet, ...o });
}

/** A tensor's raw little-endian bytes. */
async function rawTensor(file: string, name: string): Promise<Uint8Array> {
  const h = await readHeaderFile(file);
  const info = h.tensors[name];
  const bytes = await Deno.readFile(file);
  return bytes.slice(h.dataStart + info.data_offsets[0], h.dataStart + info.data_offsets[1]);
}

/** All tensors of a merged dir (through its index), f32. */
async function readMerged(dir: string): Promise<Map<string, Float32Array>> {
  const index = parseShardIndex(await Deno.readTextFile(join(dir, INDEX_FILE)), INDEX_FILE);
  const out = new Map<string, Float32Array>();
  for (const shard of new Set(Object.values(index.weight_map))) {
    for (const [n, t] of (await readSafetensorsFile(join(dir, shard))).tensors) {
      out.set(n, t.data as Float32Array);
    }
  }
  return out;
}

/** float32 -> bfloat16 bits, round to nearest even (written independently of src/util/half.ts). */
function bf16Rne(x: number): number {
  const b = new Uint32Array(new Float32Array([x]).buffer)[0];
  const hi = b >>> 16, lo = b & 0xffff;
  return (lo > 0x8000 || (lo === 0x8000 && (hi & 1) === 1)) ? (hi + 1) & 0xffff : hi;
}

const B = 2, T = 24;

/** Logits [B, T, V] of the golden batch through an f32 engine built from `tensors` (+ LoRA). */
async function engineLogits(tensors: Iterable<[string, HostTensor]>, lora: LoraParams | null) {
  const gpu = await testGpu();
  const config = await goldenConfig();
  const pool = new BufferPool(gpu);
  const weights = await buildWeights(gpu, pool, config, "f32", tensors);
  const engine = new Gemma2Engine(gpu, pool, weights, lora, {
    maxBatch: B,
    maxSeq: T,
    compute: "f32",
    checkpointing: true,
    loraDropout: 0,
    training: true,
  });
  const g = await goldenTensors("forward_f64.safetensors");
  engine.setBatch(
    Int32Array.from(f64(g, "input_ids")),
    Int32Array.from(f64(g, "labels")),
    Uint8Array.from(f64(g, "attention_mask")),
    { B, T },
  );
  const logits = gpu.device.createBuffer({
    size: B * T * config.vocab_size * 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const rec = new Recorder(gpu);
  engine.recordZeroGrad(rec);
  engine.recordForward(rec, { B, T }, { capture: { logits } });
  rec.submit();
  const out = await readF32(gpu, logits);
  logits.destroy();
  return { out, golden: f64(g, "logits") };
}

Deno.test("merge: the merged tiny model's logits equal base + adapter (f32), and its index lists every tensor", async () => {
  await withTemp(async (tmp) => {
    const out = join(tmp, "merged");
    const r = await merge({ out, dtype: "float32", maxShardSize: parseShardSize("200KB") });
    const config = await goldenConfig();
    const expected = expectedTensors(config);
    assert.equal(r.tensors, expected.size);
    assert.equal(r.mergedModules, 16, "q/k/v/o of 4 layers");
    assert.equal(r.fromNf4, false);
    assert.ok(r.shards.length > 1, `sharded (${r.shards.length})`);
    assert.deepEqual(r.shards, r.shards.map((_, i) => shardName(i, r.shards.length)));
    assert.equal(r.shards[0], `model-00001-of-0000${r.shards.length}.safetensors`);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(out))).map((e) => e.name).sort(),
      ["config.json", INDEX_FILE, ...r.shards].sort(),
    );

    // the index: every tensor once, in its shard; total_size = tensor data bytes; shards carry format pt
    const index = parseShardIndex(await Deno.readTextFile(join(out, INDEX_FILE)), INDEX_FILE);
    assert.deepEqual(Object.keys(index.weight_map).sort(), [...expected.keys()].sort());
    const shardTensors = new Map<string, string[]>();
    let dataBytes = 0;
    for (const s of r.shards) {
      const h = await readHeaderFile(join(out, s));
      assert.deepEqual(h.metadata, { format: "pt" }, s);
      shardTensors.set(s, Object.keys(h.tensors));
      for (const [n, info] of Object.entries(h.tensors)) {
        assert.equal(info.dtype, "F32");
        assert.deepEqual(info.shape, expected.get(n), n);
        dataBytes += info.data_offsets[1] - info.data_offsets[0];
      }
      const bytes = (await Deno.stat(join(out, s))).size - h.dataStart;
      assert.ok(bytes <= 200_000 || Object.keys(h.tensors).length === 1, `${s}: ${bytes} bytes`);
    }
    checkShards(index, shardTensors, INDEX_FILE);
    assert.equal(index.metadata?.total_size, dataBytes);
    assert.equal(r.totalSize, dataBytes);
    const cfg = JSON.parse(await Deno.readTextFile(join(out, "config.json")));
    assert.equal(cfg.torch_dtype, "float32");
    assert.equal(cfg.model_type, "gemma2");
    assert.equal(cfg.hidden_size, config.hidden_size);

    // untargeted tensors are the base's, bit for bit; targeted ones are W + 2·B·A
    const base = await goldenTensors("tiny_gemma2/model.safetensors");
    const merged = await readMerged(out);
    const lora = await goldenLora(config);
    for (const [n, t] of base) {
      const m = lora.layout.modules.find((m) => n === `model.layers.${m.layer}.self_attn.${m.module}.weight`);
      const want = m ? mergeLoraWeight(t.data as Float32Array, lora, m) : t.data as Float32Array;
      assert.deepEqual(merged.get(n), want, n);
      if (m) assert.notDeepEqual(merged.get(n), t.data, `${n} changed`);
    }

    // the merged directory loads as a model; its logits equal the base's with the adapter applied
    const loaded = await loadModel(out, DENSE, quiet);
    assert.equal(loaded.cachePath, undefined);
    const mergedLogits = await engineLogits(loaded.tensors, null);
    const withAdapter = await engineLogits(await goldenModelTensors(), lora);
    assertClose(mergedLogits.out, withAdapter.out, { abs: 1e-4 }, "merged vs base + LoRA logits");
    assertClose(mergedLogits.out, mergedLogits.golden, { abs: 3e-4 }, "merged vs transformers' LoRA logits");
  });
});

Deno.test("merge: bfloat16 output is the f32 merge rounded to nearest even; float16 too; overflow is refused", async () => {
  await withTemp(async (tmp) => {
    const f32 = await merge({ out: join(tmp, "f32"), dtype: "float32" });
    const bf = await merge({ out: join(tmp, "bf16"), dtype: "bfloat16" });
    assert.deepEqual(
      [f32.shards, bf.shards],
      [[shardName(0, 1)], [shardName(0, 1)]],
      "2 GB default: one shard",
    );
    assert.equal(bf.totalSize * 2, f32.totalSize);
    // config.json: the base's text with only torch_dtype changed (floats like 0.0 kept as written)
    const baseCfg = await Deno.readTextFile(join(BASE, "config.json"));
    assert.equal(
      await Deno.readTextFile(join(tmp, "bf16", "config.json")),
      baseCfg.replace('"torch_dtype": "float32"', '"torch_dtype": "bfloat16"'),
    );
    assert.equal(await Deno.readTextFile(join(tmp, "f32", "config.json")), baseCfg);
    const ref = await readMerged(join(tmp, "f32"));
    const file = join(tmp, "bf16", shardName(0, 1));
    const h = await readHeaderFile(file);
    for (const [n, want] of ref) {
      assert.equal(h.tensors[n].dtype, "BF16");
      const raw = await rawTensor(file, n);
      const bits = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
      for (let i = 0; i < want.length; i++) {
        if (bits[i] !== bf16Rne(want[i])) {
          assert.fail(
            `${n}[${i}]: ${want[i]} -> bf16 0x${bits[i].toString(16)}, want 0x${
              bf16Rne(want[i]).toString(16)
            }`,
          );
        }
      }
    }
    // ties are rare in real weights: the conversion itself, on exact halfway cases
    const tie = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 1 + 2 ** -8 + 2 ** -20]);
    assert.deepEqual([...encodeAs("bfloat16", tie, "t") as Uint16Array], [0x3f80, 0x3f82, 0xbf80, 0x3f81]);
    const tie16 = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 2 ** -25 * 3]);
    assert.deepEqual([...encodeAs("float16", tie16, "t") as Uint16Array], [0x3c00, 0x3c02, 0x7bff, 0x0002]);
    assert.throws(
      () => encodeAs("float16", new Float32Array([1, 70000]), "model.embed_tokens.weight"),
      (e: Error) =>
        e instanceof UsageError &&
        /"model\.embed_tokens\.weight" has values beyond float16's range .* bfloat16/.test(
          e.message,
        ),
    );
    // float16 end to end: the f32 merge, rounded
    await merge({ out: join(tmp, "f16"), dtype: "float16" });
    const raw = await rawTensor(join(tmp, "f16", shardName(0, 1)), "model.layers.2.self_attn.v_proj.weight");
    const want = encodeAs("float16", ref.get("model.layers.2.self_attn.v_proj.weight")!, "v") as Uint16Array;
    assert.deepEqual(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2), want);
  });
});

Deno.test("merge: the tiny model keeps its tokenizer files and dtype; the output loads by --model", async () => {
  await withTemp(async (tmp) => {
    const out = join(tmp, "tiny-merged");
    const r = await merge({ model: "tiny", out });
    assert.equal(r.dtype, "bfloat16", "the tiny config's torch_dtype");
    for (const f of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) {
      assert.ok(r.copied.includes(f), f);
      assert.deepEqual(
        await Deno.readFile(join(out, f)),
        await Deno.readFile(
          join(
            tmp,
            "cache",
            "models",
            (await Array.fromAsync(Deno.readDir(join(tmp, "cache", "models"))))[0].name,
            f,
          ),
        ),
      );
    }
    const m = await loadModel(out, DENSE, quiet);
    assert.equal(m.tensors.size, r.tensors);
    assert.ok(
      !(await Array.fromAsync(Deno.readDir(tmp))).some((e) => e.name.endsWith(".tmp")),
      "no temp dir left",
    );
  });
});

Deno.test("merge: adapter/model mismatches and bad usage are UsageErrors (exit 2) and write nothing", async () => {
  await withTemp(async (tmp) => {
    const cfg = JSON.parse(await Deno.readTextFile(join(ADAPTER, "adapter_config.json")));
    const tensors = (await readSafetensorsFile(join(ADAPTER, "adapter_model.safetensors"))).tensors;
    const bad = async (name: string, config: unknown, drop?: string) => {
      const dir = join(tmp, name);
      await Deno.mkdir(dir);
      await Deno.writeTextFile(join(dir, "adapter_config.json"), JSON.stringify(config));
      const keep = Object.fromEntries(
        [...tensors].filter(([k]) => k !== drop).map((
          [k, t],
        ) => [k, { dtype: "F32" as const, shape: t.shape, data: t.data as Float32Array }]),
      );
      await Deno.writeFile(join(dir, "adapter_model.safetensors"), encodeSafetensors(keep, { format: "pt" }));
      return dir;
    };
    const cases: [string, RegExp][] = [
      [await bad("rank", { ...cfg, r: 8 }), /has shape \[16,64\] but this model needs \[8,64\]/],
      [
        await bad("targets", { ...cfg, target_modules: ["q_proj"] }),
        /targets k_proj, which is not in target_modules/,
      ],
      [
        await bad("missing", cfg, "base_model.model.model.layers.3.self_attn.o_proj.lora_B.weight"),
        /missing tensor "base_model\.model\.model\.layers\.3\.self_attn\.o_proj\.lora_B\.weight"/,
      ],
      [await bad("dora", { ...cfg, use_dora: true }), /"use_dora" = true \(DoRA\) is not supported/],
      [join(tmp, "nowhere"), /adapter_config\.json not found/],
    ];
    for (const [adapter, re] of cases) {
      const out = join(tmp, "out");
      await assert.rejects(
        () => merge({ adapter, out }),
        (e: Error) => e instanceof UsageError && re.test(e.message),
      );
      await assert.rejects(() => Deno.stat(out), Deno.errors.NotFound, "nothing written");
    }
    // interrupted (SIGINT in the CLI): InterruptedError (exit 130), no output, no temp directory left
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(() => merge({ out: join(tmp, "stopped"), signal: ac.signal }), InterruptedError);
    await assert.rejects(() => Deno.stat(join(tmp, "stopped")), Deno.errors.NotFound);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(tmp))).filter((e) => e.name.endsWith(".tmp")), []);
    await Deno.mkdir(join(tmp, "full"));
    await Deno.writeTextFile(join(tmp, "full", "keep.txt"), "mine");
    await assert.rejects(() => merge({ out: join(tmp, "full") }), /directory exists and is not empty/);
    assert.equal(await Deno.readTextFile(join(tmp, "full", "keep.txt")), "mine");
    await assert.rejects(
      () => merge({ model: "gemma-2-2b-random", out: join(tmp, "r") }),
      /gemma-2-2b-random has no weights/,
    );
    assert.equal(parseShardSize("2GB"), 2e9);
    assert.equal(parseShardSize("500mb"), 5e8);
    assert.equal(parseShardSize("1GiB"), 2 ** 30);
    assert.equal(parseShardSize("12345"), 12345);
    assert.throws(() => parseShardSize("2 parsecs"), UsageError);
    assert.deepEqual(
      planShards([["a", [10]], ["b", [20]], ["c", [300]], ["d", [1]]], "float32", 150).map((s) =>
        s.tensors.map(([n]) => n)
      ),
      [["a", "b"], ["c"], ["d"]],
      "greedy, an oversized tensor alone",
    );

    // the CLI: exit 2 with the file named; exit 0 and a summary on success
    const env = { MAIEUTIC_CACHE: join(tmp, "cache"), NO_COLOR: "1" };
    const cli = async (...args: string[]) => {
      const o = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", MAIN, "merge", ...args], env })
        .output();
      return {
        code: o.code,
        stdout: new TextDecoder().decode(o.stdout),
        stderr: new TextDecoder().decode(o.stderr),
      };
    };
    const e1 = await cli("--model", BASE, "--adapter", join(tmp, "rank"), "--out", join(tmp, "o1"));
    assert.equal(e1.code, 2, e1.stderr);
    assert.match(e1.stderr, /rank\/adapter_model\.safetensors: tensor .* has shape/);
    const e2 = await cli("--model", BASE, "--adapter", ADAPTER, "--out", join(tmp, "o2"), "--dtype", "fp8");
    assert.equal(e2.code, 2);
    assert.match(e2.stderr, /--dtype "fp8": expected one of float32, float16, bfloat16/);
    const e3 = await cli("--model", BASE, "--out", join(tmp, "o3"));
    assert.equal(e3.code, 2);
    assert.match(e3.stderr, /--adapter DIR is required/);
    const ok = await cli(
      "--model",
      BASE,
      "--adapter",
      ADAPTER,
      "--out",
      join(tmp, "o4"),
      "--dtype",
      "bfloat16",
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /16 projections merged/);
    assert.match(ok.stdout, /46 tensors, bfloat16/);
  });
});

Deno.test("merge: an offline Hub model with only its NF4 cache is merged into the dequantized NF4 weights", async () => {
  await withTemp(async (tmp) => {
    const hub = await startMockHub({ "test/tiny": { dir: BASE } });
    try {
      const load = {
        progress: false,
        log: () => {},
        hub: { endpoint: hub.url, token: undefined, retryBaseMs: 5 },
      };
      await loadModel("test/tiny", NF4, load); // online once: caches the NF4 conversion only
      const logs: string[] = [];
      const r = await mergeAdapterIntoModel({
        model: "test/tiny",
        adapter: ADAPTER,
        out: join(tmp, "out"),
        quantization: NF4,
        load: { ...load, hub: { ...load.hub, offline: true } },
        progress: false,
        log: (l) => logs.push(l),
      });
      assert.equal(r.fromNf4, true);
      assert.equal(r.revision, hub.sha("test/tiny"));
      assert.match(logs.join("\n"), /cannot be read \(offline\).*NF4-dequantized/);
      const merged = await readMerged(join(tmp, "out"));
      const base = await goldenTensors("tiny_gemma2/model.safetensors");
      const lora = await goldenLora(await goldenConfig());
      const deq = (n: string) => {
        const t = base.get(n)!;
        return dequantizeNf4(quantizeNf4(t.data as Float32Array, t.shape));
      };
      const m = lora.layout.modules.find((m) => m.layer === 1 && m.module === "v_proj")!;
      assert.deepEqual(
        merged.get("model.layers.1.self_attn.v_proj.weight"),
        mergeLoraWeight(deq("model.layers.1.self_attn.v_proj.weight"), lora, m),
      );
      assert.deepEqual(
        merged.get("model.layers.1.mlp.up_proj.weight"),
        deq("model.layers.1.mlp.up_proj.weight"),
      );
      assert.deepEqual(merged.get("model.norm.weight"), base.get("model.norm.weight")!.data);
      // with nothing cached for a model, offline merge fails with the loader's advice (exit 2)
      await assert.rejects(
        () =>
          mergeAdapterIntoModel({
            model: "test/other",
            adapter: ADAPTER,
            out: join(tmp, "out2"),
            quantization: NF4,
            load: { ...load, hub: { ...load.hub, offline: true } },
            progress: false,
          }),
        (e: Error) => e instanceof UsageError && /not in the cache/.test(e.message),
      );
    } finally {
      await hub.close();
    }
  });
});
