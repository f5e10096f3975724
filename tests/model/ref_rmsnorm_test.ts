import { rmsnormBwd, rmsnormFwd } from "../../src/model/ref/rmsnorm.ts";
import { assert, dot, numericGrad, randF64, relErr } from "../../src/model/ref/finite_diff.ts";
import { rng } from "../helpers/gpu.ts";

Deno.test("ref rmsnorm: forward formula and backward vs finite differences", () => {
  const rand = rng(1);
  const rows = 3, dim = 7, eps = 1e-6;
  const x = randF64(rows * dim, rand, 2);
  const w = randF64(dim, rand, 0.5);
  const R = randF64(rows * dim, rand);
  const { y, rstd } = rmsnormFwd(x, w, rows, dim, eps);
  // direct check of one element
  let ss = 0;
  for (let j = 0; j < dim; j++) ss += x[dim + j] ** 2;
  const want = x[dim + 2] / Math.sqrt(ss / dim + eps) * (1 + w[2]);
  assert(Math.abs(y[dim + 2] - want) < 1e-14);
  const { dx, dw } = rmsnormBwd(R, x, w, rstd, rows, dim);
  const L = () => dot(rmsnormFwd(x, w, rows, dim, eps).y, R);
  assert(relErr(dx, numericGrad(x, L)) < 1e-8, "dx");
  assert(relErr(dw, numericGrad(w, L)) < 1e-8, "dw");
});
