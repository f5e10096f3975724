import assert from "node:assert/strict";
import { edgesOf, layerOf, violations } from "../../scripts/check_layers.ts";

Deno.test("check-layers: downward imports pass, upward and sideways ones are reported", () => {
  const bad = violations([
    ["src/model/engine.ts", "src/gpu/recorder.ts"], // down
    ["src/model/engine.ts", "src/model/ops/linear.ts"], // own folder
    ["src/gpu/ops/matmul.ts", "kernels/matmul.wgsl"], // outside src/
    ["main.ts", "src/cli/commands.ts"], // main.ts is on top
    ["src/gpu/device.ts", "src/cli/errors.ts"], // up
    ["src/quant/plan.ts", "src/data/load.ts"], // sideways, same layer
  ]);
  assert.deepEqual(bad.map((v) => `${v.from} -> ${v.to}`), [
    "src/gpu/device.ts -> src/cli/errors.ts",
    "src/quant/plan.ts -> src/data/load.ts",
  ]);
  assert.match(bad[0].why, /src\/cli is above src\/gpu/);
  assert.match(bad[1].why, /same layer/);
});

Deno.test("check-layers: a folder in no layer is an error that says where to add it", () => {
  assert.throws(() => layerOf("src/newthing/x.ts"), /src\/newthing is in no layer; add it to LAYERS/);
  assert.equal(layerOf("kernels/adamw.wgsl"), null);
});

Deno.test("check-layers: edges come from deno info's code and type dependencies inside the repository", () => {
  const info = {
    modules: [{
      specifier: "file:///r/src/a/x.ts",
      dependencies: [
        { code: { specifier: "file:///r/src/b/y.ts" } },
        { type: { specifier: "file:///r/src/c/z.ts" } },
        { code: { specifier: "npm:/zod@4" } },
      ],
    }],
  };
  assert.deepEqual(edgesOf(info, "/r"), [["src/a/x.ts", "src/b/y.ts"], ["src/a/x.ts", "src/c/z.ts"]]);
});
