// Different prompts side by side in one decoder (Decoder.prefillRow + per-row step, src/chat/batch.ts): each
// row's logits equal a one-row decoder's on the same tokens, at every step; batched greedy generation equals
// one prompt at a time; a row's sampler does not depend on the batch it is in.
import { generateRows } from "../../src/chat/batch.ts";
import { generate } from "../../src/eval/generate.ts";
import { Decoder } from "../../src/model/decode.ts";
import { assertClose } from "../helpers/gpu.ts";
import { join, makeTinyAdapter, openTiny, withTempDir } from "./helpers.ts";

Deno.test("decoder rows at positions of their own: logits equal a one-row decoder's at every step", async () => {
  await withTempDir(async (dir) => {
    const m = await openTiny(await makeTinyAdapter(join(dir, "adapter")));
    const engine = m.session.engine;
    const tok = m.tok;
    // Ragged prompts (7, 33 and 20 tokens), one row left on the shared prefill.
    const prompts = ["勇気", "では、恐れを知らない人は勇敢だと言えるでしょうか。理由も", "正義とは何ですか？"]
      .map((t) => tok.encode(tok.renderChat([{ role: "user", content: t }], true)));
    const many = new Decoder(engine, { rows: 4, maxLen: 90, maxPrompt: 64 });
    const one = new Decoder(engine, { rows: 1, maxLen: 90, maxPrompt: 90 });
    try {
      many.prefill(prompts[0]); // row 3 keeps this shared prompt
      prompts.forEach((p, b) => many.prefillRow(b, p));
      const seqs = [...prompts, prompts[0]].map((p) => [...p]);
      if (many.lengths.join() !== seqs.map((s) => s.length).join()) throw new Error(`${many.lengths}`);
      for (let t = 0; t < 6; t++) {
        const got = await many.readLogits();
        for (let b = 0; b < 4; b++) {
          one.prefill(seqs[b]);
          const [want] = await one.readLogits();
          assertClose(got[b], want, { abs: 1e-3, rel: 1e-3 }, `row ${b} step ${t}`);
        }
        const feed = [5 + t, 300 + t, 601, 7 * t + 20];
        feed.forEach((id, b) => seqs[b].push(id));
        many.step(feed);
      }
    } finally {
      many.destroy();
      one.destroy();
    }
  });
});

Deno.test("batched generation equals one prompt at a time (greedy) and keeps each row's sampler", async () => {
  const m = await openTiny();
  const tok = m.tok;
  const prompts = ["こんにちは", "なぜ空は青いのですか？もう少し詳しく", "はい"].map((t) =>
    tok.encode(tok.renderChat([{ role: "user", content: t }], true))
  );
  const maxLen = Math.max(...prompts.map((p) => p.length)) + 11;
  const batch = new Decoder(m.session.engine, { rows: 4, maxLen, maxPrompt: maxLen });
  const single = new Decoder(m.session.engine, { rows: 1, maxLen, maxPrompt: maxLen });
  try {
    const greedy = await generateRows(batch, prompts.map((prompt) => ({ prompt })), 12, tok.stopIds);
    if (greedy.length !== 3) throw new Error(`${greedy.length} outputs`);
    for (const [i, p] of prompts.entries()) {
      const r = await generate(single, tok, { prompt: p, maxNewTokens: 12, stopIds: tok.stopIds });
      if (r.outputs[0].ids.join() !== greedy[i].ids.join() || r.outputs[0].finish !== greedy[i].finish) {
        throw new Error(`row ${i}: batched ${greedy[i].ids} != single ${r.outputs[0].ids}`);
      }
    }
    // A sampled row draws from (seed, sub): alone or beside other prompts, the same reply.
    const sampling = { doSample: true, temperature: 1.2, topK: 0, topP: 1 };
    const row = { prompt: prompts[1], sampling, seed: 77, sub: 2 };
    const beside = await generateRows(
      batch,
      [{ prompt: prompts[0], sampling, seed: 1 }, row],
      12,
      tok.stopIds,
    );
    const alone = await generateRows(single, [row], 12, tok.stopIds);
    if (beside[1].ids.join() !== alone[0].ids.join()) throw new Error(`${beside[1].ids} != ${alone[0].ids}`);
    const other = await generateRows(single, [{ ...row, sub: 3 }], 12, tok.stopIds);
    if (other[0].ids.join() === alone[0].ids.join()) throw new Error("the sub-stream is not used");
  } finally {
    batch.destroy();
    single.destroy();
  }
});
