// Row-wise argmax of logits [rows, V] (greedy decoding, transformers `torch.argmax(next_token_scores, -1)`):
// ids[r] = the smallest index of the row's largest value, so only 4 bytes per sequence are read back.
// NaN never wins (comparisons with NaN are false); a row of NaN gives index 0.
// One workgroup per row (folded grid): a strided scan per invocation, then a tree reduction in workgroup
// memory that keeps the smaller index on ties.

struct Params { rows: u32, V: u32 }

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;

var<workgroup> bestV: array<f32, WG>;
var<workgroup> bestI: array<u32, WG>;

// (v, i) beats (w, j): larger value, or equal value and smaller index.
fn beats(v: f32, i: u32, w: f32, j: u32) -> bool {
  return v > w || (v == w && i < j);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * nwg.x;
  var bv = -3.4028234e38;
  var bi = 0xffffffffu;
  if (r < p.rows) {
    let base = r * p.V;
    for (var c = li; c < p.V; c += WG) {
      let v = logits[base + c];
      if (beats(v, c, bv, bi)) {
        bv = v;
        bi = c;
      }
    }
  }
  bestV[li] = bv;
  bestI[li] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (li < s && beats(bestV[li + s], bestI[li + s], bestV[li], bestI[li])) {
      bestV[li] = bestV[li + s];
      bestI[li] = bestI[li + s];
    }
    workgroupBarrier();
  }
  if (li == 0u && r < p.rows) { ids[r] = select(bestI[0], 0u, bestI[0] == 0xffffffffu); }
}
