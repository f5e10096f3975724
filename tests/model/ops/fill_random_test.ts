// kernels/fill_random.wgsl (src/model/ops/fill_random.ts): every mode stays in its range, is deterministic per
// seed, and differs between seeds (the gemma-2-2b-random weights depend on nothing else).
import assert from "node:assert/strict";
import { createBuffer } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readBuffer } from "../../../src/gpu/readback.ts";
import { type FillMode, fillRandom } from "../../../src/model/ops/fill_random.ts";
import { f16BitsToF32 } from "../../../src/util/half.ts";
import { testGpu } from "../../helpers/gpu.ts";

const WORDS = 3000; // past one 256-invocation workgroup, not a multiple of it

async function fill(mode: FillMode, seed: number, lo = -0.5, hi = 0.25): Promise<Uint32Array> {
  const gpu = await testGpu();
  const out = createBuffer(gpu, "out", WORDS * 4);
  const rec = new Recorder(gpu);
  fillRandom(rec, out, { words: WORDS, mode, lo, hi, seed });
  rec.submit();
  return new Uint32Array(await readBuffer(gpu, out, 0, WORDS * 4));
}

Deno.test("fill_random: f32 and f16 values in [lo, hi), random bits spread over every byte, one stream per seed", async () => {
  const f = new Float32Array((await fill("f32", 7)).buffer);
  assert.ok(f.every((v) => v >= -0.5 && v < 0.25), "f32 outside [lo, hi)");
  assert.ok(
    Math.abs(f.reduce((a, v) => a + v, 0) / WORDS - -0.125) < 0.02,
    "f32 mean far from (lo + hi) / 2",
  );
  const h = await fill("f16", 7);
  const halves = Array.from(h).flatMap((w) => [f16BitsToF32(w & 0xffff), f16BitsToF32(w >>> 16)]);
  // f16 rounding may reach hi itself.
  assert.ok(halves.every((v) => v >= -0.5 && v <= 0.25), "f16 outside [lo, hi]");
  const bits = await fill("bits", 7);
  for (let byte = 0; byte < 4; byte++) {
    const seen = new Set(Array.from(bits, (w) => (w >>> (8 * byte)) & 0xff));
    assert.ok(seen.size > 200, `byte ${byte} of the random words takes only ${seen.size} values`);
  }
  assert.deepEqual(await fill("bits", 7), bits, "the same seed gives the same words");
  const other = await fill("bits", 8);
  assert.ok(other.filter((w, i) => w === bits[i]).length < 5, "seeds 7 and 8 give the same stream");
});
