import { attentionBwd, attentionFwd, type AttnShape } from "../../src/model/ref/attention.ts";
import { assert, dot, numericGrad, randF64, relErr } from "../../src/model/ref/finite_diff.ts";
import { rng } from "../helpers/gpu.ts";

function shape(over: Partial<AttnShape>): AttnShape {
  return { B: 2, T: 6, Hq: 4, Hkv: 2, D: 5, scale: 32 ** -0.5, softcap: 3, window: null, ...over };
}

Deno.test("ref attention: masks, GQA, lse and backward vs finite differences", () => {
  const rand = rng(6);
  const keyMask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
  for (
    const s of [
      shape({}),
      shape({ window: 3, keyMask }),
      shape({ softcap: null, Hkv: 4 }),
      shape({ Hkv: 1, window: 2 }),
    ]
  ) {
    const { B, T, Hq, Hkv, D } = s;
    const q = randF64(B * T * Hq * D, rand, 2);
    const k = randF64(B * T * Hkv * D, rand, 2);
    const v = randF64(B * T * Hkv * D, rand);
    const { out, lse } = attentionFwd(q, k, v, s);
    // direct check of one row: b=1, h=3 (kv head floor(3/(Hq/Hkv))), i=5
    const b = 1, h = 3, i = 5, kvh = Math.floor(h / (Hq / Hkv));
    const sc: number[] = [];
    const vis: number[] = [];
    for (let j = 0; j <= i; j++) {
      if (s.window !== null && i - s.window >= j) continue;
      if (s.keyMask && s.keyMask[b * T + j] === 0) continue;
      let d = 0;
      for (let e = 0; e < D; e++) {
        d += q[((b * T + i) * Hq + h) * D + e] * k[((b * T + j) * Hkv + kvh) * D + e];
      }
      d *= s.scale;
      sc.push(s.softcap === null ? d : Math.tanh(d / s.softcap) * s.softcap);
      vis.push(j);
    }
    const z = sc.reduce((a, x) => a + Math.exp(x), 0);
    assert(Math.abs(lse[(b * Hq + h) * T + i] - Math.log(z)) < 1e-12);
    for (let e = 0; e < D; e++) {
      let want = 0;
      vis.forEach((j, n) => want += Math.exp(sc[n]) / z * v[((b * T + j) * Hkv + kvh) * D + e]);
      assert(Math.abs(out[((b * T + i) * Hq + h) * D + e] - want) < 1e-12);
    }
    const R = randF64(out.length, rand);
    const g = attentionBwd(R, q, k, v, s);
    const L = () => dot(attentionFwd(q, k, v, s).out, R);
    assert(relErr(g.dq, numericGrad(q, L)) < 1e-7, "dq");
    assert(relErr(g.dk, numericGrad(k, L)) < 1e-7, "dk");
    assert(relErr(g.dv, numericGrad(v, L)) < 1e-7, "dv");
  }
});

Deno.test("ref attention: a fully masked row is a uniform softmax over all keys", () => {
  const s = shape({ B: 1, T: 3, Hq: 1, Hkv: 1, D: 2, keyMask: [0, 1, 1] });
  const q = [1, 2, 3, 4, 5, 6];
  const k = [1, 0, 0, 1, 1, 1];
  const v = [1, 2, 3, 4, 5, 6];
  const { out } = attentionFwd(q, k, v, s);
  // query 0 sees only key 0, which is padding: uniform over the 3 keys, like HF's finfo.min mask
  assert(Math.abs(out[0] - 3) < 1e-12 && Math.abs(out[1] - 4) < 1e-12);
});
