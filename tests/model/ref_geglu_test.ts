import { gegluBwd, gegluFwd, geluTanh } from "../../src/model/ref/geglu.ts";
import { assert, dot, numericGrad, randF64, relErr } from "../../src/model/ref/finite_diff.ts";
import { rng } from "../helpers/gpu.ts";

Deno.test("ref geglu: torch gelu tanh values and backward vs finite differences", () => {
  // torch.nn.functional.gelu(x, approximate="tanh") at 1 and -2 (float64): 0.841191990608..., -0.045402305912...
  assert(Math.abs(geluTanh(1) - 0.841191990608) < 1e-12);
  assert(Math.abs(geluTanh(-2) - -0.045402305912) < 1e-12);
  const rand = rng(3);
  const n = 40;
  const gate = randF64(n, rand, 4);
  const up = randF64(n, rand, 2);
  const R = randF64(n, rand);
  const { dgate, dup } = gegluBwd(R, gate, up, n);
  const L = () => dot(gegluFwd(gate, up, n), R);
  assert(relErr(dgate, numericGrad(gate, L)) < 1e-8);
  assert(relErr(dup, numericGrad(up, L)) < 1e-8);
});
