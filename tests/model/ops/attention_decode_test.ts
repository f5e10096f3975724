// kernels/attention_decode.wgsl (src/model/ops/attention_decode.ts) against the float64 reference attention
// (src/model/ref/attention.ts) on ragged shapes.
import { createBuffer, upload } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readF32 } from "../../../src/gpu/readback.ts";
import { attentionDecode } from "../../../src/model/ops/attention_decode.ts";
import { attentionFwd } from "../../../src/model/ref/attention.ts";
import { assertClose, randomArray, rng, testGpu } from "../../helpers/gpu.ts";

interface DecodeCase {
  B: number;
  Hq: number;
  Hkv: number;
  D: number;
  maxLen: number;
  n: number;
  window: number | null;
  softcap: number | null;
}

// Ragged: n = 1, n not a multiple of the 64-key tile, n across several tiles, windows shorter and longer than n,
// D not a multiple of the workgroup (24) and D = 256 (4 elements per invocation), GQA 2:1 and 4:1.
const DECODE_CASES: DecodeCase[] = [
  { B: 1, Hq: 4, Hkv: 2, D: 24, maxLen: 8, n: 1, window: null, softcap: 50 },
  { B: 3, Hq: 4, Hkv: 2, D: 24, maxLen: 37, n: 37, window: 8, softcap: 50 },
  { B: 2, Hq: 4, Hkv: 1, D: 8, maxLen: 200, n: 131, window: null, softcap: null },
  { B: 2, Hq: 2, Hkv: 2, D: 256, maxLen: 80, n: 70, window: 65, softcap: 50 },
  { B: 1, Hq: 8, Hkv: 4, D: 40, maxLen: 300, n: 257, window: 300, softcap: 30 },
];

Deno.test("attention_decode.wgsl: the last query row of the float64 reference attention", async () => {
  const gpu = await testGpu();
  const rand = rng(11);
  for (const c of DECODE_CASES) {
    const { B, Hq, Hkv, D, maxLen, n } = c;
    const scale = 32 ** -0.5;
    const q = randomArray(B * Hq * D, rand, 2);
    const k = randomArray(B * maxLen * Hkv * D, rand, 2);
    const v = randomArray(B * maxLen * Hkv * D, rand);
    const rec = new Recorder(gpu);
    const out = createBuffer(gpu, "out", B * Hq * D * 4);
    attentionDecode(rec, upload(gpu, "q", q), upload(gpu, "k", k), upload(gpu, "v", v), out, {
      ...c,
      scale,
    });
    rec.submit();
    const got = await readF32(gpu, out, 0, B * Hq * D);
    // Reference: full causal attention over T = n positions (the cache prefix), query at position n − 1.
    const qFull = new Float64Array(B * n * Hq * D);
    const kFull = new Float64Array(B * n * Hkv * D);
    const vFull = new Float64Array(B * n * Hkv * D);
    for (let b = 0; b < B; b++) {
      for (let x = 0; x < Hq * D; x++) qFull[((b * n + n - 1) * Hq) * D + x] = q[b * Hq * D + x];
      for (let j = 0; j < n; j++) {
        for (let x = 0; x < Hkv * D; x++) {
          kFull[(b * n + j) * Hkv * D + x] = k[(b * maxLen + j) * Hkv * D + x];
          vFull[(b * n + j) * Hkv * D + x] = v[(b * maxLen + j) * Hkv * D + x];
        }
      }
    }
    const ref = attentionFwd(qFull, kFull, vFull, {
      B,
      T: n,
      Hq,
      Hkv,
      D,
      scale,
      softcap: c.softcap,
      window: c.window,
    }).out;
    const want = new Float64Array(B * Hq * D);
    for (let b = 0; b < B; b++) {
      for (let x = 0; x < Hq * D; x++) want[b * Hq * D + x] = ref[((b * n + n - 1) * Hq) * D + x];
    }
    assertClose(got, want, { abs: 2e-5 }, `decode attention ${JSON.stringify(c)}`);
  }
});
