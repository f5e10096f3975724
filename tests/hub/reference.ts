/** Shared assertions for the loading tests: the golden tiny checkpoint as the reference. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readSafetensorsFile } from "../../src/safetensors/read_file.ts";
import { quantizeNf4 } from "../../src/quant/nf4.ts";
import type { HostTensor } from "../../src/quant/store.ts";

const GOLDEN = new URL("../fixtures/golden/", import.meta.url).pathname;
const reference = await readSafetensorsFile(join(GOLDEN, "tiny_gemma2/model.safetensors"));

/** Every tensor equals the f32 golden checkpoint: dense ones value for value, NF4 ones byte for byte. */
export function assertMatchesReference(tensors: Map<string, HostTensor>, quantized: boolean, what: string) {
  assert.equal(tensors.size, reference.tensors.size, `${what}: tensor count`);
  let nf4 = 0;
  for (const [name, ref] of reference.tensors) {
    const t = tensors.get(name);
    assert.ok(t, `${what}: ${name} missing`);
    const isLinear = /_proj\.weight$/.test(name);
    if (quantized && isLinear) {
      assert.equal(t.kind, "nf4", `${what}: ${name} should be NF4`);
      if (t.kind !== "nf4") continue;
      const want = quantizeNf4(ref.data as Float32Array, ref.shape);
      assert.deepEqual(t.nf4.shape, ref.shape);
      assert.deepEqual(t.nf4.packed, want.packed, `${what}: ${name} packed`);
      assert.deepEqual(t.nf4.qabsmax, want.qabsmax, `${what}: ${name} qabsmax`);
      assert.deepEqual(t.nf4.absmax2, want.absmax2, `${what}: ${name} absmax2`);
      assert.equal(t.nf4.offset, want.offset);
      nf4++;
    } else {
      assert.equal(t.kind, "dense", `${what}: ${name} should be dense`);
      if (t.kind !== "dense") continue;
      assert.deepEqual(t.shape, ref.shape);
      assert.deepEqual(t.data, ref.data, `${what}: ${name} values`);
    }
  }
  assert.equal(nf4, quantized ? 28 : 0, `${what}: 7 linears x 4 layers quantized`);
}
