import { assert } from "../../src/model/ref/finite_diff.ts";
import { embeddingFwd } from "../../src/model/ref/embedding.ts";

Deno.test("ref embedding: scaled row lookup", () => {
  const table = [1, 2, 3, 4, 5, 6]; // 3 rows of dim 2
  assert(Array.from(embeddingFwd([2, 0, 2], table, 2, 8)).join() === [40, 48, 8, 16, 40, 48].join());
});
