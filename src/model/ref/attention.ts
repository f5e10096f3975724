/**
 * Float64 CPU reference for Gemma-2 eager attention (tests only), transformers 4.45 `modeling_gemma2.py`
 * Gemma2Attention.forward: scores = (q·kᵀ)·query_pre_attn_scalar^−0.5, then softcap tanh(s/c)·c, THEN the
 * additive mask (finfo.min: a finite number, so a fully-masked row is a uniform softmax, not NaN), softmax,
 * ·v. GQA: query head h reads kv head floor(h / (Hq/Hkv)) (repeat_kv). Layouts: q/out [B, T, Hq, D],
 * k/v [B, T, Hkv, D]; lse [B, Hq, T].
 */
import { softcap, softcapGrad } from "./gemma2.ts";

export interface AttnShape {
  B: number;
  T: number;
  Hq: number;
  Hkv: number;
  D: number;
  /** query_pre_attn_scalar^-0.5 (Gemma-2's config scalar, not head_dim). */
  scale: number;
  /** attn_logit_softcapping, or null for none. */
  softcap: number | null;
  /** Sliding window: key j is visible to query i iff i − window < j ≤ i; null = plain causal. */
  window: number | null;
  /** [B*T], 1 = real token, 0 = padding; masks keys only. */
  keyMask?: ArrayLike<number>;
  /**
   * Emulate transformers' `softmax(..., dtype=torch.float32)` (float32 even in a float64 model): scores,
   * exponentials, sum and probabilities rounded to float32. Only for comparing with HF's float64 goldens.
   */
  f32Softmax?: boolean;
}

/**
 * The value a masked score takes. HF adds finfo(dtype).min, which swamps the score exactly; any masked entry
 * then has probability 0 unless the whole row is masked (then every entry is equal and the softmax is uniform
 * over all T keys). A large finite constant reproduces both cases.
 */
export const MASKED_SCORE = -1e30;

/** Whether key j is visible to query i of batch row b. */
export function attnVisible(s: AttnShape, b: number, i: number, j: number): boolean {
  if (j > i) return false;
  if (s.window !== null && i - s.window >= j) return false;
  if (s.keyMask && Number(s.keyMask[b * s.T + j]) === 0) return false;
  return true;
}

/** Masked, softcapped, scaled scores of one (b, h, i) row (raw pre-softcap scores go to `raw`). */
function rowScores(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  s: AttnShape,
  b: number,
  h: number,
  i: number,
  raw: Float64Array,
  sc: Float64Array,
): void {
  const { T, Hq, Hkv, D } = s;
  const kvh = Math.floor(h / (Hq / Hkv));
  const qo = ((b * T + i) * Hq + h) * D;
  for (let j = 0; j < T; j++) {
    const ko = ((b * T + j) * Hkv + kvh) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qo + d] * k[ko + d];
    raw[j] = dot * s.scale;
    sc[j] = attnVisible(s, b, i, j) ? softcap(raw[j], s.softcap) : MASKED_SCORE;
  }
}

/** Softmax in place; returns the log-sum-exp. */
function softmaxInPlace(p: Float64Array, f32 = false): number {
  if (f32) {
    const f = Math.fround;
    let m = -Infinity;
    for (let j = 0; j < p.length; j++) m = Math.max(m, f(p[j]));
    let z = 0;
    for (let j = 0; j < p.length; j++) {
      p[j] = f(Math.exp(f(f(p[j]) - m)));
      z += p[j];
    }
    const inv = f(1 / f(z));
    for (let j = 0; j < p.length; j++) p[j] = f(p[j] * inv);
    return m + Math.log(z);
  }
  let m = -Infinity;
  for (let j = 0; j < p.length; j++) m = Math.max(m, p[j]);
  let z = 0;
  for (let j = 0; j < p.length; j++) {
    p[j] = Math.exp(p[j] - m);
    z += p[j];
  }
  for (let j = 0; j < p.length; j++) p[j] /= z;
  return m + Math.log(z);
}

export function attentionFwd(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttnShape,
): { out: Float64Array; lse: Float64Array } {
  const { B, T, Hq, Hkv, D } = s;
  const out = new Float64Array(B * T * Hq * D);
  const lse = new Float64Array(B * Hq * T);
  const raw = new Float64Array(T);
  const p = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kvh = Math.floor(h / (Hq / Hkv));
      for (let i = 0; i < T; i++) {
        rowScores(q, k, s, b, h, i, raw, p);
        lse[(b * Hq + h) * T + i] = softmaxInPlace(p, s.f32Softmax);
        const oo = ((b * T + i) * Hq + h) * D;
        for (let j = 0; j < T; j++) {
          if (p[j] === 0) continue;
          const vo = ((b * T + j) * Hkv + kvh) * D;
          for (let d = 0; d < D; d++) out[oo + d] += p[j] * v[vo + d];
        }
      }
    }
  }
  return { out, lse };
}

/**
 * Backward of attentionFwd. dS = P∘(dP − rowsum(dout∘out)), then through the softcap (1 − tanh²) and the
 * scale. As in HF (mask added after the softcap, gradient 1 through the add), the gradient also reaches
 * masked scores, which only matters in a fully-masked row (P uniform); elsewhere P = 0 there.
 */
export function attentionBwd(
  dout: ArrayLike<number>,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttnShape,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, T, Hq, Hkv, D } = s;
  const dq = new Float64Array(B * T * Hq * D);
  const dk = new Float64Array(B * T * Hkv * D);
  const dv = new Float64Array(B * T * Hkv * D);
  const raw = new Float64Array(T);
  const p = new Float64Array(T);
  const dp = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kvh = Math.floor(h / (Hq / Hkv));
      for (let i = 0; i < T; i++) {
        rowScores(q, k, s, b, h, i, raw, p);
        softmaxInPlace(p, s.f32Softmax);
        const qo = ((b * T + i) * Hq + h) * D;
        let di = 0;
        for (let j = 0; j < T; j++) {
          const vo = ((b * T + j) * Hkv + kvh) * D;
          let acc = 0;
          for (let d = 0; d < D; d++) acc += dout[qo + d] * v[vo + d];
          dp[j] = acc;
          di += p[j] * acc;
          if (p[j] !== 0) { for (let d = 0; d < D; d++) dv[vo + d] += p[j] * dout[qo + d]; }
        }
        for (let j = 0; j < T; j++) {
          if (p[j] === 0) continue;
          const ds = p[j] * (dp[j] - di) * softcapGrad(raw[j], s.softcap) * s.scale;
          const ko = ((b * T + j) * Hkv + kvh) * D;
          for (let d = 0; d < D; d++) {
            dq[qo + d] += ds * k[ko + d];
            dk[ko + d] += ds * q[qo + d];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
