// `maieutic score` (src/cli/score.ts, src/eval/score_file.ts, src/eval/score_report.ts) as a subprocess: every
// format the data loader reads, odd replies scored (not rejected), malformed files exit 2 naming record and
// field, --json / --out, the labelled set's AUROC, the bundled data scoring high. No GPU.
import { join } from "node:path";
import { REPLY_FIGURES } from "../../src/eval/metrics.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const BUNDLED = new URL("../../data/dialogue/processed/1gouki.json", import.meta.url).pathname;
const LABELLED = new URL("../../data/socratic_eval/labelled.jsonl", import.meta.url).pathname;

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "score", ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}

const CTX = "給食のおかわりが早い者勝ちなのは、ずるいと思う。";
const GOOD = "「ずるい」と感じるのですね。あなたの考える公平な決め方は、どんなものでしょうか？";

interface Report {
  records: { index: number; turn: number; metrics: Record<string, number>; degenerate: string | null }[];
  summary: {
    replies: number;
    figures: Record<string, { mean: number; median: number }>;
    degenerate: Record<string, number>;
    labels?: { auroc: Record<string, Record<string, number>> };
  };
}

function check(ok: boolean, what: string, r?: { out: string; err: string }) {
  if (!ok) {
    throw new Error(
      `${what}${r ? `\nstdout: ${r.out.slice(0, 2000)}\nstderr: ${r.err.slice(0, 2000)}` : ""}`,
    );
  }
}

Deno.test("score: chat, ShareGPT and pairs, JSON and JSON Lines; odd replies are scored, not rejected", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const chat = (reply: string, extra: Record<string, unknown> = {}) => ({
      messages: [{ role: "user", content: CTX }, { role: "assistant", content: reply }],
      ...extra,
    });
    const files: Record<string, string> = {
      "chat.json": JSON.stringify([
        chat(GOOD, { reference: GOOD }),
        chat(""),
        chat("   "),
        chat("<end_of_turn>"),
        chat(GOOD, { finish: "length" }),
        chat(GOOD, { samples: [GOOD, "Why?"] }),
      ]),
      "sharegpt.jsonl": [
        { conversations: [{ from: "human", value: CTX }, { from: "gpt", value: GOOD }] },
        { conversations: [{ from: "human", value: CTX }, { from: "gpt", value: "" }] },
      ].map((x) => JSON.stringify(x)).join("\n"),
      "pairs.json": JSON.stringify([{ instruction: CTX, output: GOOD }, { input: CTX, output: "" }]),
    };
    for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(join(dir, name), text);

    const r = await cli(join(dir, "chat.json"), "--json");
    check(r.code === 0, `exit ${r.code}`, r);
    const j: Report = JSON.parse(r.out);
    check(j.records.length === 6 && j.summary.replies === 6, "six records", r);
    for (const rec of j.records) {
      for (const f of REPLY_FIGURES) {
        const v = rec.metrics[f];
        check(v >= 0 && v <= 1, `record ${rec.index} ${f} = ${v}`, r);
      }
    }
    check(j.records[0].metrics.socratic_score > 0.8, "the good reply scores high", r);
    check(
      (j.records[0] as Record<string, unknown>).reference_socratic_score !== undefined,
      "reference scored",
      r,
    );
    for (const i of [1, 2, 3]) {
      check(
        j.records[i].metrics.socratic_score === 0 && j.records[i].degenerate !== null,
        `odd reply ${i}`,
        r,
      );
    }
    check(j.records[4].degenerate === "cut_off", "finish length is cut off", r);
    check(j.records[5].metrics.response_consistency === 0.5, "samples: response_consistency", r);

    for (const name of ["sharegpt.jsonl", "pairs.json"]) {
      const s = await cli(join(dir, name), "--json");
      check(s.code === 0, `${name}: exit ${s.code}`, s);
      const js: Report = JSON.parse(s.out);
      check(js.records.length === 2, `${name}: two records`, s);
      check(
        js.records[0].metrics.socratic_score > 0.8 && js.records[1].metrics.socratic_score === 0,
        name,
        s,
      );
    }

    // The table and --out: the JSON written atomically equals the --json output.
    const out = join(dir, "report.json");
    const t = await cli(join(dir, "chat.json"), "--out", out);
    check(
      t.code === 0 && t.out.includes("socratic_score") && t.out.includes("lowest socratic_score"),
      "table",
      t,
    );
    const written: Report = JSON.parse(await Deno.readTextFile(out));
    check(JSON.stringify(written) === JSON.stringify(j), "--out holds the same report");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("score: a malformed file exits 2 naming the record and field", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, string, string[]][] = [
      [
        "role.json",
        JSON.stringify([{ messages: [{ role: "user", content: CTX }, { role: "robot", content: "x" }] }]),
        [
          "record 0",
          "messages[1].role",
        ],
      ],
      [
        "user.jsonl",
        `${
          JSON.stringify({ messages: [{ role: "user", content: CTX }, { role: "assistant", content: GOOD }] })
        }\n` +
        JSON.stringify({ messages: [{ role: "user", content: "" }, { role: "assistant", content: GOOD }] }),
        [
          "record 1",
          "messages[0].content",
        ],
      ],
      ["syntax.jsonl", `${JSON.stringify({ messages: [{ role: "user", content: CTX }] })}\n{"messages": [`, [
        "line 2",
      ]],
      [
        "reference.json",
        JSON.stringify([{
          messages: [{ role: "user", content: CTX }, { role: "assistant", content: GOOD }],
          reference: 3,
        }]),
        [
          "record 0",
          "reference",
        ],
      ],
      ["noreply.json", JSON.stringify([{ messages: [{ role: "user", content: CTX }] }]), [
        "record 0",
        "messages",
      ]],
    ];
    for (const [name, text, needles] of cases) {
      await Deno.writeTextFile(join(dir, name), text);
      const r = await cli(join(dir, name));
      check(r.code === 2, `${name}: exit ${r.code}`, r);
      for (const n of needles) check(r.err.includes(n), `${name}: "${n}" not named`, r);
    }
    const none = await cli(join(dir, "missing.json"));
    check(none.code === 2 && none.err.includes("missing.json"), "missing file", none);
    const noArg = await cli();
    check(noArg.code === 2 && noArg.err.includes("missing FILE"), "no FILE", noArg);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("score: the bundled 1号機 turns score high; the labelled set reports its AUROC", async () => {
  const r = await cli(BUNDLED, "--all-turns", "--json");
  check(r.code === 0, `exit ${r.code}`, r);
  const j: Report = JSON.parse(r.out);
  check(j.records.length === 410, `${j.records.length} replies (every model turn)`, r);
  check(
    j.summary.figures.socratic_score.mean > 0.75 && j.summary.figures.socratic_score.median > 0.9,
    "bundled high",
    r,
  );
  const last = await cli(BUNDLED, "--json");
  check(JSON.parse(last.out).records.length === 105, "one reply per record by default", last);

  const l = await cli(LABELLED, "--json");
  check(l.code === 0, `labelled: exit ${l.code}`, l);
  const jl: Report = JSON.parse(l.out);
  check(jl.records.length >= 200, "labelled records", l);
  const test = jl.summary.labels?.auroc.test;
  check(
    test !== undefined && test.lecture >= 0.9 && test.pseudo >= 0.9 && test.degenerate >= 0.9,
    "AUROC",
    l,
  );
});
