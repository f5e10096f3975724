/** planConversion (src/hub/convert_stream.ts): which tensors the loader converts, how, and in what order. */
import assert from "node:assert/strict";
import { planConversion } from "../../src/hub/convert_stream.ts";
import { QuantizationSchema } from "../../src/config/schema.ts";
import type { TensorInfo } from "../../src/safetensors/header.ts";
import { UsageError } from "../../src/util/errors.ts";

const NF4 = QuantizationSchema.parse({});
const DENSE = QuantizationSchema.parse({ load_in_4bit: false });
const Q = "model.layers.0.self_attn.q_proj.weight";
const NORM = "model.norm.weight";
const EMBED = "model.embed_tokens.weight";

/** A weight file's tensor table: names in the given order, data laid out at the given offsets. */
function table(entries: [string, TensorInfo["dtype"], number[], number][]) {
  const infos = new Map(entries.map(([n, dtype, shape, offset]): [string, TensorInfo] => {
    const bytes = shape.reduce((a, d) => a * d, 1) * (dtype === "F32" ? 4 : 2);
    return [n, { dtype, shape, data_offsets: [offset, offset + bytes] }];
  }));
  return {
    names: () => [...infos.keys()],
    info: (n: string) => infos.get(n)!,
  };
}

const expected = new Map<string, number[]>([[EMBED, [8, 4]], [Q, [4, 4]], [NORM, [4]]]);

Deno.test("planConversion: stream order by shard then offset, NF4 for the projections only, extras skipped", () => {
  const tables = [
    table([[NORM, "BF16", [4], 500], [Q, "BF16", [4, 4], 100]]),
    table([[EMBED, "F32", [8, 4], 0], ["lm_head.weight", "F32", [8, 4], 128]]),
  ];
  const { plan, skipped } = planConversion("m", ["a.safetensors", "b.safetensors"], tables, expected, NF4);
  assert.deepEqual(plan.map((p) => [p.name, p.shard]), [[Q, 0], [NORM, 0], [EMBED, 1]]);
  assert.deepEqual(plan.map((p) => p.stored.kind), ["nf4", "dense", "dense"]);
  assert.deepEqual(plan.map((p) => p.srcBytes), [32, 8, 128]);
  assert.deepEqual(plan.find((p) => p.name === NORM)?.stored, { kind: "dense", shape: [4], dtype: "BF16" });
  assert.deepEqual(skipped, ["lm_head.weight"]);
  const dense = planConversion("m", ["a.safetensors", "b.safetensors"], tables, expected, DENSE);
  assert.ok(dense.plan.every((p) => p.stored.kind === "dense"), "load_in_4bit false keeps everything dense");
});

Deno.test("planConversion: a missing tensor, a wrong shape and an integer dtype are UsageErrors naming it", () => {
  const full = (q: [TensorInfo["dtype"], number[]]) =>
    table([[EMBED, "F32", [8, 4], 0], [Q, q[0], q[1], 128], [NORM, "F32", [4], 256]]);
  const cases: [ReturnType<typeof table>, RegExp][] = [
    [
      table([[EMBED, "F32", [8, 4], 0]]),
      /^m: tensor "model\.layers\.0\.self_attn\.q_proj\.weight" is missing .*\(w\.st\)$/,
    ],
    [
      full(["F32", [4, 5]]),
      /^m\/w\.st: tensor ".*q_proj\.weight" has shape \[4,5\] but config\.json implies \[4,4\]$/,
    ],
    [full(["I8", [4, 4]]), /^m\/w\.st: tensor ".*q_proj\.weight" is I8; expected F32, F16 or BF16$/],
  ];
  for (const [t, re] of cases) {
    assert.throws(() => planConversion("m", ["w.st"], [t], expected, NF4), (e: Error) => {
      assert.ok(e instanceof UsageError, e.message);
      assert.match(e.message, re);
      return true;
    });
  }
});
