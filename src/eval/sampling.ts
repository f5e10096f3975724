/**
 * Next-token choice from one row of (softcapped) logits, as transformers' `generate` does it
 * (generation/logits_process.py, applied in this order by `_get_logits_processor`):
 *   RepetitionPenaltyLogitsProcessor  each token already in the sequence (prompt included, once per distinct
 *                                     id): score < 0 ? score·penalty : score/penalty
 *   then, when sampling:
 *   TemperatureLogitsWarper           score / temperature
 *   TopKLogitsWarper                  scores below the k-th largest become −∞ (ties with it are kept)
 *   TopPLogitsWarper                  sort ascending, cumulative softmax; drop tokens while the cumulative
 *                                     probability is ≤ 1 − top_p, always keeping the most likely token
 *   softmax + multinomial             one draw from the seeded generator
 * Greedy decoding is the argmax of the penalized scores (the smallest id on ties, like torch.argmax).
 * Everything runs in float64 on the host; the caller provides a seeded `() => number` in [0, 1).
 */

export interface SamplingOptions {
  /** Sample (true) or greedy (false, the default). */
  doSample?: boolean;
  /** > 0; 1 leaves the scores as they are. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. Default 0. */
  topK?: number;
  /** Nucleus mass in (0, 1]; 1 = off. Default 1. */
  topP?: number;
  /** > 0; 1 = off. Default 1. */
  repetitionPenalty?: number;
}

export interface ResolvedSampling {
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
}

/** Fills defaults and checks ranges (RangeError naming the option). */
export function resolveSampling(o: SamplingOptions = {}): ResolvedSampling {
  const r: ResolvedSampling = {
    doSample: o.doSample ?? false,
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    repetitionPenalty: o.repetitionPenalty ?? 1,
  };
  if (!(r.temperature > 0) || !Number.isFinite(r.temperature)) {
    throw new RangeError(`temperature must be > 0 (got ${r.temperature}); use greedy decoding for 0`);
  }
  if (!Number.isInteger(r.topK) || r.topK < 0) {
    throw new RangeError(`top_k must be an integer >= 0 (got ${r.topK})`);
  }
  if (!(r.topP > 0 && r.topP <= 1)) throw new RangeError(`top_p must be in (0, 1] (got ${r.topP})`);
  if (!(r.repetitionPenalty > 0) || !Number.isFinite(r.repetitionPenalty)) {
    throw new RangeError(`repetition_penalty must be > 0 (got ${r.repetitionPenalty})`);
  }
  return r;
}

/** True when the choice is a plain argmax of the raw logits (what the GPU argmax kernel computes). */
export function isPlainGreedy(o: ResolvedSampling): boolean {
  return !o.doSample && o.repetitionPenalty === 1;
}

/** RepetitionPenaltyLogitsProcessor, in place: each distinct id of `history` once. */
export function applyRepetitionPenalty(
  scores: Float64Array,
  history: Iterable<number>,
  penalty: number,
): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (const id of history) {
    if (seen.has(id) || id < 0 || id >= scores.length) continue;
    seen.add(id);
    const s = scores[id];
    scores[id] = s < 0 ? s * penalty : s / penalty;
  }
}

/** TopKLogitsWarper, in place: entries below the k-th largest value become −∞. */
export function applyTopK(scores: Float64Array, k: number): void {
  if (k <= 0 || k >= scores.length) return;
  const sorted = Float64Array.from(scores).sort(); // ascending; NaN last
  const kth = sorted[scores.length - k];
  for (let i = 0; i < scores.length; i++) if (!(scores[i] >= kth)) scores[i] = -Infinity;
}

/**
 * TopPLogitsWarper, in place: with the scores sorted ascending (ties by id, so the result is deterministic),
 * the tokens whose cumulative probability is ≤ 1 − p become −∞; the most likely token always stays.
 */
export function applyTopP(scores: Float64Array, p: number): void {
  if (p >= 1) return;
  const idx = Array.from(scores.keys()).filter((i) => scores[i] > -Infinity);
  if (idx.length <= 1) return;
  idx.sort((a, b) => scores[a] - scores[b] || b - a); // ascending; on ties the larger id first (dropped first)
  const max = scores[idx[idx.length - 1]];
  let z = 0;
  for (const i of idx) z += Math.exp(scores[i] - max);
  let cum = 0;
  for (let r = 0; r < idx.length - 1; r++) {
    cum += Math.exp(scores[idx[r]] - max) / z;
    if (cum <= 1 - p) scores[idx[r]] = -Infinity;
    else break;
  }
}

/** The index of the largest value (the smallest index on ties; NaN never wins). */
export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best] || Number.isNaN(xs[best])) best = i;
  return best;
}

/** The processed scores (−∞ where filtered) of one logits row, before the softmax. */
export function processScores(
  logits: ArrayLike<number>,
  history: Iterable<number>,
  o: ResolvedSampling,
): Float64Array {
  const s = Float64Array.from(logits);
  applyRepetitionPenalty(s, history, o.repetitionPenalty);
  if (!o.doSample) return s;
  if (o.temperature !== 1) { for (let i = 0; i < s.length; i++) s[i] /= o.temperature; }
  applyTopK(s, o.topK);
  applyTopP(s, o.topP);
  return s;
}

/** softmax of processed scores (−∞ → 0). */
export function softmax(scores: Float64Array): Float64Array {
  let max = -Infinity;
  for (const x of scores) if (x > max) max = x;
  const p = new Float64Array(scores.length);
  let z = 0;
  for (let i = 0; i < scores.length; i++) {
    p[i] = scores[i] > -Infinity ? Math.exp(scores[i] - max) : 0;
    z += p[i];
  }
  for (let i = 0; i < p.length; i++) p[i] /= z;
  return p;
}

/** One draw from probabilities `p` with u ∈ [0, 1) (inverse CDF over ids in order). */
export function drawFrom(p: Float64Array, u: number): number {
  let cum = 0;
  let last = -1;
  for (let i = 0; i < p.length; i++) {
    if (p[i] <= 0) continue;
    cum += p[i];
    last = i;
    if (u < cum) return i;
  }
  return last < 0 ? 0 : last; // rounding left u just above the total
}

/** The next token of a sequence: greedy (argmax of the penalized scores) or a seeded sample. */
export function chooseToken(
  logits: ArrayLike<number>,
  history: Iterable<number>,
  o: ResolvedSampling,
  rand: () => number,
): number {
  const s = processScores(logits, history, o);
  if (!o.doSample) return argmax(s);
  return drawFrom(softmax(s), rand());
}
