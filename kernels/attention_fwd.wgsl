// Causal GQA attention forward for Gemma-2, tiled with an online softmax (FlashAttention-2 forward):
// no T×T score matrix exists anywhere; each workgroup keeps one BR-row query tile and streams BC-key tiles.
//
// transformers 4.45 modeling_gemma2.py (eager): s = (q·k)·scale, s = tanh(s/cap)·cap (softcap BEFORE the
// mask), then the additive mask (finfo.min, a finite number): causal j ≤ i, sliding window i − window < j,
// key padding keyMask[b*T + j] == 0. Softmax in f32, out = P·v. GQA: query head h reads kv head
// h / (Hq/Hkv). Layouts: q, out [B, T, Hq, HD]; k, v [B, T, Hkv, HD]; lse [B, Hq, T] (log Σ exp per row,
// kept for the backward); keyMask [B*T] u32 (bound but unread when useMask == 0).
//
// A masked score is MASKED, a large finite negative, exactly like HF: while a row has seen no visible key its
// running max stays MASKED and every masked key counts exp(0) = 1; the first visible key rescales those counts
// by exp(MASKED − s) = 0. So a row whose keys are all masked ends as a uniform softmax over all T keys (HF's
// behaviour, never NaN) provided it visits every key tile: after the causal/window tile range the workgroup
// checks for such rows and, if there are any, also visits the remaining tiles (they change nothing for the
// other rows: p = exp(MASKED − m) = 0 and the rescale factor is exp(0) = 1).
//
// Grid: (ceil(T/BR), Hq, B). WG invocations; tiles in workgroup memory padded to HP = HD + 1 floats per row
// (no bank conflicts on the strided score reads). Each invocation owns NEL output elements in registers.
// The overrides size the workgroup arrays; the inner loops run to the runtime copies p.hd/p.br/p.bc instead,
// because fully unrolled constant-bound loops made lavapipe's LLVM take ~45 s per pipeline (D = 8), and
// keyTile has a single call site for the same reason.

// Params, MASKED, softcap and visible: kernels/lib/attention_scores.wgsl.
// #include attention_scores

override HD: u32 = 64u;  // head dim
override BR: u32 = 32u;  // query rows per workgroup
override BC: u32 = 32u;  // keys per tile
override WG: u32 = 128u; // invocations per workgroup (≥ BR)
override HP: u32 = HD + 1u;
override NEL: u32 = (BR * HD + WG - 1u) / WG; // output elements per invocation (≤ MAXEL, checked by the host)
const MAXEL: u32 = 32u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> keyMask: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;

var<workgroup> Qs: array<f32, BR * HP>;
var<workgroup> KVs: array<f32, BC * HP>; // the K tile, then the V tile of the same keys
var<workgroup> Ss: array<f32, BR * BC>;  // scores, then probabilities
var<workgroup> Mrow: array<f32, BR>;     // running max
var<workgroup> Lrow: array<f32, BR>;     // running Σ exp(s − max)
var<workgroup> Arow: array<f32, BR>;     // this tile's rescale factor exp(m_old − m_new)
var<workgroup> flag: u32;

// loadK / loadV: stage keys [j0, j0 + BC) of kv head g into KVs (kernels/lib/attention_kv_tile.wgsl).
// #include attention_kv_tile

// One key tile: scores, online softmax update, O = O·a + P·V. Called in uniform control flow.
fn keyTile(kt: u32, b: u32, g: u32, i0: u32, li: u32, acc: ptr<function, array<f32, MAXEL>>) {
  let j0 = kt * BC;
  workgroupBarrier(); // the previous tile's readers of KVs and Ss are done
  loadK(b, g, j0, li);
  workgroupBarrier();
  for (var e = li; e < BR * BC; e += WG) {
    let r = e / BC;
    let c = e % BC;
    var dot = 0.0;
    for (var d = 0u; d < p.hd; d++) { dot = fma(Qs[r * HP + d], KVs[c * HP + d], dot); }
    var s = softcap(dot * p.scale).s;
    let i = i0 + r;
    let j = j0 + c;
    if (i >= p.T || j >= p.T || !visible(b, i, j)) { s = MASKED; }
    Ss[e] = s;
  }
  workgroupBarrier();
  // K is no longer needed: stage V while the first BR invocations update the row statistics.
  loadV(b, g, j0, li);
  if (li < BR) {
    let mOld = Mrow[li];
    var mNew = mOld;
    for (var c = 0u; c < p.bc; c++) {
      if (j0 + c < p.T) { mNew = max(mNew, Ss[li * BC + c]); }
    }
    var sum = 0.0;
    for (var c = 0u; c < p.bc; c++) {
      var pr = 0.0;
      if (j0 + c < p.T) { pr = exp(Ss[li * BC + c] - mNew); } // keys past T do not exist: weight 0
      Ss[li * BC + c] = pr;
      sum += pr;
    }
    let a = exp(mOld - mNew);
    Arow[li] = a;
    Mrow[li] = mNew;
    Lrow[li] = Lrow[li] * a + sum;
  }
  workgroupBarrier();
  for (var n = 0u; n < NEL; n++) {
    let e = li + n * WG;
    if (e < BR * HD) {
      let r = e / HD;
      let d = e % HD;
      var o = (*acc)[n] * Arow[r];
      for (var c = 0u; c < p.bc; c++) { o = fma(Ss[r * BC + c], KVs[c * HP + d], o); }
      (*acc)[n] = o;
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let qt = wg.x;
  let h = wg.y;
  let b = wg.z;
  let g = h / (p.Hq / p.Hkv);
  let i0 = qt * BR;
  let iLast = min(i0 + BR, p.T) - 1u;
  for (var e = li; e < BR * HD; e += WG) {
    let r = e / HD;
    let d = e % HD;
    let i = i0 + r;
    var x = 0.0;
    if (i < p.T) { x = q[((b * p.T + i) * p.Hq + h) * HD + d]; }
    Qs[r * HP + d] = x;
  }
  if (li < BR) {
    Mrow[li] = MASKED;
    Lrow[li] = 0.0;
  }
  var acc: array<f32, MAXEL>;
  // Keys any row of this tile can see: j ∈ [i0 + 1 − window, iLast].
  var jLo = 0u;
  if (i0 + 1u > p.window) { jLo = i0 + 1u - p.window; }
  let ktLo = jLo / BC;
  let ktHi = iLast / BC;
  let nKT = (p.T + BC - 1u) / BC;
  // Iteration it < nVis visits tile ktLo + it; after the last of those, if some row saw no visible key,
  // the loop extends over the other tiles 0..ktLo−1, ktHi+1..nKT−1 (uniform control flow throughout).
  let nVis = ktHi + 1u - ktLo;
  var total = nVis;
  for (var it = 0u; it < total; it++) {
    var kt = ktLo + it;
    if (it >= nVis) {
      kt = it - nVis;
      if (kt >= ktLo) { kt += nVis; }
    }
    keyTile(kt, b, g, i0, li, &acc);
    if (it + 1u == nVis) {
      workgroupBarrier();
      if (li == 0u) {
        var f = 0u;
        for (var r = 0u; r < p.br; r++) {
          if (i0 + r < p.T && Mrow[r] == MASKED) { f = 1u; }
        }
        flag = f;
      }
      if (workgroupUniformLoad(&flag) != 0u) { total = nKT; }
    }
  }
  workgroupBarrier();
  for (var n = 0u; n < NEL; n++) {
    let e = li + n * WG;
    if (e < BR * HD) {
      let r = e / HD;
      let d = e % HD;
      let i = i0 + r;
      if (i < p.T) { out[((b * p.T + i) * p.Hq + h) * HD + d] = acc[n] / Lrow[r]; }
    }
  }
  if (li < BR && i0 + li < p.T) {
    lse[(b * p.Hq + h) * p.T + i0 + li] = Mrow[li] + log(Lrow[li]);
  }
}
