/**
 * Greedy decoding throughput for `maieutic bench`, with the KV-cache decoder of src/model/decode.ts on the
 * step benchmark's engine (its weights and LoRA): one prefill of the prompt, then `tokens` decode steps, each
 * a forward of one token per row and the 4-byte argmax readback (as generation for the eval metrics runs).
 * The decoder is loaded dynamically so the benchmark still runs, with a note, where it is missing or broken.
 */
import { idle } from "../gpu/readback.ts";
import type { Gemma2Engine } from "../model/engine.ts";

export interface DecodeResult {
  available: boolean;
  note?: string;
  prompt_tokens?: number;
  tokens?: number;
  rows?: number;
  prefill_ms?: number;
  /** Wall milliseconds per generated token (forward + argmax readback). */
  ms_per_token?: number;
  tokens_per_s?: number;
}

export async function benchDecode(
  engine: Gemma2Engine,
  o: { promptTokens: number; tokens: number },
): Promise<DecodeResult> {
  let mod: typeof import("../model/decode.ts");
  try {
    mod = await import("../model/decode.ts");
  } catch (e) {
    return { available: false, note: `src/model/decode.ts could not be loaded: ${(e as Error).message}` };
  }
  const gpu = engine.gpu!;
  const V = engine.weights.config.vocab_size;
  const P = Math.max(1, o.promptTokens);
  const n = Math.max(1, o.tokens);
  const dec = new mod.Decoder(engine, { rows: 1, maxLen: P + n, maxPrompt: P });
  try {
    const prompt = Array.from({ length: P }, (_, i) => 3 + ((i * 7919) % (V - 3)));
    let t0 = performance.now();
    dec.prefill(prompt);
    let next = (await dec.argmax())[0];
    const prefill = performance.now() - t0;
    t0 = performance.now();
    for (let i = 0; i < n; i++) {
      dec.step([next]);
      next = (await dec.argmax())[0];
    }
    await idle(gpu);
    const ms = (performance.now() - t0) / n;
    return {
      available: true,
      prompt_tokens: P,
      tokens: n,
      rows: 1,
      prefill_ms: prefill,
      ms_per_token: ms,
      tokens_per_s: 1000 / ms,
    };
  } finally {
    dec.destroy();
  }
}
