/**
 * The Hub client against the mock Hub (tests/helpers/mock_hub.ts on 127.0.0.1): public and gated repos,
 * missing files, 429/5xx retries, a connection dropped mid-tensor, truncated files, offline mode.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../../src/hub/load.ts";
import { HubClient } from "../../src/hub/client.ts";
import { QuantizationSchema } from "../../src/config/schema.ts";
import { UsageError } from "../../src/util/errors.ts";
import { encodeSafetensors } from "../../src/safetensors/write.ts";
import { GOOD_TOKEN, type MockHub, type MockRepo, startMockHub } from "../helpers/mock_hub.ts";
import { assertMatchesReference } from "./reference.ts";

const GOLDEN = new URL("../fixtures/golden/", import.meta.url).pathname;
const NF4 = QuantizationSchema.parse({});
const DENSE = QuantizationSchema.parse({ load_in_4bit: false });

const good = await Deno.readFile(join(GOLDEN, "tiny_gemma2/model.safetensors"));
const REPOS: Record<string, MockRepo> = {
  "test/tiny-f32": { dir: join(GOLDEN, "tiny_gemma2") },
  "test/tiny-bf16": { dir: join(GOLDEN, "tiny_gemma2_bf16") },
  "test/tiny-sharded": { dir: join(GOLDEN, "tiny_gemma2_bf16_sharded") },
  "test/gated": { dir: join(GOLDEN, "tiny_gemma2_bf16"), gated: true },
  "test/private": { dir: join(GOLDEN, "tiny_gemma2_bf16"), private: true },
  "test/missing-shard": {
    dir: join(GOLDEN, "tiny_gemma2_bf16_sharded"),
    hide: ["model-00002-of-00002.safetensors"],
  },
  "test/truncated": {
    dir: join(GOLDEN, "tiny_gemma2"),
    files: { "model.safetensors": good.subarray(0, good.byteLength - 5000) },
  },
  "test/bad-offsets": { dir: join(GOLDEN, "tiny_gemma2"), files: { "model.safetensors": badOffsets() } },
  "test/no-weights": { dir: join(GOLDEN, "tiny_gemma2"), hide: ["model.safetensors"] },
};

/** A header whose last tensor claims bytes beyond the end of the file. */
function badOffsets(): Uint8Array {
  const f = encodeSafetensors({
    "model.norm.weight": { dtype: "F32", shape: [64], data: new Float32Array(64) },
  });
  const n = Number(new DataView(f.buffer).getBigUint64(0, true));
  const text = new TextDecoder().decode(f.subarray(8, 8 + n)).replace(
    '"data_offsets":[0,256]',
    '"data_offsets":[1024,1280]',
  );
  const j = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + j.byteLength + 256);
  new DataView(out.buffer).setBigUint64(0, BigInt(j.byteLength), true);
  out.set(j, 8);
  return out;
}

interface Ctx {
  hub: MockHub;
  cache: string;
  opts: {
    progress: false;
    log: (l: string) => void;
    hub: { endpoint: string; token?: string; retryBaseMs: number };
  };
  notices: string[];
}

/** Fresh mock Hub + cache per test; HF_HUB_OFFLINE and tokens from the environment are cleared. */
async function withHub(
  fn: (c: Ctx) => Promise<void>,
  opts: { crossOriginCdn?: boolean } = {},
): Promise<void> {
  const hub = await startMockHub(REPOS, opts);
  const cache = await Deno.makeTempDir({ prefix: "maieutic-hub-" });
  const saved = Object.fromEntries(
    ["MAIEUTIC_CACHE", "HF_HUB_OFFLINE", "HUGGINGFACE_API_KEY", "HF_TOKEN", "HF_ENDPOINT"].map((
      k,
    ) => [k, Deno.env.get(k)]),
  );
  Deno.env.set("MAIEUTIC_CACHE", cache);
  for (const k of ["HF_HUB_OFFLINE", "HUGGINGFACE_API_KEY", "HF_TOKEN", "HF_ENDPOINT"]) Deno.env.delete(k);
  const notices: string[] = [];
  try {
    await fn({
      hub,
      cache,
      notices,
      opts: { progress: false, log: (l) => notices.push(l), hub: { endpoint: hub.url, retryBaseMs: 5 } },
    });
  } finally {
    for (const [k, v] of Object.entries(saved)) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    await hub.close();
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

const weightRequests = (h: MockHub) => h.requests.filter((r) => r.path.endsWith(".safetensors"));

Deno.test("hub: public repos in all three layouts load equal to the checkpoint, then come from the cache", async () => {
  await withHub(async ({ hub, cache, opts }) => {
    for (const repo of ["test/tiny-f32", "test/tiny-bf16", "test/tiny-sharded"]) {
      const m = await loadModel(repo, NF4, opts);
      assertMatchesReference(m.tensors, true, repo);
      assert.equal(m.source, repo);
      assert.equal(m.revision, hub.sha(repo));
      assert.equal(
        m.dir,
        join(cache, "hub", `models--${repo.replace("/", "--")}`, "snapshots", hub.sha(repo)),
      );
      for (const f of ["config.json"]) await Deno.stat(join(m.dir, f));
      // weights were fetched with Range requests, one per tensor (plus the header reads)
      const ranged = weightRequests(hub).filter((r) => r.range);
      assert.ok(ranged.length >= m.tensors.size, `${repo}: ${ranged.length} range requests`);
      assert.ok(!weightRequests(hub).some((r) => !r.range), "never a whole-file GET");
      const d = await loadModel(repo, DENSE, opts);
      assertMatchesReference(d.tensors, false, `${repo} dense`);
      hub.requests.length = 0;
      const again = await loadModel(repo, NF4, opts);
      assert.equal(again.stats.fromCache, true);
      assertMatchesReference(again.tensors, true, `${repo} cached`);
      assert.equal(weightRequests(hub).length, 0, "cached: no weight bytes fetched");
    }
    const refs = await Deno.readTextFile(join(cache, "hub", "models--test--tiny-f32", "refs", "main"));
    assert.equal(refs, hub.sha("test/tiny-f32"));
  });
});

Deno.test("hub: writeCache false streams the model without leaving a cache entry (merge's dense read)", async () => {
  await withHub(async ({ cache, opts }) => {
    const repo = "test/tiny-bf16";
    const d = await loadModel(repo, DENSE, { ...opts, writeCache: false });
    assertMatchesReference(d.tensors, false, `${repo} dense, not cached`);
    assert.equal(d.stats.fromCache, false);
    const files = await listFiles(cache);
    assert.ok(!files.some((f) => f.endsWith(".safetensors") || f.endsWith(".tmp")), files.join("\n"));
    // With the default the conversion is cached, and a later writeCache: false read uses it.
    await loadModel(repo, DENSE, opts);
    const again = await loadModel(repo, DENSE, { ...opts, writeCache: false });
    assert.equal(again.stats.fromCache, true);
  });
});

Deno.test("hub: gated repo without token is one clear UsageError; with the token it loads; token never leaks", async () => {
  await withHub(async ({ hub, opts, cache }) => {
    await assert.rejects(() => loadModel("test/gated", NF4, opts), (e: Error) => {
      assert.ok(e instanceof UsageError, e.message);
      assert.equal(
        e.message,
        "test/gated is gated: accept the license at https://huggingface.co/test/gated, then put your token in .env as HUGGINGFACE_API_KEY=hf_...",
      );
      return true;
    });
    await assert.rejects(
      () => loadModel("test/gated", NF4, { ...opts, hub: { ...opts.hub, token: "hf_wrong_token" } }),
      (e: Error) =>
        e instanceof UsageError &&
        /has no access: accept the license at https:\/\/huggingface\.co\/test\/gated/.test(e.message) &&
        !e.message.includes("hf_wrong_token"),
    );
    assert.ok(!(await listFiles(join(cache, "converted"))).length, "nothing cached");
    // the token from the environment (HUGGINGFACE_API_KEY) is used
    Deno.env.set("HUGGINGFACE_API_KEY", GOOD_TOKEN);
    const { token: _t, ...hubNoToken } = opts.hub;
    const m = await loadModel("test/gated", NF4, { ...opts, hub: hubNoToken });
    assertMatchesReference(m.tensors, true, "gated");
    assert.ok(hub.requests.some((r) => r.authorization === `Bearer ${GOOD_TOKEN}`));
    // private repos read as "not found" without a token, with the hint
    Deno.env.delete("HUGGINGFACE_API_KEY");
    await assert.rejects(
      () => loadModel("test/private", NF4, { ...opts, hub: hubNoToken }),
      /model repo "test\/private" was not found on http:\/\/127\.0\.0\.1:\d+ \(if it is private, put your token in \.env as HUGGINGFACE_API_KEY/,
    );
  });
});

Deno.test("hub: the token goes to the Hub origin only, never to a cross-origin CDN", async () => {
  await withHub(async ({ hub, opts }) => {
    const m = await loadModel("test/gated", NF4, { ...opts, hub: { ...opts.hub, token: GOOD_TOKEN } });
    assertMatchesReference(m.tensors, true, "gated via CDN");
    const cdn = hub.requests.filter((r) => r.server === "cdn");
    assert.ok(cdn.length > 10, "weights came from the CDN");
    assert.ok(cdn.every((r) => r.authorization === undefined), "no Authorization on the CDN");
    assert.ok(
      hub.requests.filter((r) => r.server === "hub").every((r) => r.authorization === `Bearer ${GOOD_TOKEN}`),
    );
    // after the first redirect, reads go straight to the resolved CDN URL
    const resolves = hub.requests.filter((r) => r.server === "hub" && r.path.endsWith(".safetensors"));
    assert.ok(resolves.length <= 2, `${resolves.length} resolve requests for the weights`);
  }, { crossOriginCdn: true });
});

Deno.test("hub: unknown repo, unknown revision and a missing shard (404) are one-line UsageErrors", async () => {
  await withHub(async ({ opts, cache }) => {
    await assert.rejects(
      () => loadModel("test/nope", NF4, opts),
      (e: Error) => e instanceof UsageError && /model repo "test\/nope" was not found/.test(e.message),
    );
    await assert.rejects(
      () => loadModel("test/tiny-f32@v9", NF4, opts),
      (e: Error) => e instanceof UsageError && /test\/tiny-f32: revision "v9" does not exist/.test(e.message),
    );
    await assert.rejects(
      () => loadModel("test/missing-shard", NF4, opts),
      (e: Error) =>
        e instanceof UsageError &&
        /test\/missing-shard: file "model-00002-of-00002\.safetensors" does not exist in the repo \(HTTP 404\)|the repo has no "model-00002-of-00002\.safetensors"/
          .test(e.message),
    );
    await assert.rejects(
      () => loadModel("test/no-weights", NF4, opts),
      /has no model\.safetensors or model\.safetensors\.index\.json/,
    );
    assert.ok(!(await listFiles(join(cache, "converted"))).length);
  });
});

Deno.test("hub: 404 on a shard that the file list claims exists", async () => {
  await withHub(async ({ hub, opts }) => {
    // The API lists the shard but the download 404s (e.g. deleted between listing and fetching).
    hub.faults.push({ path: /model-00002-of-00002\.safetensors$/, status: 404, times: 100 });
    await assert.rejects(
      () => loadModel("test/tiny-sharded", NF4, opts),
      (e: Error) =>
        e instanceof UsageError &&
        /file "model-00002-of-00002\.safetensors" does not exist in the repo \(HTTP 404\)/.test(e.message),
    );
  });
});

Deno.test("hub: 429 and 5xx are retried with backoff, then it succeeds", async () => {
  await withHub(async ({ hub, opts }) => {
    const retries: string[] = [];
    hub.faults.push({ path: /^\/api\/models\//, status: 429, retryAfter: "0", times: 2 });
    hub.faults.push({ path: /config\.json$/, status: 503, times: 1 });
    hub.faults.push({ path: /^\/cdn\//, status: 500, times: 2, minStart: 1000 });
    const m = await loadModel("test/tiny-f32", NF4, {
      ...opts,
      hub: { ...opts.hub, onRetry: (i) => retries.push(i.reason) },
    });
    assertMatchesReference(m.tensors, true, "after retries");
    assert.equal(hub.requests.filter((r) => r.path.startsWith("/api/")).length, 3, "two 429s then 200");
    assert.deepEqual(retries.filter((r) => r === "HTTP 429").length, 2);
    assert.ok(retries.includes("HTTP 503") && retries.includes("HTTP 500"));
    assert.ok(hub.faults.every((f) => f.times === 0));
  });
});

Deno.test("hub: a connection dropped mid-tensor resumes at the byte", async () => {
  await withHub(async ({ hub, opts }) => {
    // The embedding read (the only read of >= 100 kB) breaks after 12345 bytes, twice.
    hub.faults.push({ path: /^\/cdn\//, minLength: 100_000, dropAfter: 12345, times: 2 });
    const m = await loadModel("test/tiny-f32", DENSE, opts);
    assertMatchesReference(m.tensors, false, "resumed");
    const big = hub.requests.filter((r) => r.range && r.path.startsWith("/cdn/")).map((r) => {
      const [a, b] = r.range!.slice(6).split("-").map(Number);
      return { a, b };
    }).filter((r) => r.b - r.a + 1 >= 100_000 - 2 * 12345);
    assert.equal(big.length, 3, "one read + two resumed reads");
    assert.equal(big[1].a, big[0].a + 12345, "resumed at the first missing byte");
    assert.equal(big[2].a, big[0].a + 2 * 12345);
    assert.equal(big[2].b, big[0].b);
  });
});

Deno.test("hub: a connection that keeps dropping fails with one clear line after the retries", async () => {
  await withHub(async ({ hub, opts, cache }) => {
    hub.faults.push({ path: /^\/cdn\//, minLength: 100_000, dropAfter: 0, times: 1000 });
    await assert.rejects(
      () => loadModel("test/tiny-f32", NF4, { ...opts, hub: { ...opts.hub, retries: 2 } }),
      /test\/tiny-f32\/model\.safetensors: connection dropped 3 times at byte \d+ without progress/,
    );
    assert.ok(!(await listFiles(join(cache, "converted"))).length, "no cache entry");
  });
});

Deno.test("hub: truncated file and header offsets past the end: clear error, nothing cached", async () => {
  await withHub(async ({ opts, cache }) => {
    await assert.rejects(() => loadModel("test/truncated", NF4, opts), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(
        e.message,
        /^test\/truncated\/model\.safetensors: tensor ".+" ends at byte \d+ but the file has \d+ bytes \(truncated or corrupt\)$/,
      );
      return true;
    });
    await assert.rejects(
      () => loadModel("test/bad-offsets", NF4, opts),
      /test\/bad-offsets\/model\.safetensors: tensor "model\.norm\.weight" ends at byte \d+ but the file has \d+ bytes/,
    );
    const converted = await listFiles(join(cache, "converted"));
    assert.deepEqual(converted, [], "no converted entry, no temp file");
  });
});

Deno.test("hub: offline mode uses a warm cache without any request, and says what to do when cold", async () => {
  await withHub(async ({ hub, opts }) => {
    Deno.env.set("HF_HUB_OFFLINE", "1");
    await assert.rejects(() => loadModel("test/tiny-bf16", NF4, opts), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(
        e.message,
        /^HF_HUB_OFFLINE is set and test\/tiny-bf16@main is not in the cache \(.+\); run once online: maieutic quantize --model test\/tiny-bf16$/,
      );
      return true;
    });
    assert.equal(hub.requests.length, 0, "offline: no request at all");
    Deno.env.delete("HF_HUB_OFFLINE");
    await loadModel("test/tiny-bf16", NF4, opts);
    Deno.env.set("HF_HUB_OFFLINE", "1");
    hub.requests.length = 0;
    const m = await loadModel("test/tiny-bf16", NF4, opts);
    assert.equal(hub.requests.length, 0);
    assert.equal(m.stats.fromCache, true);
    assert.equal(m.revision, hub.sha("test/tiny-bf16"));
    assertMatchesReference(m.tensors, true, "offline");
    // warm for NF4 but not for dense: the message names the quantization and the fix
    await assert.rejects(
      () => loadModel("test/tiny-bf16", DENSE, opts),
      /HF_HUB_OFFLINE is set and test\/tiny-bf16@[0-9a-f]{40} has not been converted for quantization "dense" yet .*run once online/,
    );
  });
});

Deno.test("hub: an unreachable endpoint falls back to the cache with a notice, or fails clearly", async () => {
  await withHub(async ({ hub, opts, notices }) => {
    await loadModel("test/tiny-f32", NF4, opts);
    const dead = { ...opts, hub: { ...opts.hub, endpoint: "http://127.0.0.1:9", retries: 1 } };
    const m = await loadModel("test/tiny-f32", NF4, dead);
    assert.equal(m.stats.fromCache, true);
    assert.match(
      notices.join("\n"),
      /could not reach http:\/\/127\.0\.0\.1:9; using the cached test\/tiny-f32@/,
    );
    await assert.rejects(
      () => loadModel("test/tiny-bf16", NF4, dead),
      /could not reach http:\/\/127\.0\.0\.1:9 \(GET http:\/\/127\.0\.0\.1:9\/api\/models\/test\/tiny-bf16\/revision\/main failed after 2 attempts .*set HF_HUB_OFFLINE=1/,
    );
    void hub;
  });
});

Deno.test("hub: HF_ENDPOINT and the small-file cache layout", async () => {
  await withHub(async ({ hub, cache }) => {
    Deno.env.set("HF_ENDPOINT", hub.url + "/");
    const c = new HubClient({ retryBaseMs: 1 });
    assert.equal(c.endpoint, hub.url);
    const rr = await c.resolve("test/tiny-f32");
    assert.equal(rr.sha, hub.sha("test/tiny-f32"));
    assert.ok(rr.files?.includes("config.json"));
    const p = await c.download(rr, "config.json");
    assert.equal(p, join(cache, "hub", "models--test--tiny-f32", "snapshots", rr.sha, "config.json"));
    assert.equal(await c.download(rr, "tokenizer.json", { optional: true }), undefined);
    hub.requests.length = 0;
    await c.download(rr, "config.json");
    assert.equal(hub.requests.length, 0, "cached small file is not fetched again");
  });
});
