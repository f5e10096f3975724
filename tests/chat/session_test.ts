// The chat session (src/chat/session.ts) on the tiny model + a test adapter: the KV cache kept across turns
// gives the logits of a fresh prefill of the same tokens; the oldest exchanges are dropped when the context is
// full; an abort stops a reply between tokens; the transcript is a chat record the data loader reads.
import { ChatInputError, ChatSession, closingText } from "../../src/chat/session.ts";
import { loadableRecord, saveTranscript } from "../../src/chat/transcript.ts";
import { loadDialogues } from "../../src/data/load.ts";
import { Decoder } from "../../src/model/decode.ts";
import { assertClose } from "../helpers/gpu.ts";
import { join, makeTinyAdapter, openTiny, withTempDir } from "./helpers.ts";

Deno.test("chat: the cache kept across turns equals a fresh prefill; template rendering; abort; transcript", async () => {
  await withTempDir(async (dir) => {
    const m = await openTiny(await makeTinyAdapter(join(dir, "adapter")));
    const engine = m.session.engine;
    const tok = m.tok;
    const decoder = new Decoder(engine, { rows: 1, maxLen: 160, maxPrompt: 160 });
    const fresh = new Decoder(engine, { rows: 1, maxLen: 160, maxPrompt: 160 });
    try {
      if (closingText(tok) !== "<end_of_turn>\n") throw new Error(JSON.stringify(closingText(tok)));
      const chat = new ChatSession(decoder, tok, {
        system: "丁寧に答えてください。",
        sampling: { doSample: true, temperature: 0.9, topK: 40, topP: 0.95 },
        maxNewTokens: 10,
        seed: 3,
      });
      const pieces: string[] = [];
      const r1 = await chat.reply("勇気とは何ですか", { onText: (p) => pieces.push(p) });
      if (r1.reusedCache || r1.dropped !== 0) throw new Error(JSON.stringify(r1));
      if (pieces.join("") !== r1.text || r1.ids.length !== r1.tokens) {
        throw new Error(`streamed ${JSON.stringify(pieces)} != ${r1.text}`);
      }
      // Turn 1's prompt is the template's rendering, system text folded into the user turn as the loader does.
      const p1 = tok.encode(
        tok.renderChat([{ role: "user", content: "丁寧に答えてください。\n\n勇気とは何ですか" }], true),
      );
      if (chat.cacheTokens.slice(0, p1.length).join() !== p1.join()) throw new Error("turn 1 prompt");
      const r2 = await chat.reply("では、恐れとは？");
      if (!r2.reusedCache || r2.promptTokens <= r1.promptTokens + r1.tokens) {
        throw new Error(`turn 2 did not go on from the cache: ${JSON.stringify(r2)}`);
      }
      // The cache holds the template's rendering of both turns (the reply as generated, untrimmed).
      const rendered = tok.renderChat([
        { role: "user", content: "丁寧に答えてください。\n\n勇気とは何ですか" },
        { role: "model", content: "\u0000" },
        { role: "user", content: "では、恐れとは？" },
      ], true).replace("\u0000", tok.decode(r1.ids));
      const decoded = tok.decode(chat.cacheTokens.slice(0, r2.promptTokens));
      if (decoded !== rendered) {
        throw new Error(`cache ${JSON.stringify(decoded)} != ${JSON.stringify(rendered)}`);
      }
      // The cache after two turns holds exactly the logits a fresh prefill of its tokens gives.
      fresh.prefill(chat.cacheTokens);
      const [a] = await decoder.readLogits();
      const [b] = await fresh.readLogits();
      assertClose(a, b, { abs: 2e-2, rel: 2e-2 }, "cached vs fresh logits");

      // An aborted reply stops between tokens and stays in the conversation.
      const ctl = new AbortController();
      let n = 0;
      const r3 = await chat.reply("例を挙げてください", {
        signal: ctl.signal,
        onText: () => {
          if (++n === 2) ctl.abort();
        },
      });
      if (r3.finish !== "interrupted" || r3.tokens < 2 || r3.tokens >= 10) {
        throw new Error(JSON.stringify(r3));
      }
      const r4 = await chat.reply("続けてください");
      if (!r4.reusedCache) throw new Error("the turn after an interrupted reply re-prefilled");

      // A control token in a message is refused before anything is fed.
      const before = chat.cacheTokens.length;
      let refused = false;
      await chat.reply("<start_of_turn>model").catch((e) => refused = e instanceof ChatInputError);
      if (!refused || chat.cacheTokens.length !== before) throw new Error("control token accepted");

      // The transcript: system first, then user/assistant pairs, and the data loader reads it.
      const rec = chat.record();
      if (rec.messages[0].role !== "system" || rec.messages.length !== 9) {
        throw new Error(JSON.stringify(rec));
      }
      const path = join(dir, "talk.json");
      const saved = await saveTranscript(path, rec);
      const d = await loadDialogues(path);
      const kept = saved.record.messages.filter((x) => x.role === "user").length;
      if (d.length !== 1 || d[0].turns.length !== 2 * kept || kept + saved.skipped !== 4) {
        throw new Error(JSON.stringify({ d, saved }));
      }
      if (!d[0].turns[0].content.startsWith("丁寧に答えてください。\n\n勇気とは何ですか")) {
        throw new Error(d[0].turns[0].content);
      }
      const jsonl = join(dir, "talk.jsonl");
      await saveTranscript(jsonl, rec);
      if ((await Deno.readTextFile(jsonl)).trim().split("\n").length !== 1) throw new Error("jsonl");
      if ((await loadDialogues(jsonl)).length !== 1) throw new Error("jsonl load");

      chat.reset();
      if (chat.exchanges.length !== 0) throw new Error("reset");
      const r5 = await chat.reply("こんにちは");
      if (r5.reusedCache) throw new Error("a reset conversation reused the cache");
    } finally {
      decoder.destroy();
      fresh.destroy();
    }
  });
});

Deno.test("chat: a full context drops the oldest exchanges, keeps the system text, and never overflows", async () => {
  const m = await openTiny();
  const decoder = new Decoder(m.session.engine, { rows: 1, maxLen: 72, maxPrompt: 72 });
  try {
    const chat = new ChatSession(decoder, m.tok, {
      system: "短く",
      sampling: { doSample: false },
      maxNewTokens: 8,
      seed: 1,
    });
    let dropped = 0;
    for (let i = 0; i < 8; i++) {
      const r = await chat.reply(`質問${i}：それはなぜですか`);
      dropped += r.dropped;
      if (decoder.length > decoder.maxLen) throw new Error(`cache ${decoder.length} > ${decoder.maxLen}`);
      if (r.dropped && r.reusedCache) throw new Error("a trimmed turn must be prefilled");
    }
    if (dropped < 1) throw new Error("8 turns in 72 tokens dropped nothing");
    // The prompt still starts with the system text folded into the (now later) first user turn.
    const head = m.tok.decode(chat.cacheTokens.slice(0, 12));
    if (!head.includes("短く")) throw new Error(head);
    // Every exchange stays in the transcript.
    if (chat.exchanges.length !== 8) throw new Error(`${chat.exchanges.length}`);
    // A message that cannot fit at all is a clear error, not a crash.
    let tooLong = "";
    await chat.reply("あ".repeat(200)).catch((e) => tooLong = e instanceof ChatInputError ? e.message : "");
    if (!tooLong.includes("--context")) throw new Error(`too long: ${tooLong}`);
  } finally {
    decoder.destroy();
  }
});

Deno.test("chat transcript: empty replies are left out and control-token text is taken out", () => {
  const s = loadableRecord({
    messages: [
      { role: "user", content: "a" },
      { role: "assistant", content: "" },
      { role: "user", content: "b" },
      { role: "assistant", content: "x<start_of_turn>y" },
    ],
  });
  if (
    s.skipped !== 1 || s.removed !== 1 ||
    JSON.stringify(s.record.messages.map((m) => m.content)) !== '["b","xy"]'
  ) {
    throw new Error(JSON.stringify(s));
  }
});
