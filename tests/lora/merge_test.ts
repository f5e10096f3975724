/** Merging LoRA into a base weight (src/lora/merge.ts): the merged linear equals base + LoRA branch (no dropout). */
import { Gemma2ConfigSchema } from "../../src/config/gemma2.ts";
import { findModule, initLoraParams, tensorView } from "../../src/lora/params.ts";
import { mergeLoraWeight } from "../../src/lora/merge.ts";
import { loraLinearFwd } from "../../src/model/ref/linear.ts";
import { matmulXWt } from "../../src/model/ref/gemma2.ts";
import { assertClose, randomArray, rng } from "../helpers/gpu.ts";

const TINY = Gemma2ConfigSchema.parse(
  JSON.parse(Deno.readTextFileSync(new URL("../fixtures/golden/tiny_gemma2/config.json", import.meta.url))),
);

Deno.test("merged weight reproduces base + scaling·B(A(x)) (PEFT Linear.merge)", () => {
  const rand = rng(21);
  const p = initLoraParams(TINY, { r: 16, lora_alpha: 32, target_modules: ["o_proj", "down_proj"] }, 5);
  for (const m of p.layout.modules) tensorView(p, m.B).set(randomArray(m.B.size, rand, 0.1));
  for (const [layer, module] of [[1, "o_proj"], [3, "down_proj"]] as const) {
    const m = findModule(p.layout, layer, module)!;
    const W = randomArray(m.outF * m.inF, rand, 0.05);
    const x = randomArray(5 * m.inF, rand);
    const merged = mergeLoraWeight(W, p, m);
    const want =
      loraLinearFwd(x, W, tensorView(p, m.A), tensorView(p, m.B), 5, m.inF, m.outF, 16, p.scaling).y;
    assertClose(matmulXWt(x, merged, 5, m.inF, m.outF), want, { rel: 1e-6 }, `${module} merged`);
  }
});
