// Fused lm_head cross-entropy, pass 1, one vocab chunk: fold the chunk's logits into each row's running
// logsumexp and pick the target logit. docs/ARCHITECTURE.md#performance: the [N, V] logits are never materialized; the host computes
// the chunk's pre-cap logits z [rows, cols] = h · E[v0 .. v0+cols)ᵀ with matmul.wgsl, then runs this kernel.
//
//   y = tanh(z/c)·c                       Gemma-2 final_logit_softcapping (transformers modeling_gemma2.py);
//                                         cap = 0 means no softcap
//   (m, s) ← merge((m, s), (max_j y_j, Σ_j exp(y_j − max)))   online softmax normalizer (Milakov & Gimelshein
//                                         2018): state holds the running max m and Σ exp(y − m) per row
//   tgt = y[target − v0] when v0 ≤ target < v0 + cols
//
// Row state layout (f32): state[r] = m, state[rows + r] = s, state[2·rows + r] = target logit.
// `first` = 1 on the first chunk overwrites the state instead of merging (no clear needed).
// One workgroup per row (1-D grid folded over x/y by the Recorder). Entry `main_logits` additionally writes
// the capped logits into a full [rows, V] buffer (small models, tests and goldens only).

struct Params { rows: u32, cols: u32, v0: u32, V: u32, first: u32, cap: f32 }

const WG: u32 = 256u;
const NEG_BIG: f32 = -3.0e38; // finite "−∞": exp(NEG_BIG − y) = 0 without inf − inf = NaN

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<storage, read_write> logits: array<f32>;

// #include reduce

// tanh saturates to ±1 in f32 beyond |x| ≈ 9; clamping keeps exp-based tanh implementations away from inf/inf.
fn capped(x: f32) -> f32 {
  if (p.cap <= 0.0) { return x; }
  return tanh(clamp(x / p.cap, -15.0, 15.0)) * p.cap;
}

// Merges two (max, Σ exp(· − max)) pairs.
fn merge(a: vec2f, b: vec2f) -> vec2f {
  let m = max(a.x, b.x);
  return vec2f(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

fn fold_row(row: u32, valid: bool, lanes: Lanes) {
  let li = lanes.li;
  var acc = vec2f(NEG_BIG, 0.0);
  if (valid) {
    let base = row * p.cols;
    for (var c = li; c < p.cols; c += WG) {
      let y = capped(z[base + c]);
      // One exp per element: rescale the sum when the max moves, else add the term.
      if (y > acc.x) {
        acc = vec2f(y, acc.y * exp(acc.x - y) + 1.0);
      } else {
        acc.y += exp(y - acc.x);
      }
    }
  }
  // The workgroup's (max, Σ exp(y − max)): every partial rescaled to the common max, then summed.
  let m = wg_max(acc.x, lanes);
  let s = wg_sum(acc.y * exp(acc.x - m), lanes);
  if (li == 0u && valid) {
    let chunk = vec2f(m, s);
    var run = chunk;
    if (p.first == 0u) { run = merge(vec2f(state[row], state[p.rows + row]), chunk); }
    state[row] = run.x;
    state[p.rows + row] = run.y;
    if (p.first == 1u) { state[2u * p.rows + row] = 0.0; }
    let t = targets[row];
    if (t >= 0 && u32(t) >= p.v0 && u32(t) < p.v0 + p.cols) {
      state[2u * p.rows + row] = capped(z[row * p.cols + (u32(t) - p.v0)]);
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let row = wg.x + wg.y * nwg.x;
  fold_row(row, row < p.rows, lanes);
}

@compute @workgroup_size(WG)
fn main_logits(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, lanes: Lanes) {
  let row = wg.x + wg.y * nwg.x;
  let valid = row < p.rows;
  if (valid) {
    for (var c = lanes.li; c < p.cols; c += WG) {
      logits[row * p.V + p.v0 + c] = capped(z[row * p.cols + c]);
    }
  }
  fold_row(row, valid, lanes);
}
