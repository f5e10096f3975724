import { crossEntropyFwd, lmHeadCeBwd, lmHeadLogits } from "../../src/model/ref/cross_entropy.ts";
import { assert, numericGrad, randF64, relErr } from "../../src/model/ref/finite_diff.ts";
import { rng } from "../helpers/gpu.ts";

Deno.test("ref cross entropy: loss values and lm-head backward vs finite differences", () => {
  // two rows, V = 3: hand-computed losses
  const logits = [0, 1, 2, 5, 5, 5];
  const ce = crossEntropyFwd(logits, [2, -100], 2, 3);
  const lse0 = Math.log(1 + Math.E + Math.E ** 2);
  assert(ce.count === 1 && Math.abs(ce.loss - (lse0 - 2)) < 1e-15 && ce.tokenLoss[1] === 0);
  assert(Math.abs(ce.lse[1] - (5 + Math.log(3))) < 1e-14);

  const rand = rng(5);
  const N = 4, dim = 6, V = 9;
  const h = randF64(N * dim, rand, 3);
  const table = randF64(V * dim, rand, 2);
  const targets = [3, -100, 8, 0];
  for (const cap of [null, 5]) {
    const z = lmHeadLogits(h, table, N, dim, V, cap);
    if (cap !== null) { for (const v of z) assert(Math.abs(v) < cap); }
    const L = () => crossEntropyFwd(lmHeadLogits(h, table, N, dim, V, cap), targets, N, V).loss;
    const { dh } = lmHeadCeBwd(h, table, targets, N, dim, V, cap, 1 / 3);
    assert(relErr(dh, numericGrad(h, L)) < 1e-8, `cap ${cap}`);
  }
});
