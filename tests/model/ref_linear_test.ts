import { loraLinearBwd, loraLinearFwd } from "../../src/model/ref/linear.ts";
import { assert, dot, numericGrad, randF64, relErr } from "../../src/model/ref/finite_diff.ts";
import { rng } from "../helpers/gpu.ts";

Deno.test("ref lora linear: forward formula and backward vs finite differences (with and without dropout)", () => {
  const rand = rng(4);
  const N = 3, inF = 5, outF = 4, r = 2, scaling = 2;
  const x = randF64(N * inF, rand);
  const W = randF64(outF * inF, rand);
  const A = randF64(r * inF, rand);
  const B = randF64(outF * r, rand);
  const R = randF64(N * outF, rand);
  const mask = Array.from({ length: N * inF }, () => (rand() < 0.3 ? 0 : 1 / 0.7));
  // one element by hand: y[1][2] = Σ x W + s Σ_k B[2,k] Σ_i A[k,i] x[i] m[i]
  const { y, u } = loraLinearFwd(x, W, A, B, N, inF, outF, r, scaling, mask);
  let want = 0;
  for (let i = 0; i < inF; i++) want += x[inF + i] * W[2 * inF + i];
  for (let k = 0; k < r; k++) {
    let uk = 0;
    for (let i = 0; i < inF; i++) uk += A[k * inF + i] * x[inF + i] * mask[inF + i];
    assert(Math.abs(u[r + k] - uk) < 1e-14);
    want += scaling * B[2 * r + k] * uk;
  }
  assert(Math.abs(y[outF + 2] - want) < 1e-14);
  for (const m of [undefined, mask]) {
    const g = loraLinearBwd(R, x, W, A, B, N, inF, outF, r, scaling, m);
    const L = () => dot(loraLinearFwd(x, W, A, B, N, inF, outF, r, scaling, m).y, R);
    assert(relErr(g.dx, numericGrad(x, L)) < 1e-8, "dx");
    assert(relErr(g.dA, numericGrad(A, L)) < 1e-8, "dA");
    assert(relErr(g.dB, numericGrad(B, L)) < 1e-8, "dB");
  }
});
