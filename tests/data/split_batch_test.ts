import assert from "node:assert/strict";
import { UsageError } from "../../src/util/errors.ts";
import { makeBatches, MEGA_BATCH_MULT } from "../../src/data/batch.ts";
import { epochOrder, splitDialogues } from "../../src/data/split.ts";
import type { Example } from "../../src/data/tokenize.ts";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const sorted = (a: number[]) => [...a].sort((x, y) => x - y);

Deno.test("splitDialogues: seeded, disjoint, complete, ceil(n * split) and at least 1 eval dialogue", () => {
  for (
    const [n, split, nEval] of [[80, 0.1, 8], [30, 0.1, 3], [5, 0.1, 1], [2, 0.5, 1], [2, 0.1, 1], [
      10,
      0.25,
      3,
    ]]
  ) {
    const s = splitDialogues(n, split, 42);
    assert.equal(s.eval.length, nEval, `n=${n} split=${split}`);
    assert.deepEqual(sorted([...s.train, ...s.eval]), range(n));
    assert.deepEqual(s.train, sorted(s.train));
    assert.deepEqual(splitDialogues(n, split, 42), s, "same seed, same split");
  }
  assert.deepEqual(splitDialogues(7, 0, 1), { train: range(7), eval: [] });
  assert.notDeepEqual(splitDialogues(80, 0.1, 1).eval, splitDialogues(80, 0.1, 2).eval);
  assert.throws(() => splitDialogues(1, 0.1, 42), UsageError);
});

Deno.test("epochOrder is a permutation and a pure function of (seed, epoch)", () => {
  const a = epochOrder(100, 42, 0);
  assert.deepEqual(sorted(a), range(100));
  assert.deepEqual(epochOrder(100, 42, 0), a);
  assert.notDeepEqual(epochOrder(100, 42, 1), a);
  assert.notDeepEqual(epochOrder(100, 43, 0), a);
  assert.deepEqual(epochOrder(100, 42, 7), epochOrder(100, 42, 7));
  assert.deepEqual(epochOrder(0, 1, 0), []);
  assert.deepEqual(epochOrder(1, 1, 0), [0]);
  // Not merely a rotation of the identity: the shuffle moves most items.
  assert.ok(a.filter((x, i) => x === i).length < 10);
});

function ex(len: number, targetsFrom: number, id: number): Example {
  const inputIds = range(len).map((i) => 1000 * id + i + 10);
  const labels = inputIds.map((x, i) => (i >= targetsFrom ? x : -100));
  return {
    inputIds,
    labels,
    dialogueIndex: id,
    window: 0,
    windows: 1,
    turnStart: 0,
    turnEnd: 2,
    truncated: false,
  };
}

Deno.test("makeBatches: right padding, attention mask, -100 label padding, shifted target count", () => {
  const examples = [ex(5, 2, 0), ex(3, 1, 1), ex(7, 4, 2), ex(2, 1, 3), ex(4, 4, 4)];
  const batches = makeBatches(examples, [2, 0, 1, 4, 3], 2, 0);
  assert.equal(batches.length, 3);
  assert.deepEqual(batches.map((b) => [b.rows, b.seqLen]), [[2, 7], [2, 4], [1, 2]]);
  assert.deepEqual(batches.map((b) => b.exampleIndices), [[2, 0], [1, 4], [3]]);
  const b = batches[0];
  assert.deepEqual([...b.inputIds.slice(7, 14)], [...examples[0].inputIds, 0, 0]);
  assert.deepEqual([...b.labels.slice(7, 14)], [...examples[0].labels, -100, -100]);
  assert.deepEqual([...b.attentionMask.slice(7, 14)], [1, 1, 1, 1, 1, 0, 0]);
  assert.deepEqual([...b.attentionMask.slice(0, 7)], [1, 1, 1, 1, 1, 1, 1]);
  // targetTokens: positions t with labels[t+1] != -100.
  const shifted = (l: Int32Array, rows: number, seq: number) => {
    let n = 0;
    for (let r = 0; r < rows; r++) for (let t = 0; t + 1 < seq; t++) if (l[r * seq + t + 1] !== -100) n++;
    return n;
  };
  for (const x of batches) assert.equal(x.targetTokens, shifted(x.labels, x.rows, x.seqLen));
  assert.deepEqual(batches.map((x) => x.targetTokens), [3 + 3, 2 + 0, 1]);
  assert.ok(
    b.inputIds instanceof Int32Array && b.labels instanceof Int32Array &&
      b.attentionMask instanceof Uint8Array,
  );
  // Padding id is what the caller passes.
  assert.equal(makeBatches(examples, [0, 2], 2, 9)[0].inputIds[6], 9);
});

Deno.test("group_by_length: mega-batches sorted longest first, the longest example leads", () => {
  const n = 2 * 3 * MEGA_BATCH_MULT + 17;
  const lengths = range(n).map((i) => 1 + ((i * 37) % 101));
  const examples = lengths.map((l, i) => ex(l, 0, i));
  const order = epochOrder(n, 5, 0);
  const batches = makeBatches(examples, order, 3, 0, true);
  const flat = batches.flatMap((b) => b.exampleIndices);
  assert.deepEqual(sorted(flat), range(n));
  const maxLen = Math.max(...lengths);
  assert.equal(batches[0].seqLen, maxLen);
  assert.equal(lengths[flat[0]], maxLen);
  // Inside each mega-batch (apart from the swapped head) lengths do not increase.
  const mega = 3 * MEGA_BATCH_MULT;
  for (let g = 0; g < n; g += mega) {
    const ls = flat.slice(g, g + mega).map((i) => lengths[i]).slice(1);
    for (let k = 1; k < ls.length; k++) assert.ok(ls[k] <= ls[k - 1]);
  }
  // Same membership as the plain batching of the same order within each mega-batch.
  const plain = makeBatches(examples, order, 3, 0, false).flatMap((b) => b.exampleIndices);
  assert.deepEqual(sorted(plain), sorted(flat));
  // Padding is less than without grouping.
  const pad = (bs: ReturnType<typeof makeBatches>) => bs.reduce((s, b) => s + b.rows * b.seqLen, 0);
  assert.ok(pad(batches) < pad(makeBatches(examples, order, 3, 0, false)));
});
