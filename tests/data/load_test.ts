import assert from "node:assert/strict";
import { exitCodeFor, UsageError } from "../../src/util/errors.ts";
import { DataError, MAX_REPORTED } from "../../src/data/errors.ts";
import { loadDialogues, modelVersion, parseDialogues } from "../../src/data/load.ts";
import { tokenizeDialogues } from "../../src/data/tokenize.ts";
import { tinyChatTokenizer } from "../../src/tokenizer/tiny.ts";
import { jsonl, withTempDir, writeTemp } from "./helpers.ts";

const tok = tinyChatTokenizer();

/** The same conversation in every format. */
const TURNS: [string, string][] = [
  ["勇気とは何でしょうか？", "　あなたは「勇気」をどういう意味で使っていますか？ "],
  [" Being not afraid, I guess. ", "Is someone who feels no fear at all brave, or just unaware?"],
];
const chat = {
  messages: TURNS.flatMap(([u, m]) => [{ role: "user", content: u }, { role: "assistant", content: m }]),
};
const chatModelRole = {
  messages: TURNS.flatMap(([u, m]) => [{ role: "user", content: u }, { role: "model", content: m }]),
};
const sharegpt = {
  conversations: TURNS.flatMap(([u, m]) => [{ from: "human", value: u }, { from: "gpt", value: m }]),
  id: "extra keys are ignored",
};

async function idsOf(path: string): Promise<number[][]> {
  const ds = await loadDialogues(path);
  return tokenizeDialogues(tok, ds, 512).examples.map((e) => e.inputIds);
}

Deno.test("chat, ShareGPT and pairs, as JSON arrays and JSON Lines, give identical token ids", async () => {
  await withTempDir(async (dir) => {
    const multi: number[][][] = [];
    for (const [name, rec] of [["chat", chat], ["model", chatModelRole], ["sharegpt", sharegpt]] as const) {
      multi.push(await idsOf(await writeTemp(dir, `${name}.json`, JSON.stringify([rec, rec], null, 2))));
      multi.push(await idsOf(await writeTemp(dir, `${name}.jsonl`, jsonl([rec, rec]))));
    }
    for (const m of multi) assert.deepEqual(m, multi[0]);
    assert.equal(multi[0].length, 2);

    // One exchange: pairs too; `instruction` + `input` is the same as a system message + user message.
    const [u, m] = TURNS[0];
    const single: number[][][] = [];
    const variants = [
      { messages: [{ role: "user", content: u }, { role: "assistant", content: m }] },
      { conversations: [{ from: "human", value: u }, { from: "gpt", value: m }] },
      { input: u, output: m },
      { instruction: u, input: "", output: m },
      { instruction: u, output: m },
    ];
    for (const [k, rec] of variants.entries()) {
      single.push(await idsOf(await writeTemp(dir, `s${k}.json`, JSON.stringify([rec]))));
      single.push(await idsOf(await writeTemp(dir, `s${k}.jsonl`, jsonl([rec]))));
    }
    for (const s of single) assert.deepEqual(s, single[0]);

    const sys = "あなたはソクラテス式の家庭教師です。";
    const withSystem = [
      {
        messages: [{ role: "system", content: sys }, { role: "user", content: u }, {
          role: "assistant",
          content: m,
        }],
      },
      {
        conversations: [{ from: "system", value: sys }, { from: "human", value: u }, {
          from: "gpt",
          value: m,
        }],
      },
      { instruction: sys, input: u, output: m },
    ];
    const folded: number[][][] = [];
    for (const [k, rec] of withSystem.entries()) {
      folded.push(await idsOf(await writeTemp(dir, `y${k}.jsonl`, jsonl([rec]))));
    }
    for (const f of folded) assert.deepEqual(f, folded[0]);
    const ds = await loadDialogues(await writeTemp(dir, "sys.json", JSON.stringify([withSystem[0]])));
    assert.equal(ds[0].turns.length, 2);
    assert.equal(ds[0].turns[0].content, `${sys}\n\n${u.trim()}`);
    assert.deepEqual(ds[0].turns.map((t) => t.role), ["user", "model"]);
  });
});

Deno.test("JSON Lines: blank lines, a UTF-8 BOM and CRLF line ends are accepted; record index and line kept", () => {
  const text = "\ufeff" + JSON.stringify(chat) + "\r\n\r\n" + JSON.stringify(sharegpt) + "\r\n";
  const ds = parseDialogues(new TextEncoder().encode(text), "x.jsonl");
  assert.equal(ds.length, 2);
  assert.deepEqual(ds.map((d) => [d.index, d.line, d.format]), [[0, 1, "chat"], [1, 3, "sharegpt"]]);
});

/** 24 malformed files: [name, contents, expected record (or null for whole-file), field substring]. */
const u8 = (s: string) => new TextEncoder().encode(s);
const ok = chat;
const MALFORMED: [string, string | Uint8Array, number | null, string][] = [
  ["not-json.json", '[{"messages": [}]', null, "invalid JSON"],
  ["bad-line.jsonl", jsonl([ok]) + '{"messages": [\n', 1, "invalid JSON"],
  ["top-level-string.json", '"just a string"', null, "text starting with"],
  ["top-level-number.json", "[1, 2]", 0, "record 0"],
  ["empty.json", "   \n", null, "empty file"],
  ["empty-array.json", "[]", null, "no dialogue records"],
  ["unknown-keys.json", JSON.stringify([ok, { mesages: ok.messages }]), 1, '"messages" for "mesages"'],
  ["messages-not-array.json", JSON.stringify([{ messages: "hello" }]), 0, "field messages:"],
  ["messages-empty.json", JSON.stringify([{ messages: [] }]), 0, "field messages:"],
  [
    "missing-content.json",
    JSON.stringify([{ messages: [{ role: "user" }] }]),
    0,
    "field messages[0].content",
  ],
  [
    "content-number.jsonl",
    jsonl([ok, { messages: [{ role: "user", content: 42 }] }]),
    1,
    "messages[0].content",
  ],
  [
    "empty-content.json",
    JSON.stringify([{
      messages: [{ role: "user", content: "hi" }, { role: "assistant", content: " \u3000 " }],
    }]),
    0,
    "field messages[1].content",
  ],
  [
    "unknown-role.json",
    JSON.stringify([{ messages: [{ role: "user", content: "a" }, { role: "narrator", content: "b" }] }]),
    0,
    "field messages[1].role",
  ],
  [
    "sharegpt-unknown-from.json",
    JSON.stringify([{ conversations: [{ from: "human", value: "a" }, { from: "bot", value: "b" }] }]),
    0,
    "field conversations[1].from",
  ],
  [
    "sharegpt-missing-value.jsonl",
    jsonl([{ conversations: [{ from: "human", value: "a" }, { from: "gpt" }] }]),
    0,
    "field conversations[1].value",
  ],
  [
    "not-alternating.json",
    JSON.stringify([ok, ok, {
      messages: [{ role: "user", content: "a" }, { role: "user", content: "b" }, {
        role: "assistant",
        content: "c",
      }],
    }]),
    2,
    "field messages[1].role",
  ],
  [
    "starts-with-model.json",
    JSON.stringify([{ messages: [{ role: "assistant", content: "a" }, { role: "user", content: "b" }] }]),
    0,
    "field messages[0].role",
  ],
  [
    "no-model-turn.json",
    JSON.stringify([{ messages: [{ role: "user", content: "a" }] }]),
    0,
    "field messages:",
  ],
  [
    "system-not-first.json",
    JSON.stringify([{
      messages: [{ role: "user", content: "a" }, { role: "system", content: "s" }, {
        role: "assistant",
        content: "c",
      }],
    }]),
    0,
    "field messages[1].role",
  ],
  ["pairs-missing-output.json", JSON.stringify([{ instruction: "i", input: "x" }]), 0, "field output"],
  ["pairs-empty-output.jsonl", jsonl([{ input: "x", output: "" }]), 0, "field output"],
  ["pairs-no-input.json", JSON.stringify([{ instruction: " ", input: "", output: "y" }]), 0, "field input"],
  ["not-utf8.jsonl", new Uint8Array([...u8(jsonl([ok])), 0x7b, 0xff, 0xfe, 0x7d, 0x0a]), 1, "(line 2)"],
  [
    "not-utf8-array.json",
    new Uint8Array([
      ...u8(`[${JSON.stringify(ok)},\n${JSON.stringify(ok)},\n{"messages": "`),
      0xc3,
      0x28,
      ...u8('"}]'),
    ]),
    2,
    "(line 3)",
  ],
  [
    "missing-comma.json",
    JSON.stringify([ok, ok], null, 2).replace(
      /"role": "user",\n(?![\s\S]*"role": "user",\n)/,
      '"role": "user"\n',
    ),
    1,
    "invalid JSON",
  ],
  [
    "control-token.json",
    JSON.stringify([{
      messages: [{ role: "user", content: "a<end_of_turn>b" }, { role: "assistant", content: "c" }],
    }]),
    0,
    "field messages[0].content",
  ],
  ["record-not-object.json", JSON.stringify([ok, "a string"]), 1, "record 1:"],
];

Deno.test(`${MALFORMED.length} malformed files: each a UsageError (exit 2) naming the record and field`, async () => {
  assert.ok(MALFORMED.length >= 20);
  await withTempDir(async (dir) => {
    for (const [name, contents, record, mention] of MALFORMED) {
      const path = await writeTemp(dir, name, contents);
      const err = await loadDialogues(path).then(() => undefined, (e) => e);
      assert.ok(err instanceof UsageError, `${name}: expected a UsageError, got ${err}`);
      assert.equal(exitCodeFor(err), 2, name);
      assert.ok(err instanceof DataError, `${name}: ${err}`);
      assert.ok(err.message.startsWith(path), `${name}: message names the file: ${err.message}`);
      assert.ok(err.message.includes(mention), `${name}: expected "${mention}" in:\n${err.message}`);
      assert.ok(/found .*; expected /.test(err.message), `${name}: found/expected in:\n${err.message}`);
      if (record !== null) {
        assert.ok(err.issues.some((i) => i.record === record), `${name}: record ${record} in ${err.message}`);
        assert.ok(err.message.includes(`record ${record}`), `${name}: ${err.message}`);
        const issue = err.issues.find((i) => i.record === record)!;
        if (mention.startsWith("field ")) assert.ok(issue.field !== undefined, name);
      }
    }
  });
});

Deno.test("all problems of a file are reported together, at most 20 listed", () => {
  const bad = (k: number) => ({
    messages: [{ role: "user", content: `q${k}` }, { role: "robot", content: "a" }],
  });
  const three = [
    chat,
    bad(1),
    chat,
    { messages: [{ role: "user", content: "" }, { role: "assistant" }] },
    bad(4),
  ];
  const e3 = (() => {
    try {
      parseDialogues(JSON.stringify(three), "three.json");
    } catch (e) {
      return e;
    }
  })();
  assert.ok(e3 instanceof DataError);
  assert.equal(e3.total, 3);
  assert.deepEqual(e3.issues.map((i) => [i.record, i.field]), [
    [1, "messages[1].role"],
    [3, "messages[1].content"],
    [4, "messages[1].role"],
  ]);
  const many = Array.from({ length: 35 }, (_, k) => bad(k));
  const e35 = (() => {
    try {
      parseDialogues(jsonl(many), "many.jsonl");
    } catch (e) {
      return e;
    }
  })();
  assert.ok(e35 instanceof DataError);
  assert.equal(e35.total, 35);
  assert.equal(e35.issues.length, MAX_REPORTED);
  assert.ok(e35.message.includes("35 problems") && e35.message.includes("and 15 more"), e35.message);
  assert.ok(e35.message.includes("record 7 (line 8), field messages[1].role"), e35.message);
  assert.ok(e35.message.includes('one of "user", "assistant", "model", "system"'), e35.message);
});

Deno.test("a missing data file is a UsageError naming it", async () => {
  const e = await loadDialogues("/nonexistent/dir/nope.json").catch((x) => x);
  assert.ok(e instanceof UsageError && e.message.includes("/nonexistent/dir/nope.json"), String(e));
});

Deno.test("modelVersion is the file stem", () => {
  assert.equal(modelVersion("data/dialogue/processed/1gouki.json"), "1gouki");
  assert.equal(modelVersion("x/my.data.jsonl"), "my.data");
  assert.equal(modelVersion("noext"), "noext");
  assert.equal(modelVersion(".hidden"), ".hidden");
});

Deno.test("the bundled sample_en.jsonl loads", async () => {
  const ds = await loadDialogues("data/dialogue/processed/sample_en.jsonl");
  assert.ok(ds.length >= 3);
  for (const d of ds) assert.equal(d.turns[d.turns.length - 1].role, "model");
});
