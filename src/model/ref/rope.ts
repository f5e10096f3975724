/**
 * Float64 CPU reference for rotary position embeddings (tests only), transformers' rotate-half convention
 * (`modeling_gemma2.py` apply_rotary_pos_emb: `q·cos + rotate_half(q)·sin`, rotate_half = cat(−x2, x1),
 * cos/sin = cat(freqs, freqs)). Layout `[B, T, H, D]`, D even.
 */

/**
 * inv_freq[i] = 1/θ^(2i/D) as transformers computes it: `arange(0, D, 2).float() / D`, `θ ** that`, `1 / that`,
 * each step rounded to float32 (the buffer is float32).
 */
export function ropeInvFreq(D: number, theta: number): Float64Array {
  const half = D / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const e = Math.fround((2 * i) / D);
    inv[i] = Math.fround(1 / Math.fround(Math.pow(theta, e)));
  }
  return inv;
}

/**
 * cos/sin tables `[T, D/2]` for the given positions. `f32Angles`: round the angle `inv_freq·pos` and the
 * cos/sin to float32 like transformers' forward (which upcasts to float32 even in a float64 model); the default
 * is float64 cos/sin of the float32 inv_freq.
 */
export function ropeTables(
  T: number,
  D: number,
  theta: number,
  positions?: ArrayLike<number>,
  f32Angles = false,
): { cos: Float64Array; sin: Float64Array } {
  const half = D / 2;
  const inv = ropeInvFreq(D, theta);
  const cos = new Float64Array(T * half);
  const sin = new Float64Array(T * half);
  for (let t = 0; t < T; t++) {
    const p = positions ? positions[t] : t;
    for (let i = 0; i < half; i++) {
      if (f32Angles) {
        const a = Math.fround(inv[i] * p);
        cos[t * half + i] = Math.fround(Math.cos(a));
        sin[t * half + i] = Math.fround(Math.sin(a));
      } else {
        const a = inv[i] * p;
        cos[t * half + i] = Math.cos(a);
        sin[t * half + i] = Math.sin(a);
      }
    }
  }
  return { cos, sin };
}

/** Applies the rotation (sign = 1) or its transpose (sign = −1) with given tables. */
export function ropeApply(
  x: ArrayLike<number>,
  B: number,
  T: number,
  H: number,
  D: number,
  cos: ArrayLike<number>,
  sin: ArrayLike<number>,
  sign: 1 | -1,
): Float64Array {
  const half = D / 2;
  const out = new Float64Array(B * T * H * D);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * D;
        for (let i = 0; i < half; i++) {
          const c = cos[t * half + i];
          const s = sign * sin[t * half + i];
          const x1 = x[o + i];
          const x2 = x[o + i + half];
          out[o + i] = x1 * c - x2 * s;
          out[o + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
  return out;
}

/** out[i] = x[i]·cos − x[i+D/2]·sin, out[i+D/2] = x[i+D/2]·cos + x[i]·sin; positions default to 0..T−1. */
export function ropeFwd(
  x: ArrayLike<number>,
  B: number,
  T: number,
  H: number,
  D: number,
  theta: number,
  positions?: ArrayLike<number>,
): Float64Array {
  const { cos, sin } = ropeTables(T, D, theta, positions);
  return ropeApply(x, B, T, H, D, cos, sin, 1);
}

/** The transpose (inverse) rotation: dx[i] = dy[i]·cos + dy[i+D/2]·sin, dx[i+D/2] = dy[i+D/2]·cos − dy[i]·sin. */
export function ropeBwd(
  dy: ArrayLike<number>,
  B: number,
  T: number,
  H: number,
  D: number,
  theta: number,
  positions?: ArrayLike<number>,
): Float64Array {
  const { cos, sin } = ropeTables(T, D, theta, positions);
  return ropeApply(dy, B, T, H, D, cos, sin, -1);
}
