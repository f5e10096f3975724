/**
 * Model loading from local directories, the tiny model and the converted-model cache (no network).
 * The Hub paths are in hub_test.ts against tests/helpers/mock_hub.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel, openModel } from "../../src/hub/load.ts";
import { parseModelName } from "../../src/hub/model_name.ts";
import { QuantizationSchema } from "../../src/config/schema.ts";
import { dequantizeNf4 } from "../../src/quant/nf4.ts";
import { UsageError } from "../../src/util/errors.ts";
import { GEMMA2_2B } from "../../src/config/gemma2.ts";
import { TINY_VOCAB_SIZE } from "../../src/tokenizer/tiny.ts";
import { tinyModelFiles } from "../../src/hub/tiny.ts";
import { expectedTensors } from "../../src/quant/plan.ts";
import { assertMatchesReference } from "./reference.ts";
import { encodeSafetensors } from "../../src/safetensors/write.ts";

const GOLDEN = new URL("../fixtures/golden/", import.meta.url).pathname;
const NF4 = QuantizationSchema.parse({});
const DENSE = QuantizationSchema.parse({ load_in_4bit: false });
const quiet = { progress: false, log: () => {} };

/** Runs `fn` with MAIEUTIC_CACHE set to a fresh temp dir. */
async function withCache<T>(fn: (cache: string) => Promise<T>): Promise<T> {
  const cache = await Deno.makeTempDir({ prefix: "maieutic-cache-" });
  const prev = Deno.env.get("MAIEUTIC_CACHE");
  Deno.env.set("MAIEUTIC_CACHE", cache);
  try {
    return await fn(cache);
  } finally {
    if (prev === undefined) Deno.env.delete("MAIEUTIC_CACHE");
    else Deno.env.set("MAIEUTIC_CACHE", prev);
    await Deno.remove(cache, { recursive: true });
  }
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  await walk(dir).catch(() => {});
  return out;
}

Deno.test("load: the three golden layouts from local dirs equal the checkpoint (dense and NF4)", async () => {
  await withCache(async (cache) => {
    for (const layout of ["tiny_gemma2", "tiny_gemma2_bf16", "tiny_gemma2_bf16_sharded"]) {
      const dir = join(GOLDEN, layout);
      const dense = await loadModel(dir, DENSE, quiet);
      assertMatchesReference(dense.tensors, false, `${layout} dense`);
      assert.equal(dense.cachePath, undefined, "dense local checkpoints are read in place");
      assert.equal(dense.config.head_dim, 24);
      assert.equal(dense.dir, dir);
      const q = await loadModel(dir, NF4, quiet);
      assertMatchesReference(q.tensors, true, `${layout} nf4`);
      assert.ok(q.cachePath?.startsWith(cache), "NF4 conversion cached under MAIEUTIC_CACHE");
      assert.equal(q.stats.fromCache, false);
      assert.equal(q.stats.quantized, 28);
      // second load: from the cache, same tensors
      const again = await loadModel(dir, NF4, quiet);
      assert.equal(again.stats.fromCache, true);
      assert.equal(again.cachePath, q.cachePath);
      assertMatchesReference(again.tensors, true, `${layout} nf4 from cache`);
      assert.equal(again.stats.storedBytes, q.stats.storedBytes);
      assert.equal(again.stats.sourceBytes, q.stats.sourceBytes);
    }
    // the F32 and BF16 checkpoints share nothing in the cache but give identical NF4 bytes (same values)
    const files = (await listFiles(join(cache, "converted"))).filter((f) => f.endsWith(".safetensors"));
    assert.equal(files.length, 3);
    assert.ok(!(await listFiles(cache)).some((f) => f.endsWith(".tmp")), "no temp files left");
  });
});

Deno.test("load: an abandoned stream leaves no cache entry; a corrupt entry is rebuilt", async () => {
  await withCache(async (cache) => {
    const dir = join(GOLDEN, "tiny_gemma2_bf16_sharded");
    const m = await openModel(dir, NF4, quiet);
    let seen = 0;
    for await (const _ of m.tensors()) {
      if (++seen === 5) break; // consumer gives up half-way
    }
    assert.ok(!(await listFiles(cache)).some((f) => f.endsWith(".safetensors") || f.endsWith(".tmp")));
    const ok = await loadModel(dir, NF4, quiet);
    // corrupt the entry: cut it short
    const bytes = await Deno.readFile(ok.cachePath!);
    await Deno.writeFile(ok.cachePath!, bytes.subarray(0, bytes.byteLength - 1000));
    const notices: string[] = [];
    const re = await loadModel(dir, NF4, { progress: false, log: (l) => notices.push(l) });
    assert.equal(re.stats.fromCache, false);
    assert.match(notices.join("\n"), /cache entry unusable .* converting again/);
    assertMatchesReference(re.tensors, true, "rebuilt");
    assert.equal((await Deno.stat(re.cachePath!)).size, bytes.byteLength);
  });
});

Deno.test("load: bad checkpoints give one clear UsageError and cache nothing", async () => {
  await withCache(async (cache) => {
    const tmp = await Deno.makeTempDir({ prefix: "maieutic-bad-" });
    try {
      const config = await Deno.readTextFile(join(GOLDEN, "tiny_gemma2/config.json"));
      const good = await Deno.readFile(join(GOLDEN, "tiny_gemma2/model.safetensors"));
      const cases: [string, Record<string, string | Uint8Array>, RegExp][] = [
        [
          "truncated",
          { "model.safetensors": good.subarray(0, good.byteLength - 4096) },
          /ends at byte \d+ but the file has \d+ bytes \(truncated/,
        ],
        ["no weights", {}, /no model\.safetensors or model\.safetensors\.index\.json/],
        ["missing tensor", {
          "model.safetensors": encodeSafetensors({
            "model.norm.weight": { dtype: "F32", shape: [64], data: new Float32Array(64) },
          }),
        }, /tensor "model\.embed_tokens\.weight" is missing/],
        ["wrong shape", {
          "model.safetensors": encodeSafetensors(
            Object.fromEntries([...expectedTensors(JSON.parse(config))].map(([n, s]) => {
              const shape = n === "model.norm.weight" ? [65] : s;
              return [n, {
                dtype: "F32" as const,
                shape,
                data: new Float32Array(shape.reduce((a, d) => a * d, 1)),
              }];
            })),
          ),
        }, /"model\.norm\.weight" has shape \[65\] but config\.json implies \[64\]/],
        ["index names a missing shard", {
          "model.safetensors.index.json": JSON.stringify({
            weight_map: { "model.norm.weight": "model-00009.safetensors" },
          }),
        }, /model-00009\.safetensors not found/],
      ];
      for (const [what, files, re] of cases) {
        const d = join(tmp, what.replaceAll(" ", "_"));
        await Deno.mkdir(d);
        await Deno.writeTextFile(join(d, "config.json"), config);
        for (const [k, v] of Object.entries(files)) {
          if (typeof v === "string") await Deno.writeTextFile(join(d, k), v);
          else await Deno.writeFile(join(d, k), v);
        }
        await assert.rejects(() => loadModel(d, NF4, quiet), (e: Error) => {
          assert.ok(e instanceof UsageError, `${what}: ${e.name}: ${e.message}`);
          assert.match(e.message, re, what);
          assert.ok(!e.message.includes("\n"), `${what}: one line`);
          return true;
        });
      }
      // not Gemma-2, missing config
      const d = join(tmp, "llama");
      await Deno.mkdir(d);
      await Deno.writeTextFile(join(d, "config.json"), JSON.stringify({ model_type: "llama" }));
      await assert.rejects(() => loadModel(d, NF4, quiet), /model_type is "llama"; only Gemma-2/);
      await Deno.mkdir(join(tmp, "empty"));
      await assert.rejects(() => loadModel(join(tmp, "empty"), NF4, quiet), /config\.json not found/);
      assert.ok(!(await listFiles(join(cache, "converted"))).length, "nothing cached");
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  });
});

Deno.test("load: unsupported quantization settings are refused with the fix", async () => {
  await assert.rejects(
    () => loadModel("tiny", QuantizationSchema.parse({ bnb_4bit_use_double_quant: false }), quiet),
    /bnb_4bit_use_double_quant=false is not supported/,
  );
});

Deno.test("tiny: deterministic bf16 random Gemma-2 with the specified config, generated once into the cache", async () => {
  await withCache(async (cache) => {
    const m = await loadModel("tiny", DENSE, quiet);
    const c = m.config;
    assert.equal(m.source, "tiny");
    assert.equal(c.vocab_size, TINY_VOCAB_SIZE);
    assert.deepEqual(
      [
        c.hidden_size,
        c.intermediate_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.head_dim,
      ],
      [64, 128, 4, 4, 2, 24],
    );
    assert.equal(c.query_pre_attn_scalar, 32);
    assert.equal(c.sliding_window, 8);
    assert.equal(c.attn_logit_softcapping, 50);
    assert.equal(c.final_logit_softcapping, 30);
    assert.equal(c.tie_word_embeddings, true);
    assert.equal(c.max_position_embeddings, 1024);
    const tok = JSON.parse(await Deno.readTextFile(join(m.dir, "tokenizer.json")));
    const eot = tok.added_tokens.find((t: { content: string }) => t.content === "<end_of_turn>").id;
    assert.deepEqual(c.eos_token_id, [1, eot]);
    assert.ok(m.dir.startsWith(cache));
    for (
      const f of [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
      ]
    ) {
      await Deno.stat(join(m.dir, f));
    }
    // realistic scale, bf16-exact, not degenerate
    const emb = m.tensors.get("model.embed_tokens.weight")!;
    assert.equal(emb.kind, "dense");
    if (emb.kind === "dense") {
      assert.deepEqual(emb.shape, [TINY_VOCAB_SIZE, 64]);
      let s2 = 0;
      const u = new Uint32Array(emb.data.buffer);
      for (let i = 0; i < emb.data.length; i++) {
        s2 += emb.data[i] ** 2;
        assert.equal(u[i] & 0xffff, 0, "bf16-exact");
      }
      const std = Math.sqrt(s2 / emb.data.length);
      assert.ok(std > 0.018 && std < 0.022, `std ${std}`);
    }
    assert.equal(m.tensors.size, expectedTensors(c).size);
    // deterministic: regenerated bytes are identical to what was cached
    const again = tinyModelFiles();
    assert.deepEqual(await Deno.readFile(join(m.dir, "model.safetensors")), again["model.safetensors"]);
    const mtime = (await Deno.stat(join(m.dir, "model.safetensors"))).mtime;
    const q = await loadModel("tiny", NF4, quiet);
    assert.equal(q.stats.quantized, 28);
    assert.deepEqual((await Deno.stat(join(q.dir, "model.safetensors"))).mtime, mtime, "generated once");
    // NF4 of the tiny model dequantizes close to the dense weights
    const dq = q.tensors.get("model.layers.0.mlp.up_proj.weight")!;
    const dn = m.tensors.get("model.layers.0.mlp.up_proj.weight")!;
    if (dq.kind === "nf4" && dn.kind === "dense") {
      const back = dequantizeNf4(dq.nf4);
      let err = 0;
      for (let i = 0; i < back.length; i++) err = Math.max(err, Math.abs(back[i] - dn.data[i]));
      assert.ok(err < 0.02, `NF4 error ${err}`);
    } else assert.fail("kinds");
  });
});

Deno.test("gemma-2-2b-random: the real config, no weights", async () => {
  await withCache(async () => {
    const m = await loadModel("gemma-2-2b-random", NF4, quiet);
    assert.equal(m.randomWeights, true);
    assert.equal(m.tensors.size, 0);
    assert.deepEqual(m.config, GEMMA2_2B);
    await Deno.stat(join(m.dir, "tokenizer.json"));
  });
});

Deno.test("parseModelName: hub ids, revisions, dirs and bad names", async () => {
  assert.deepEqual(await parseModelName("google/gemma-2-2b-jpn-it"), {
    kind: "hub",
    repo: "google/gemma-2-2b-jpn-it",
    revision: "main",
  });
  assert.deepEqual(await parseModelName("google/gemma-2-2b@v1.0"), {
    kind: "hub",
    repo: "google/gemma-2-2b",
    revision: "v1.0",
  });
  assert.deepEqual(await parseModelName("tiny"), { kind: "tiny" });
  assert.deepEqual(await parseModelName(GOLDEN + "tiny_gemma2"), {
    kind: "local",
    dir: GOLDEN + "tiny_gemma2",
  });
  for (const bad of ["./no/such/dir", "/abs/missing", "a/b/c", "bad name/x", "org/name@"]) {
    await assert.rejects(
      () => parseModelName(bad),
      (e: Error) => e instanceof UsageError && /--model/.test(e.message),
      bad,
    );
  }
  await assert.rejects(() => parseModelName(join(GOLDEN, "manifest.json")), /is a file/);
});
