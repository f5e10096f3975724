// The run identity --resume compares: which keys count, which may change, how old records and accepted keys
// are treated.
import { resolveConfig } from "../../src/config/merge.ts";
import { UsageError } from "../../src/util/errors.ts";
import {
  changedConfigMessage,
  diffIdentity,
  parseAcceptedKeys,
  recordedIdentity,
  runIdentity,
} from "../../src/train/run_identity.ts";

const FP = { data_sha256: "aa" };
const conf = (sets: string[]) => resolveConfig({ sets, flags: { model: { name: "tiny" } } });
/** training_config.json as the trainer writes it. */
const record = (sets: string[], extra: Record<string, unknown> = {}) =>
  JSON.parse(JSON.stringify({ ...conf(sets), resolved_data: "/x", ...FP, plan: {}, versions: {}, ...extra }));

function keys(sets: string[], now: string[], fp = FP): string[] {
  return diffIdentity(recordedIdentity(record(sets), "tc.json"), runIdentity(conf(now), fp)).map((c) =>
    c.key
  );
}

Deno.test("identity: the same config matches; a changed learning rate, batch, LoRA r or model is named", () => {
  if (keys([], []).length) throw new Error(`spurious ${keys([], [])}`);
  const k = keys(["training.learning_rate=0.01"], [
    "training.learning_rate=0.02",
    "training.per_device_train_batch_size=8",
    "lora.r=8",
  ]);
  if (k.join() !== "lora.r,training.learning_rate,training.per_device_train_batch_size") {
    throw new Error(k.join());
  }
  const m = diffIdentity(
    recordedIdentity(record([]), "tc.json"),
    runIdentity(resolveConfig({ sets: [], flags: { model: { name: "gemma-2-2b-random" } } }), FP),
  ).map((c) => c.key);
  if (!m.includes("model.name")) throw new Error(m.join());
});

Deno.test("identity: where and how often to save, the watchdog and the data path may change; data contents may not", () => {
  const free = keys([], [
    'output_dir="elsewhere"',
    'data="moved.json"',
    "training.save_steps=7",
    "training.save_total_limit=9",
    "training.save_every_minutes=1",
    "training.loss_watchdog_patience=9",
  ]);
  if (free.length) throw new Error(`free keys compared: ${free}`);
  const data = keys([], [], { data_sha256: "bb" });
  if (data.join() !== "data_sha256") throw new Error(data.join());
  const evalAdded = keys([], [], { data_sha256: "aa", eval_data_sha256: "cc" } as typeof FP);
  if (evalAdded.join() !== "eval_data_sha256") throw new Error(evalAdded.join());
});

Deno.test("identity: keys and fingerprints a record predates are not differences", () => {
  const old = record(["training.learning_rate=0.01"]);
  delete old.training.eval_split; // a key added to the schema after this record was written
  delete old.data_sha256;
  const changes = diffIdentity(
    recordedIdentity(old, "tc.json"),
    runIdentity(conf(["training.learning_rate=0.01", "training.eval_split=0.2"]), { data_sha256: "zz" }),
  );
  if (changes.length) throw new Error(JSON.stringify(changes));
});

Deno.test("identity: an unreadable record is a usage error naming the file", () => {
  const bad = record([]);
  bad.training.learning_rate = "fast";
  try {
    recordedIdentity(bad, "/run/model/training_config.json");
    throw new Error("accepted");
  } catch (e) {
    if (!(e instanceof UsageError) || !/training_config\.json: training\.learning_rate/.test(e.message)) {
      throw e;
    }
  }
});

Deno.test("--accept-changes: comma-separated and repeated keys; unknown keys name the closest; free keys are no-ops", () => {
  const a = parseAcceptedKeys(["training.learning_rate,lora.r", "data_sha256", "training.save_steps"]);
  if ([...a].sort().join() !== "data_sha256,lora.r,training.learning_rate") throw new Error([...a].join());
  try {
    parseAcceptedKeys(["training.learning_rat"]);
    throw new Error("accepted a typo");
  } catch (e) {
    if (!(e instanceof UsageError) || !e.message.includes("did you mean training.learning_rate")) throw e;
  }
});

Deno.test("the changed-config message names the keys, both values and the two ways on", () => {
  const msg = changedConfigMessage("models/x", "models/x/model/checkpoint-4", [
    { key: "training.learning_rate", recorded: "0.01", now: "0.02" },
  ]);
  for (
    const want of [
      "training.learning_rate: 0.01 in the run, 0.02 now",
      "--overwrite",
      "--accept-changes training.learning_rate",
    ]
  ) {
    if (!msg.includes(want)) throw new Error(`missing "${want}" in\n${msg}`);
  }
});
