import assert from "node:assert/strict";
import { httpGet, HttpRangeSource, parseContentRange, redactUrl } from "../../src/hub/http.ts";
import { formatBytes, progressLine, stderrProgress } from "../../src/util/progress.ts";
import { openSafetensors } from "../../src/safetensors/stream.ts";
import { readSafetensorsFile } from "../../src/safetensors/read_file.ts";

const FILE = new URL("../fixtures/golden/tiny_gemma2/model.safetensors", import.meta.url).pathname;
const bytes = await Deno.readFile(FILE);

/** A server that ignores Range (always 200 + whole file), with a redirect chain in front. */
async function withPlainServer(fn: (url: string, log: string[]) => Promise<void>) {
  const ac = new AbortController();
  const log: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} }, (req) => {
    const u = new URL(req.url);
    log.push(`${u.pathname} ${req.headers.get("range") ?? "-"} ${req.headers.get("authorization") ?? "-"}`);
    if (u.pathname === "/a") return new Response(null, { status: 307, headers: { location: "/b?x=secret" } });
    if (u.pathname === "/b") return new Response(null, { status: 302, headers: { location: "/file" } });
    if (u.pathname === "/loop") return new Response(null, { status: 302, headers: { location: "/loop" } });
    return new Response(bytes, { headers: { "content-length": String(bytes.byteLength) } });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, log);
  } finally {
    ac.abort();
    await server.finished;
  }
}

Deno.test("http: a server that ignores Range still yields the right bytes; redirects keep the token on the origin", async () => {
  await withPlainServer(async (url, log) => {
    const src = new HttpRangeSource(`${url}/a`, { token: "hf_x", retryBaseMs: 1 });
    assert.equal(await src.size(), bytes.byteLength);
    const r = await openSafetensors(src);
    const whole = await readSafetensorsFile(FILE);
    for (const n of r.names().slice(0, 5)) {
      assert.deepEqual((await r.readTensor(n)).data, whole.tensors.get(n)!.data);
    }
    assert.ok(log.every((l) => l.endsWith("Bearer hf_x")), "same-origin redirects keep the token");
    assert.ok(log.some((l) => l.startsWith("/b ")), "followed the redirect chain");
    await assert.rejects(() => httpGet(`${url}/loop`, { retries: 0 }), /more than 10 redirects/);
  });
});

Deno.test("http: 416 past the end is a clear truncation error; URLs in messages lose their query", async () => {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    () => new Response(null, { status: 416, headers: { "content-range": "bytes */100" } }),
  );
  try {
    const src = new HttpRangeSource(`http://127.0.0.1:${server.addr.port}/f.safetensors?token=abc`, {
      retries: 0,
    });
    await assert.rejects(() => src.read(200, 10), (e: Error) => {
      assert.match(
        e.message,
        /f\.safetensors: bytes 200-209 are past the end of the file \(100 bytes\) \(truncated\?\)/,
      );
      assert.ok(!e.message.includes("token=abc"));
      return true;
    });
  } finally {
    ac.abort();
    await server.finished;
  }
  assert.equal(redactUrl("https://cdn.example/x/y?X-Amz-Signature=s#f"), "https://cdn.example/x/y");
  assert.deepEqual(parseContentRange("bytes 5-9/100"), { start: 5, end: 9, total: 100 });
  assert.equal(parseContentRange("nonsense"), undefined);
});

Deno.test("progress: bytes, rate and ETA; throttled lines and a final line", () => {
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(5_230_000_000), "5.23 GB");
  assert.equal(
    progressLine("fetching x", 250e6, 1e9, 10),
    "fetching x: 250 MB / 1.00 GB (25%) 25.0 MB/s ETA 30s",
  );
  assert.equal(progressLine("x", 1e9, 1e9, 100), "x: 1.00 GB / 1.00 GB (100%) 10.0 MB/s in 1m40s");
  let t = 0;
  const lines: string[] = [];
  const p = stderrProgress("dl", 1000, {
    tty: false,
    intervalMs: 1000,
    now: () => t,
    write: (s) => lines.push(s),
  });
  for (let i = 0; i < 10; i++) {
    t += 300;
    p.add(100);
  }
  p.done();
  p.done();
  assert.deepEqual(lines, [
    "dl: 400 B / 1.00 KB (40%) 333 B/s ETA 2s\n",
    "dl: 800 B / 1.00 KB (80%) 333 B/s ETA 1s\n",
    "dl: 1.00 KB / 1.00 KB (100%) 333 B/s in 3s\n",
  ]);
});
