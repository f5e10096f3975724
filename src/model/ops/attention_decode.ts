/**
 * Single-query GQA attention over a KV cache, the decode step of Gemma-2 (kernels/attention_decode.wgsl; the
 * T = 1 case of transformers 4.45 modeling_gemma2.py Gemma2Attention with a HybridCache). CPU reference:
 * src/model/ref/attention.ts (the last query row of the full attention).
 */
import decodeSource from "../../../kernels/attention_decode.wgsl" with { type: "text" };
import { defineKernel, getKernel } from "../../gpu/kernel.ts";
import type { Binding, Recorder } from "../../gpu/recorder.ts";

const ATTENTION_DECODE = defineKernel({
  file: "attention_decode.wgsl",
  code: decodeSource,
  params: {
    B: "u32",
    Hq: "u32",
    Hkv: "u32",
    D: "u32",
    maxLen: "u32",
    n: "u32",
    window: "u32",
    useCap: "u32",
    scale: "f32",
    cap: "f32",
  },
});

/** Invocations per workgroup of attention_decode.wgsl and its register budget (MAXE there). */
const DECODE_WG = 64;
const DECODE_MAXE = 8;

export interface DecodeAttentionShape {
  B: number;
  Hq: number;
  Hkv: number;
  D: number;
  /** Positions per sequence in the cache buffers (the row stride is maxLen·Hkv·D). */
  maxLen: number;
  /** Keys in the cache (the query is at position n − 1). */
  n: number;
  scale: number;
  softcap: number | null;
  /** Sliding window, or null for plain causal. */
  window: number | null;
}

/**
 * out [B, Hq, D] = attention of the single query q [B, Hq, D] at position n − 1 over the cached keys and
 * values kc, vc [B, maxLen, Hkv, D] (kernels/attention_decode.wgsl).
 */
export function attentionDecode(
  rec: Recorder,
  q: Binding,
  kc: Binding,
  vc: Binding,
  out: Binding,
  s: DecodeAttentionShape,
): void {
  const ints = [s.B, s.Hq, s.Hkv, s.D, s.maxLen, s.n];
  if (!ints.every((x) => Number.isInteger(x) && x >= 1)) {
    throw new RangeError(`attentionDecode: B, Hq, Hkv, D, maxLen, n must be positive integers (${ints})`);
  }
  if (s.Hq % s.Hkv) throw new RangeError(`attentionDecode: Hq ${s.Hq} is not a multiple of Hkv ${s.Hkv}`);
  if (s.n > s.maxLen) throw new RangeError(`attentionDecode: ${s.n} keys exceed the cache's ${s.maxLen}`);
  if (Math.ceil(s.D / DECODE_WG) > DECODE_MAXE) {
    throw new RangeError(`attentionDecode: head dim ${s.D} exceeds ${DECODE_WG * DECODE_MAXE}`);
  }
  if (s.window !== null && !(Number.isInteger(s.window) && s.window >= 1)) {
    throw new RangeError(`attentionDecode: window must be a positive integer or null (${s.window})`);
  }
  const maxD = Math.max(DECODE_WG, Math.ceil(s.D / DECODE_WG) * DECODE_WG);
  const k = getKernel(rec.gpu, {
    ...ATTENTION_DECODE,
    constants: { WG: DECODE_WG, MAXD: maxD },
  });
  rec.dispatch(k, [q, kc, vc, out], {
    B: s.B,
    Hq: s.Hq,
    Hkv: s.Hkv,
    D: s.D,
    maxLen: s.maxLen,
    n: s.n,
    window: s.window ?? 0,
    useCap: s.softcap === null ? 0 : 1,
    scale: s.scale,
    cap: s.softcap ?? 1,
  }, [s.Hq, s.B]);
}
