/** src/train/training_data.ts: the inputs' fingerprints, the split into train/eval examples, the batches. */
import assert from "node:assert/strict";
import { ConfigSchema } from "../../src/config/schema.ts";
import { epochOrder, makeBatches, splitDialogues } from "../../src/data/mod.ts";
import { tinyChatTokenizer } from "../../src/tokenizer/tiny.ts";
import { UsageError } from "../../src/util/errors.ts";
import { epochBatches, evalBatches, prepareData, readTrainingInputs } from "../../src/train/training_data.ts";
import { BUNDLED } from "../data/helpers.ts";

const tok = tinyChatTokenizer();
const config = (training: Record<string, unknown> = {}, more: Record<string, unknown> = {}) =>
  ConfigSchema.parse({ data: BUNDLED, model: { name: "tiny", max_sequence_length: 256 }, training, ...more });

async function sha256Hex(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("readTrainingInputs: the dialogues, no eval file, and the data file's SHA-256", async () => {
  const inputs = await readTrainingInputs(config());
  assert.ok(inputs.dialogues.length >= 10);
  assert.equal(inputs.evalDialogues, null);
  assert.deepEqual(inputs.fingerprints, {
    data_sha256: await sha256Hex(BUNDLED),
    eval_data_sha256: undefined,
  });
  const both = await readTrainingInputs(config({}, { eval_data: BUNDLED }));
  assert.equal(both.evalDialogues?.length, inputs.dialogues.length);
  assert.equal(both.fingerprints.eval_data_sha256, both.fingerprints.data_sha256);
});

Deno.test("prepareData: eval_split holds whole dialogues out; maxSeq covers both sides", async () => {
  const cfg = config({ eval_split: 0.2, seed: 7 });
  const inputs = await readTrainingInputs(cfg);
  const data = prepareData(cfg, inputs, tok);
  const split = splitDialogues(inputs.dialogues.length, 0.2, 7);
  const trainDialogues = new Set(data.train.map((e) => e.dialogueIndex));
  const evalDialogues = new Set(data.eval.map((e) => e.dialogueIndex));
  assert.deepEqual([...trainDialogues].sort((a, b) => a - b), [...split.train].sort((a, b) => a - b));
  assert.deepEqual([...evalDialogues].sort((a, b) => a - b), [...split.eval].sort((a, b) => a - b));
  assert.equal(data.evalContexts.length > 0, true);
  assert.equal(data.maxSeq, Math.max(...[...data.train, ...data.eval].map((e) => e.inputIds.length)));
  assert.ok(data.maxSeq <= 256);
  assert.equal(data.report.json.train?.dialogues, split.train.length);
  assert.ok(data.report.text.length > 0);
});

Deno.test("prepareData: eval_split 0 trains on everything; an eval file is evaluated whole", async () => {
  const none = config({ eval_split: 0 });
  const inputs = await readTrainingInputs(none);
  const all = prepareData(none, inputs, tok);
  assert.equal(new Set(all.train.map((e) => e.dialogueIndex)).size, inputs.dialogues.length);
  assert.equal(all.eval.length, 0);
  assert.equal(all.evalContexts.length, 0);
  assert.equal(
    evalBatches(all.eval, none.training, tok.padId).length,
    0,
    "no eval hook without eval examples",
  );
  const withFile = config({ eval_split: 0.5 }, { eval_data: BUNDLED });
  const data = prepareData(withFile, await readTrainingInputs(withFile), tok);
  assert.equal(data.train.length, all.train.length, "an eval file overrides eval_split");
  assert.equal(data.eval.length, all.train.length, "the same dialogues tokenize the same");
});

Deno.test("prepareData: no training example left is a usage error naming the data file", async () => {
  const cfg = config({ eval_split: 0 });
  const inputs = { ...await readTrainingInputs(cfg), dialogues: [] };
  assert.throws(() => prepareData(cfg, inputs, tok), (e: Error) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.message, `${BUNDLED}: no training examples after the split`);
    return true;
  });
});

Deno.test("epochBatches: each epoch's order from (seed, epoch), kept while the epoch lasts", async () => {
  const cfg = config({ eval_split: 0, seed: 3, per_device_train_batch_size: 2 });
  const data = prepareData(cfg, await readTrainingInputs(cfg), tok);
  const forEpoch = epochBatches(data.train, cfg.training, tok.padId);
  const e0 = forEpoch(0);
  assert.equal(forEpoch(0), e0, "the same epoch is not batched twice");
  const expected = makeBatches(data.train, epochOrder(data.train.length, 3, 1), 2, tok.padId, false);
  const e1 = forEpoch(1);
  assert.deepEqual(e1, expected);
  assert.notDeepEqual(
    e1.map((b) => [...b.inputIds]),
    e0.map((b) => [...b.inputIds]),
    "a new order per epoch",
  );
  assert.equal(e1.length, Math.ceil(data.train.length / 2));
});
