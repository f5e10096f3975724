// src/util/gc.ts: the forced collection really runs (the decoder relies on it to free WebGPU bind groups
// before lavapipe's limit), without any --v8-flags on the command line.
import { collectGarbage } from "../../src/util/gc.ts";

Deno.test("collectGarbage collects an unreachable object", async () => {
  let collected = false;
  const registry = new FinalizationRegistry(() => collected = true);
  (() => registry.register({ big: new Array(1000).fill(0) }, "x"))();
  for (let i = 0; i < 20 && !collected; i++) {
    collectGarbage();
    await new Promise((r) => setTimeout(r, 10)); // finalizers run as tasks after the collection
  }
  if (!collected) throw new Error("the object survived 20 forced collections");
});
