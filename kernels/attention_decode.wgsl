// Single-query GQA attention over a KV cache: the decode step of Gemma-2 (one new token per sequence), the
// T = 1 case of transformers 4.45 modeling_gemma2.py Gemma2Attention (eager) with a HybridCache:
//   s_j = tanh((q·k_j)·scale / cap)·cap   (softcap before the mask, like attention_fwd.wgsl)
//   out = Σ_j softmax(s)_j · v_j          over the visible keys j of the query at position i = n − 1:
//   causal j ≤ i, and on sliding layers i − window < j (window = 0: no window).
// Masked keys are simply not visited: HF adds finfo.min to them, which gives them probability exactly 0, and
// the query always sees itself, so the row is never fully masked.
//
// Layouts (row-major f32): q, out [B, Hq, D] (one token per sequence b); kc, vc [B, maxLen, Hkv, D], positions
// 0..n−1 filled. Query head h reads kv head h / (Hq / Hkv).
// Grid (Hq, B), one workgroup per (head, sequence). Keys are streamed in tiles of WG (one key per invocation:
// its score), with an online softmax (running max m, running Σ l, the accumulator rescaled by exp(m_old − m));
// each invocation owns output elements d = li + e·WG, e < MAXE, in registers. Loops run to runtime bounds
// (p.D, tile counts) so lavapipe's LLVM does not unroll them.

struct Params {
  B: u32, Hq: u32, Hkv: u32, D: u32,
  maxLen: u32, n: u32, window: u32, useCap: u32,
  scale: f32, cap: f32,
}

override WG: u32 = 64u;
override MAXD: u32 = 256u; // ≥ D: size of the staged query
const MAXE: u32 = 8u;      // output elements per invocation (ceil(D / WG) ≤ MAXE, checked by the host)
const MASKED: f32 = -1e30;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<f32>;
@group(0) @binding(3) var<storage, read> vc: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> Qs: array<f32, MAXD>;
var<workgroup> Ps: array<f32, WG>; // the tile's scores, then its probabilities

// tanh(s/cap)·cap; the clamp keeps tanh's exp-based lowering finite (tanh(15) is 1 in f32).
fn softcap(raw: f32) -> f32 {
  if (p.useCap == 0u) { return raw; }
  return tanh(clamp(raw / p.cap, -15.0, 15.0)) * p.cap;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let h = wg.x;
  let b = wg.y;
  let g = h / (p.Hq / p.Hkv);
  let i = p.n - 1u;
  var lo = 0u;
  if (p.window > 0u && i + 1u > p.window) { lo = i + 1u - p.window; }
  for (var d = li; d < p.D; d += WG) { Qs[d] = q[(b * p.Hq + h) * p.D + d]; }
  workgroupBarrier();
  var m = MASKED;
  var l = 0.0;
  var acc: array<f32, MAXE>;
  let nTiles = (p.n - lo + WG - 1u) / WG;
  for (var t = 0u; t < nTiles; t++) {
    let j0 = lo + t * WG;
    let j = j0 + li;
    var s = MASKED;
    if (j < p.n) {
      let ko = ((b * p.maxLen + j) * p.Hkv + g) * p.D;
      var dot = 0.0;
      for (var d = 0u; d < p.D; d++) { dot = fma(Qs[d], kc[ko + d], dot); }
      s = softcap(dot * p.scale);
    }
    Ps[li] = s;
    workgroupBarrier();
    var mNew = m;
    for (var c = 0u; c < WG; c++) { mNew = max(mNew, Ps[c]); }
    workgroupBarrier(); // every invocation has read the scores before they become probabilities
    var pr = 0.0;
    if (j < p.n) { pr = exp(s - mNew); }
    Ps[li] = pr;
    workgroupBarrier();
    let a = exp(m - mNew);
    let cnt = min(WG, p.n - j0);
    var sum = 0.0;
    for (var c = 0u; c < cnt; c++) { sum += Ps[c]; }
    l = l * a + sum;
    m = mNew;
    for (var e = 0u; e < MAXE; e++) {
      let d = li + e * WG;
      if (d < p.D) {
        var o = acc[e] * a;
        var vo = ((b * p.maxLen + j0) * p.Hkv + g) * p.D + d;
        for (var c = 0u; c < cnt; c++) {
          o = fma(Ps[c], vc[vo], o);
          vo += p.Hkv * p.D;
        }
        acc[e] = o;
      }
    }
    workgroupBarrier(); // the next tile overwrites Ps
  }
  for (var e = 0u; e < MAXE; e++) {
    let d = li + e * WG;
    if (d < p.D) { out[(b * p.Hq + h) * p.D + d] = acc[e] / l; }
  }
}
