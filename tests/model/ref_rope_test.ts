import { ropeBwd, ropeFwd, ropeInvFreq } from "../../src/model/ref/rope.ts";
import { assert, dot, numericGrad, randF64, relErr } from "../../src/model/ref/finite_diff.ts";
import { rng } from "../helpers/gpu.ts";

Deno.test("ref rope: rotate-half convention, inverse, and backward vs finite differences", () => {
  const rand = rng(2);
  const B = 2, T = 5, H = 3, D = 8, theta = 10000;
  const x = randF64(B * T * H * D, rand);
  const y = ropeFwd(x, B, T, H, D, theta);
  // position 0 is the identity
  for (let d = 0; d < D; d++) assert(y[d] === x[d]);
  // element (b=1, t=3, h=2, i=1): x1·cos − x2·sin with angle 3·inv_freq[1]
  const inv = ropeInvFreq(D, theta);
  assert(Math.abs(inv[1] - 0.1) < 1e-8);
  const o = ((1 * T + 3) * H + 2) * D;
  const a = 3 * inv[1];
  assert(Math.abs(y[o + 1] - (x[o + 1] * Math.cos(a) - x[o + 5] * Math.sin(a))) < 1e-14);
  assert(Math.abs(y[o + 5] - (x[o + 5] * Math.cos(a) + x[o + 1] * Math.sin(a))) < 1e-14);
  // the backward is the inverse rotation
  assert(relErr(ropeBwd(y, B, T, H, D, theta), x) < 1e-14);
  const R = randF64(x.length, rand);
  const pos = [4, 0, 7, 2, 9];
  const g = ropeBwd(R, B, T, H, D, theta, pos);
  const L = () => dot(ropeFwd(x, B, T, H, D, theta, pos), R);
  assert(relErr(g, numericGrad(x, L)) < 1e-8);
});
