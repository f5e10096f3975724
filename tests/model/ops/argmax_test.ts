// kernels/argmax.wgsl (src/model/ops/argmax.ts) against src/model/ref/argmax.ts.
import { createBuffer, upload } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readU32 } from "../../../src/gpu/readback.ts";
import { argmaxRows } from "../../../src/model/ops/argmax.ts";
import { argmaxRef } from "../../../src/model/ref/argmax.ts";
import { randomArray, rng, testGpu } from "../../helpers/gpu.ts";

Deno.test("argmax.wgsl: row argmax with the smallest index on ties, ragged V", async () => {
  const gpu = await testGpu();
  const rand = rng(5);
  for (const [rows, V] of [[1, 1], [3, 257], [2, 1000], [4, 5000]]) {
    const x = randomArray(rows * V, rand, 10);
    // A tie in row 0 (two equal maxima: the first wins) and -Infinity entries.
    if (V > 10) {
      x[3] = 100;
      x[9] = 100;
      x[4] = -Infinity;
    }
    const ids = createBuffer(gpu, "ids", rows * 4);
    const rec = new Recorder(gpu);
    argmaxRows(rec, upload(gpu, "logits", x), ids, { rows, V });
    rec.submit();
    const got = Array.from(await readU32(gpu, ids, 0, rows));
    const want = argmaxRef(x, rows, V);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`rows ${rows} V ${V}: ${got} != ${want}`);
    }
  }
});
