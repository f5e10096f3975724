import assert from "node:assert/strict";
import { join } from "node:path";
import { readSafetensorsFile } from "../../src/safetensors/read_file.ts";
import { openSafetensors } from "../../src/safetensors/stream.ts";
import { FileSource, MemorySource } from "../../src/safetensors/source.ts";
import { SafetensorsError } from "../../src/safetensors/header.ts";
import {
  createSafetensorsWriter,
  encodeSafetensors,
  writeSafetensors,
  type WriteTensor,
} from "../../src/safetensors/write.ts";
import { checkShards, parseShardIndex, shardFiles } from "../../src/safetensors/index.ts";

const GOLDEN = new URL("../fixtures/golden/", import.meta.url).pathname;

/** The rules the Rust `safetensors` loader (used by Python/PEFT) enforces on a file. */
function assertRustLoadable(bytes: Uint8Array) {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  assert.equal(n % 8, 0, "header padded to 8");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const spans: [number, number][] = [];
  for (const [k, v] of Object.entries(header) as [string, { data_offsets: [number, number] }][]) {
    if (k === "__metadata__") {
      for (const x of Object.values(v as Record<string, unknown>)) assert.equal(typeof x, "string");
      continue;
    }
    spans.push(v.data_offsets);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let end = 0;
  for (const [b, e] of spans) {
    assert.equal(b, end, "contiguous data, no holes");
    end = e;
  }
  assert.equal(8 + n + end, bytes.byteLength, "data section ends at the end of the file");
}

async function tmpDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "maieutic-st-" });
}

Deno.test("stream: every golden checkpoint streams tensor by tensor equal to the whole-file read", async () => {
  for (
    const f of ["tiny_gemma2/model.safetensors", "tiny_gemma2_bf16/model.safetensors", "nf4.safetensors"]
  ) {
    const whole = await readSafetensorsFile(join(GOLDEN, f));
    const reader = await openSafetensors(new FileSource(join(GOLDEN, f)));
    let count = 0;
    let lastOffset = -1;
    for await (const [name, t] of reader.tensors()) {
      const w = whole.tensors.get(name)!;
      assert.ok(w, name);
      assert.deepEqual(t.shape, w.shape);
      assert.deepEqual(t.data, w.data, `${f}:${name}`);
      const off = reader.info(name).data_offsets[0];
      assert.ok(off > lastOffset, "file order");
      lastOffset = off;
      count++;
    }
    assert.equal(count, whole.tensors.size);
    assert.deepEqual(reader.header.metadata, whole.metadata);
    reader.close();
  }
});

Deno.test("stream: bf16 checkpoint equals the f32 checkpoint value for value (sharded too)", async () => {
  const f32 = await readSafetensorsFile(join(GOLDEN, "tiny_gemma2/model.safetensors"));
  const bf = await openSafetensors(new FileSource(join(GOLDEN, "tiny_gemma2_bf16/model.safetensors")));
  for (const name of bf.names()) {
    const t = await bf.readTensor(name);
    assert.equal(t.dtype, "BF16");
    assert.deepEqual(t.data, f32.tensors.get(name)!.data, name);
  }
  bf.close();
  const dir = join(GOLDEN, "tiny_gemma2_bf16_sharded");
  const index = parseShardIndex(await Deno.readTextFile(join(dir, "model.safetensors.index.json")), "index");
  const shards = shardFiles(index);
  assert.deepEqual(shards, ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
  const seen = new Map<string, string[]>();
  let n = 0;
  for (const s of shards) {
    const r = await openSafetensors(new FileSource(join(dir, s)));
    seen.set(s, r.names());
    for await (const [name, t] of r.tensors({ prefetch: 3 })) {
      assert.deepEqual(t.data, f32.tensors.get(name)!.data, name);
      n++;
    }
    r.close();
  }
  checkShards(index, seen, "index");
  assert.equal(n, f32.tensors.size);
});

Deno.test("stream: concurrent reads on one FileSource do not interleave", async () => {
  const src = new FileSource(join(GOLDEN, "tiny_gemma2/model.safetensors"));
  const r = await openSafetensors(src);
  const names = r.names();
  const all = await Promise.all(names.map((n) => r.readRaw(n)));
  const whole = await Deno.readFile(join(GOLDEN, "tiny_gemma2/model.safetensors"));
  names.forEach((n, i) => {
    const [b, e] = r.info(n).data_offsets;
    assert.deepEqual(all[i], whole.slice(r.header.dataStart + b, r.header.dataStart + e), n);
  });
  r.close();
});

Deno.test("header: truncated file, offsets past the end, overlaps and bad headers give one clear error", async () => {
  const good = await Deno.readFile(join(GOLDEN, "tiny_gemma2/model.safetensors"));
  // truncated: the last tensor ends past the file
  await assert.rejects(
    () => openSafetensors(new MemorySource(good.slice(0, good.byteLength - 100), "cut.safetensors")),
    (e: Error) =>
      e instanceof SafetensorsError &&
      /cut\.safetensors: tensor ".*" ends at byte \d+ but the file has \d+ bytes/.test(e.message),
  );
  // header length larger than the file
  const big = good.slice(0, 64);
  new DataView(big.buffer).setBigUint64(0, 1000n, true);
  await assert.rejects(
    () => openSafetensors(new MemorySource(big, "h")),
    /header of 1000 bytes exceeds the file size 64/,
  );
  // offsets exceeding the file while the byte count matches the shape
  const lie = encodeSafetensors({ a: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
  const text = new TextDecoder().decode(lie.subarray(8));
  const patched = new TextEncoder().encode(text.replace('"data_offsets":[0,8]', '"data_offsets":[8,16]'));
  const bytes = new Uint8Array(8 + patched.byteLength);
  bytes.set(lie.subarray(0, 8));
  bytes.set(patched, 8);
  await assert.rejects(
    () => openSafetensors(new MemorySource(bytes, "lie")),
    /"a" ends at byte \d+ but the file has/,
  );
  // overlapping tensors
  const ov = {
    a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
  };
  const ovj = new TextEncoder().encode(JSON.stringify(ov));
  const ovb = new Uint8Array(8 + ovj.byteLength + 8);
  new DataView(ovb.buffer).setBigUint64(0, BigInt(ovj.byteLength), true);
  ovb.set(ovj, 8);
  await assert.rejects(() => openSafetensors(new MemorySource(ovb, "ov")), /overlap/);
  // shape/offset mismatch, bad dtype, not JSON
  const mk = (obj: string) => {
    const j = new TextEncoder().encode(obj);
    const b = new Uint8Array(8 + j.byteLength + 64);
    new DataView(b.buffer).setBigUint64(0, BigInt(j.byteLength), true);
    b.set(j, 8);
    return new MemorySource(b, "m");
  };
  await assert.rejects(
    () => openSafetensors(mk('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}')),
    /needs 12 bytes/,
  );
  await assert.rejects(
    () => openSafetensors(mk('{"a":{"dtype":"Q4","shape":[3],"data_offsets":[0,8]}}')),
    SafetensorsError,
  );
  await assert.rejects(() => openSafetensors(mk("{not json")), /not valid JSON/);
  await assert.rejects(() => openSafetensors(mk('{"__metadata__":{"a":1}}')), /__metadata__/);
  await assert.rejects(() => openSafetensors(new MemorySource(new Uint8Array(4), "tiny")), /too short/);
  // a local file that does not exist
  await assert.rejects(() => openSafetensors(new FileSource("/nonexistent/x.safetensors")), /file not found/);
});

Deno.test("write: every dtype round-trips, layout is what Python safetensors loads", async () => {
  const dir = await tmpDir();
  try {
    const tensors: Record<string, WriteTensor> = {
      f32: { dtype: "F32", shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, -0, 1e-30]) },
      f16: { dtype: "F16", shape: [3], data: new Float32Array([1, -2.5, 65504]) },
      bf16: { dtype: "BF16", shape: [3], data: [1, -2.5, 3.0e38] },
      bf16bits: { dtype: "BF16", shape: [2], data: new Uint16Array([0x3f80, 0xc000]) },
      f64: { dtype: "F64", shape: [1], data: new Float64Array([Math.PI]) },
      i64: { dtype: "I64", shape: [3], data: new BigInt64Array([-100n, 0n, 2n ** 40n]) },
      i64n: { dtype: "I64", shape: [2], data: [-100, 7] },
      i32: { dtype: "I32", shape: [2], data: new Int32Array([-5, 5]) },
      u8: { dtype: "U8", shape: [5], data: new Uint8Array([0, 1, 2, 254, 255]) },
      empty: { dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
    };
    const path = join(dir, "sub", "out.safetensors");
    await writeSafetensors(path, tensors, { format: "pt", note: "ü" });
    const bytes = await Deno.readFile(path);
    assertRustLoadable(bytes);
    const back = await readSafetensorsFile(path);
    assert.deepEqual(back.metadata, { format: "pt", note: "ü" });
    assert.deepEqual([...back.tensors.get("f32")!.data as Float32Array], [
      1,
      -2,
      3.5,
      0,
      -0,
      Math.fround(1e-30),
    ]);
    assert.ok(Object.is((back.tensors.get("f32")!.data as Float32Array)[4], -0));
    assert.deepEqual([...back.tensors.get("f16")!.data as Float32Array], [1, -2.5, 65504]);
    assert.deepEqual([...back.tensors.get("bf16")!.data as Float32Array].slice(0, 2), [1, -2.5]);
    assert.deepEqual([...back.tensors.get("bf16bits")!.data as Float32Array], [1, -2]);
    assert.deepEqual([...back.tensors.get("f64")!.data as Float64Array], [Math.PI]);
    assert.deepEqual([...back.tensors.get("i64")!.data as BigInt64Array], [-100n, 0n, 2n ** 40n]);
    assert.deepEqual([...back.tensors.get("i64n")!.data as BigInt64Array], [-100n, 7n]);
    assert.deepEqual([...back.tensors.get("i32")!.data as Int32Array], [-5, 5]);
    assert.deepEqual([...back.tensors.get("u8")!.data as Uint8Array], [0, 1, 2, 254, 255]);
    assert.deepEqual(back.tensors.get("empty")!.shape, [0, 4]);
    // no temp files left behind
    assert.deepEqual([...Deno.readDirSync(join(dir, "sub"))].map((e) => e.name), ["out.safetensors"]);
    // wrong element count is refused
    assert.throws(
      () => encodeSafetensors({ x: { dtype: "F32", shape: [3], data: new Float32Array(2) } }),
      /3 elements, data 2/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("write: re-encoding the golden PEFT adapter reproduces its tensors, bytes and metadata", async () => {
  const path = join(GOLDEN, "lora_adapter/adapter_model.safetensors");
  const orig = await Deno.readFile(path);
  const r = await openSafetensors(new MemorySource(orig, "adapter"));
  const map = new Map<string, WriteTensor>();
  for (const n of r.names()) map.set(n, { ...r.info(n), data: await r.readRaw(n) });
  const again = encodeSafetensors(map, r.header.metadata);
  assertRustLoadable(again);
  // identical data section (same order, contiguous) and identical header content
  assert.deepEqual(
    again.subarray(again.byteLength - (orig.byteLength - r.header.dataStart)),
    orig.subarray(r.header.dataStart),
  );
  const r2 = await openSafetensors(new MemorySource(again, "again"));
  assert.deepEqual(r2.header.tensors, r.header.tensors);
  assert.deepEqual(r2.header.metadata, { format: "pt" });
});

Deno.test("stream writer: declared order, atomic finish, abort leaves nothing", async () => {
  const dir = await tmpDir();
  try {
    const path = join(dir, "s.safetensors");
    const specs: [string, { dtype: "F32" | "U8"; shape: number[] }][] = [
      ["a", { dtype: "F32", shape: [2] }],
      ["b", { dtype: "U8", shape: [3] }],
    ];
    const w = await createSafetensorsWriter(path, specs, { k: "v" });
    await w.write("a", new Float32Array([1, 2]));
    await assert.rejects(() => w.write("a", new Float32Array([1, 2])), /expected tensor "b" next, got "a"/);
    await assert.rejects(() => w.finish(), /after 1 of 2 tensors/);
    assert.ok(!(await exists(path)), "nothing under the final name before finish");
    await w.write("b", new Uint8Array([7, 8, 9]));
    await w.finish();
    const bytes = await Deno.readFile(path);
    assert.equal(bytes.byteLength, w.totalBytes);
    assertRustLoadable(bytes);
    const back = await readSafetensorsFile(path);
    assert.deepEqual([...back.tensors.get("b")!.data as Uint8Array], [7, 8, 9]);
    assert.deepEqual(back.metadata, { k: "v" });

    const path2 = join(dir, "t.safetensors");
    const w2 = await createSafetensorsWriter(path2, specs);
    await w2.write("a", new Float32Array([1, 2]));
    await w2.abort();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["s.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("index: validates shard names and cross-checks shards", () => {
  assert.throws(
    () => parseShardIndex('{"weight_map":{"a":"../x.safetensors"}}', "i.json"),
    /not a safetensors file name/,
  );
  assert.throws(
    () => parseShardIndex('{"weight_map":{"a":"/etc/passwd"}}', "i.json"),
    /not a safetensors file name/,
  );
  assert.throws(() => parseShardIndex('{"weight_map":{}}', "i.json"), /empty/);
  assert.throws(() => parseShardIndex('{"weight_map":[1]}', "i.json"), /field "weight_map"/);
  assert.throws(() => parseShardIndex("nope", "i.json"), /i\.json: not valid JSON/);
  const idx = parseShardIndex(
    '{"metadata":{"total_size":8},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}',
    "i",
  );
  checkShards(idx, new Map([["s1.safetensors", ["a"]], ["s2.safetensors", ["b"]]]), "i");
  assert.throws(
    () => checkShards(idx, new Map([["s1.safetensors", ["a", "b"]], ["s2.safetensors", []]]), "i"),
    /"b" is in s1/,
  );
  assert.throws(
    () => checkShards(idx, new Map([["s1.safetensors", ["a"]], ["s2.safetensors", []]]), "i"),
    /"b" should be in s2/,
  );
});

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}
