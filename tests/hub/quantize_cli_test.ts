/**
 * `maieutic quantize` end to end, as a subprocess (`deno run -A main.ts quantize ...`): a local sharded bf16
 * checkpoint, the mock-Hub equivalent, the tiny model, and a gated repo (exit 2, one line, no token).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { GOOD_TOKEN, startMockHub } from "../helpers/mock_hub.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SHARDED = join(ROOT, "tests/fixtures/golden/tiny_gemma2_bf16_sharded");

async function cli(args: string[], env: Record<string, string>, cwd: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", join(ROOT, "deno.json"), join(ROOT, "main.ts"), "quantize", ...args],
    env: { HF_HUB_OFFLINE: "", HUGGINGFACE_API_KEY: "", HF_TOKEN: "", NO_COLOR: "1", ...env },
    cwd, // a temp dir: no .env is picked up
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("quantize CLI: local sharded bf16 dir, then the mock Hub, tiny, and a gated repo", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "maieutic-qcli-" });
  const hub = await startMockHub({
    "test/tiny-sharded": { dir: SHARDED },
    "test/gated": { dir: SHARDED, gated: true },
  });
  try {
    const env = { MAIEUTIC_CACHE: join(tmp, "cache"), HF_ENDPOINT: hub.url };
    const help = await cli(["--help"], env, tmp);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /maieutic quantize/);

    const local = await cli(["--model", SHARDED], env, tmp);
    assert.equal(local.code, 0, local.stderr);
    assert.match(local.stdout, /^model {5}\/.+tiny_gemma2_bf16_sharded$/m);
    assert.match(local.stdout, /^tensors {3}46 \(28 NF4, 18 dense\)$/m);
    assert.match(local.stdout, /^size {6}412 KB source -> \d+ KB nf4-dq-b64-b256 \(\d+%\)$/m);
    assert.match(local.stdout, /^time {6}[\d.]+ s$/m);
    const cachePath = /^cache {5}(.+)$/m.exec(local.stdout)![1];
    assert.ok(cachePath.startsWith(join(tmp, "cache")) && (await Deno.stat(cachePath)).size > 0);
    assert.match(local.stderr, /converting .+: 412 KB \/ 412 KB \(100%\)/, "progress line on stderr");
    const again = await cli(["--model", SHARDED], env, tmp);
    assert.match(again.stdout, /\(already cached\)/);

    const remote = await cli(["--model", "test/tiny-sharded"], env, tmp);
    assert.equal(remote.code, 0, remote.stderr);
    assert.match(
      remote.stdout,
      new RegExp(`^model {5}test/tiny-sharded @ ${hub.sha("test/tiny-sharded")}$`, "m"),
    );
    assert.match(remote.stdout, /^tensors {3}46 \(28 NF4, 18 dense\)$/m);
    assert.match(remote.stderr, /fetching test\/tiny-sharded: .*\(100%\)/);
    // offline afterwards: served from the cache
    const offline = await cli(["--model", "test/tiny-sharded"], { ...env, HF_HUB_OFFLINE: "1" }, tmp);
    assert.equal(offline.code, 0, offline.stderr);
    assert.match(offline.stdout, /\(already cached\)/);

    const tiny = await cli(["--model", "tiny", "--set", "quantization.load_in_4bit=false"], env, tmp);
    assert.equal(tiny.code, 0, tiny.stderr);
    assert.match(tiny.stdout, /^tensors {3}\d+ \(0 NF4, \d+ dense\)$/m);

    const gated = await cli(["--model", "test/gated"], env, tmp);
    assert.equal(gated.code, 2);
    assert.equal(
      gated.stderr.trim(),
      "error: test/gated is gated: accept the license at https://huggingface.co/test/gated, then put your token in .env as HUGGINGFACE_API_KEY=hf_...",
    );
    // with the token in the environment it works, and the token is printed nowhere
    const withToken = await cli(["--model", "test/gated"], { ...env, HUGGINGFACE_API_KEY: GOOD_TOKEN }, tmp);
    assert.equal(withToken.code, 0, withToken.stderr);
    assert.ok(!(withToken.stdout + withToken.stderr).includes(GOOD_TOKEN));
    const badToken = await cli(["--model", "test/gated"], {
      ...env,
      MAIEUTIC_CACHE: join(tmp, "cold"),
      HUGGINGFACE_API_KEY: "hf_not_allowed_123",
    }, tmp);
    assert.equal(badToken.code, 2);
    assert.ok(!(badToken.stdout + badToken.stderr).includes("hf_not_allowed_123"));
    assert.match(
      badToken.stderr.trim(),
      /^error: test\/gated is gated and your token \(HUGGINGFACE_API_KEY\) has no access: .+$/,
    );
    // the token is never written into the cache
    for await (const f of walk(join(tmp, "cache"))) {
      const text = new TextDecoder().decode(await Deno.readFile(f));
      assert.ok(!text.includes(GOOD_TOKEN), f);
    }
  } finally {
    await hub.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* walk(p);
    else if (e.isFile) yield p;
  }
}
