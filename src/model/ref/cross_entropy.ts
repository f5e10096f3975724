/**
 * Float64 CPU reference for the tied lm_head, the final logit softcap and the causal-LM cross-entropy
 * (tests only). transformers 4.45 `modeling_gemma2.py` Gemma2ForCausalLM.forward: `logits = lm_head(h)`,
 * `tanh(logits/c)·c`, then CrossEntropyLoss(ignore_index=−100) = mean over all counted tokens of the batch.
 * Rows here already carry their shifted target (row n is scored against the token that follows it).
 */
import { IGNORE_INDEX } from "../../data/tokenize.ts";
import { softcap, softcapGrad } from "./gemma2.ts";

/** logits [N, V] = softcap(h·tableᵀ); h [N, dim], table [V, dim] (the unscaled embedding, tied). */
export function lmHeadLogits(
  h: ArrayLike<number>,
  table: ArrayLike<number>,
  N: number,
  dim: number,
  V: number,
  cap: number | null,
): Float64Array {
  const out = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const ho = n * dim;
    for (let v = 0; v < V; v++) {
      const to = v * dim;
      let s = 0;
      for (let d = 0; d < dim; d++) s += h[ho + d] * table[to + d];
      out[n * V + v] = softcap(s, cap);
    }
  }
  return out;
}

/**
 * Per row: lse = log Σ exp(logits), tokenLoss = lse − logits[target] (0 for ignored rows);
 * loss = Σ tokenLoss / count (NaN when nothing is counted, as torch's 0/0).
 */
export function crossEntropyFwd(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  N: number,
  V: number,
): { loss: number; count: number; lse: Float64Array; tokenLoss: Float64Array } {
  const lse = new Float64Array(N);
  const tokenLoss = new Float64Array(N);
  let count = 0;
  let sum = 0;
  for (let n = 0; n < N; n++) {
    const o = n * V;
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, logits[o + v]);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[o + v] - m);
    lse[n] = m + Math.log(z);
    const t = Number(targets[n]);
    if (t === IGNORE_INDEX) continue;
    tokenLoss[n] = lse[n] - logits[o + t];
    sum += tokenLoss[n];
    count++;
  }
  return { loss: sum / count, count, lse, tokenLoss };
}

/**
 * d(gradScale · Σ_counted tokenLoss)/dh through the softcap and the tied head (table frozen):
 * dz = gradScale·(softmax − onehot)·softcap'(h·tableᵀ), dh = dz·table. Ignored rows get 0.
 * For the mean loss, gradScale = 1/count.
 */
export function lmHeadCeBwd(
  h: ArrayLike<number>,
  table: ArrayLike<number>,
  targets: ArrayLike<number>,
  N: number,
  dim: number,
  V: number,
  cap: number | null,
  gradScale: number,
): { dh: Float64Array } {
  const dh = new Float64Array(N * dim);
  const z = new Float64Array(V);
  const l = new Float64Array(V);
  for (let n = 0; n < N; n++) {
    const t = Number(targets[n]);
    if (t === IGNORE_INDEX) continue;
    const ho = n * dim;
    let m = -Infinity;
    for (let v = 0; v < V; v++) {
      const to = v * dim;
      let s = 0;
      for (let d = 0; d < dim; d++) s += h[ho + d] * table[to + d];
      z[v] = s;
      l[v] = softcap(s, cap);
      m = Math.max(m, l[v]);
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(l[v] - m);
    for (let v = 0; v < V; v++) {
      const p = Math.exp(l[v] - m) / sum;
      const g = gradScale * (p - (v === t ? 1 : 0)) * softcapGrad(z[v], cap);
      const to = v * dim;
      for (let d = 0; d < dim; d++) dh[ho + d] += g * table[to + d];
    }
  }
  return { dh };
}
