/**
 * Float64 CPU reference for the scaled embedding lookup (tests only). transformers `modeling_gemma2.py`
 * Gemma2Model.forward: `inputs_embeds * normalizer` with normalizer = hidden_size**0.5 (rounded to the model
 * dtype; exact for 64 and 2304). The tied lm_head uses the unscaled table.
 */

/** out[n] = table[ids[n]] · scale, `[N, dim]`. */
export function embeddingFwd(
  ids: ArrayLike<number>,
  table: ArrayLike<number>,
  dim: number,
  scale: number,
): Float64Array {
  const N = ids.length;
  const out = new Float64Array(N * dim);
  for (let n = 0; n < N; n++) {
    const o = Number(ids[n]) * dim;
    for (let j = 0; j < dim; j++) out[n * dim + j] = table[o + j] * scale;
  }
  return out;
}
