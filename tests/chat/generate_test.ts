// `maieutic generate` (src/cli/generate.ts, src/chat/generate_file.ts): the prompt of a record is its
// conversation up to the last user turn (the turn after it is the reference); the output is one chat record per
// input record that the data loader and `maieutic score` read back, K samples per record, reproducible with the
// same seed, batched across records without changing a reply.
import { recordPrompt } from "../../src/chat/generate_file.ts";
import { loadDialogues, parseDialogues } from "../../src/data/load.ts";
import { tinyChatTokenizer } from "../../src/tokenizer/tiny.ts";
import { cli, join, makeTinyAdapter, SAMPLE_DATA, withTempDir } from "./helpers.ts";

Deno.test("generate: the prompt is the conversation up to its last user turn; long ones lose the oldest exchanges", () => {
  const tok = tinyChatTokenizer();
  const [full, open, pair] = parseDialogues(
    [
      '{"messages":[{"role":"user","content":"一"},{"role":"assistant","content":"二"},{"role":"user","content":"三"},{"role":"assistant","content":"四"}]}',
      '{"messages":[{"role":"system","content":"丁寧に"},{"role":"user","content":"一"},{"role":"assistant","content":"二"},{"role":"user","content":"三"}]}',
      '{"instruction":"答えて","input":"なぜ？","output":"どう思いますか？"}',
    ].join("\n"),
    "t.jsonl",
  );
  const a = recordPrompt(tok, full, 1000)!;
  if (a.context.map((m) => m.content).join() !== "一,二,三" || a.reference !== "四" || a.dropped !== 0) {
    throw new Error(JSON.stringify(a));
  }
  const rendered = tok.renderChat(a.context, true);
  if (tok.decode(a.ids) !== rendered || !rendered.endsWith("<start_of_turn>model\n")) {
    throw new Error(rendered);
  }
  const b = recordPrompt(tok, open, 1000)!;
  if (b.reference !== undefined || b.context.length !== 3 || !b.context[0].content.startsWith("丁寧に")) {
    throw new Error(JSON.stringify(b));
  }
  const c = recordPrompt(tok, pair, 1000)!;
  if (c.reference !== "どう思いますか？" || c.context.length !== 1) throw new Error(JSON.stringify(c));
  // A budget that fits only the last exchange drops the first one; one that fits nothing gives null.
  const last = tok.encode(tok.renderChat([{ role: "user", content: "三" }], true)).length;
  const d = recordPrompt(tok, full, last + 1)!;
  if (d.dropped !== 1 || d.context.length !== 1) throw new Error(JSON.stringify(d));
  if (recordPrompt(tok, full, 3) !== null) throw new Error("a prompt of 3 tokens cannot hold a user turn");
});

Deno.test("generate: one chat record per input record, K samples, read back by the data loader, reproducible", async () => {
  await withTempDir(async (dir) => {
    const adapter = await makeTinyAdapter(join(dir, "adapter"));
    const out = join(dir, "replies.jsonl");
    const args = [
      "generate",
      "--model",
      "tiny",
      "--adapter",
      adapter,
      "--data",
      SAMPLE_DATA,
      "--out",
      out,
      "--samples",
      "3",
      "--max-new-tokens",
      "12",
    ];
    const r = await cli(args);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.err}`);
    if (!r.err.includes("generating 5/5 (100%)") || !r.out.includes("wrote 5 record(s)")) {
      throw new Error(`${r.out}\n${r.err}`);
    }
    const input = await loadDialogues(SAMPLE_DATA);
    const lines = (await Deno.readTextFile(out)).trim().split("\n").map((l) => JSON.parse(l));
    if (lines.length !== input.length) throw new Error(`${lines.length} records for ${input.length}`);
    lines.forEach((rec, i) => {
      const d = input[i];
      const lastUser = d.turns.map((t) => t.role).lastIndexOf("user");
      const ctx = rec.messages.slice(0, -1).map((m: { content: string }) => m.content);
      if (
        rec.index !== i || ctx.join("\n") !== d.turns.slice(0, lastUser + 1).map((t) => t.content).join("\n")
      ) {
        throw new Error(`record ${i}: context ${JSON.stringify(rec.messages)}`);
      }
      if (rec.messages.at(-1).role !== "assistant" || rec.reference !== d.turns[lastUser + 1]?.content) {
        throw new Error(`record ${i}: ${JSON.stringify(rec)}`);
      }
      if (rec.samples.length !== 2 || !["stop", "length"].includes(rec.finish)) {
        throw new Error(JSON.stringify(rec));
      }
      if (!(rec.generated_tokens <= 12 && rec.prompt_tokens > 0)) throw new Error(JSON.stringify(rec));
    });
    // The file is a dialogue file: the loader reads it (as --data for training, or for `maieutic score`).
    const back = await loadDialogues(out);
    if (back.length !== input.length || back.some((d) => d.turns.at(-1)!.role !== "model")) {
      throw new Error("the loader does not read the output back");
    }
    // `maieutic score` reads it: one scored record per reply, the reference and samples taken along.
    const scored = await cli(["score", out, "--json"]);
    if (scored.code !== 0) throw new Error(`score: exit ${scored.code}: ${scored.err}`);
    const sj = JSON.parse(scored.out);
    if (sj.records.length !== input.length) throw new Error(`score: ${sj.records.length} records`);
    // Sampled rows differ from each other; the same seed reproduces the file, another seed does not.
    if (lines.every((l) => l.samples.every((s: string) => s === l.messages.at(-1).content))) {
      throw new Error("the K samples are identical");
    }
    const first = await Deno.readTextFile(out);
    const again = await cli(args);
    if (again.code !== 0 || await Deno.readTextFile(out) !== first) throw new Error("not reproducible");
    // One record at a time (--batch 3: one record of 3 samples per batch) gives the same file as 5 records x 3.
    const unbatched = await cli([...args, "--batch", "3"]);
    if (unbatched.code !== 0 || await Deno.readTextFile(out) !== first) {
      throw new Error("batching changed replies");
    }
    const batched = await cli([...args, "--batch", "15"]);
    if (batched.code !== 0 || await Deno.readTextFile(out) !== first) {
      throw new Error("batching changed replies");
    }
    const other = await cli([...args, "--seed", "9"]);
    if (other.code !== 0 || await Deno.readTextFile(out) === first) throw new Error("the seed is not used");
    // Usage errors exit 2 before any work.
    const greedyK = await cli([...args, "--temperature", "0"]);
    if (greedyK.code !== 2 || !greedyK.err.includes("identical")) throw new Error(greedyK.err);
    const noOut = await cli(["generate", "--model", "tiny", "--data", SAMPLE_DATA]);
    if (noOut.code !== 2 || !noOut.err.includes("--out")) throw new Error(noOut.err);
  });
});
