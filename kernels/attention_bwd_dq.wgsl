// Attention backward, step 3 (FlashAttention-2 outer loop over queries): dQ of one BR-row query tile of one
// query head. Per key tile the scores are recomputed (no T×T matrix anywhere):
//
//   dP = dO·Vᵀ,  raw = (q·k)·scale, t = tanh(raw/cap), s = t·cap,  P = exp(s − lse_i) if visible else 0,
//   dS = P∘(dP − Drow_i)·(1 − t²)·scale,  dQ += dS·K
//
// A row with no visible key (lse ≈ MASKED from the forward) has P = 1/T over all T keys, as HF's finfo.min
// mask gives, and its gradient reaches every score; a tile holding such a row visits every key tile.
// Layouts as the forward; rowStats = [Drow | lse] (each [B, Hq, T]) from attention_bwd_pre.wgsl; dq
// [B, T, Hq, HD] is written.
// Grid: (ceil(T/BR), Hq, B). One staging buffer serves V (for dP) and then K (for S and dQ).

// Params, MASKED_LSE, softcap, visible, recomputedProb: kernels/lib/attention_scores.wgsl.
// #include attention_scores

override HD: u32 = 64u;
override BR: u32 = 32u;
override BC: u32 = 32u;
override WG: u32 = 128u; // ≥ BR
override HP: u32 = HD + 1u;
override NEL: u32 = (BR * HD + WG - 1u) / WG;
const MAXEL: u32 = 32u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> rowStats: array<f32>; // [Drow | lse], each [B, Hq, T]
@group(0) @binding(6) var<storage, read> keyMask: array<u32>;
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;

var<workgroup> Qs: array<f32, BR * HP>;
var<workgroup> dOs: array<f32, BR * HP>;
var<workgroup> KVs: array<f32, BC * HP>;
var<workgroup> Ss: array<f32, BR * BC>; // dP, then dS
var<workgroup> Lr: array<f32, BR>;
var<workgroup> Dr: array<f32, BR>;
var<workgroup> flag: u32;

// loadK / loadV (kernels/lib/attention_kv_tile.wgsl); stageQueryRows: q, dO, Drow and lse of the query tile
// (kernels/lib/attention_query_rows.wgsl).
// #include attention_kv_tile
// #include attention_query_rows

fn keyTile(kt: u32, b: u32, g: u32, i0: u32, li: u32, acc: ptr<function, array<f32, MAXEL>>) {
  let j0 = kt * BC;
  workgroupBarrier(); // the previous tile's readers of KVs and Ss are done
  loadV(b, g, j0, li);
  workgroupBarrier();
  for (var e = li; e < BR * BC; e += WG) {
    let r = e / BC;
    let c = e % BC;
    var dp = 0.0;
    for (var d = 0u; d < p.hd; d++) { dp = fma(dOs[r * HP + d], KVs[c * HP + d], dp); }
    Ss[e] = dp;
  }
  workgroupBarrier();
  loadK(b, g, j0, li);
  workgroupBarrier();
  for (var e = li; e < BR * BC; e += WG) {
    let r = e / BC;
    let c = e % BC;
    let i = i0 + r;
    let j = j0 + c;
    var qk = 0.0;
    for (var d = 0u; d < p.hd; d++) { qk = fma(Qs[r * HP + d], KVs[c * HP + d], qk); }
    let st = softcap(qk * p.scale);
    let pr = recomputedProb(b, i, j, st.s, Lr[r]);
    Ss[e] = pr * (Ss[e] - Dr[r]) * (1.0 - st.t * st.t) * p.scale; // same invocation wrote dP at e
  }
  workgroupBarrier();
  for (var n = 0u; n < NEL; n++) {
    let e = li + n * WG;
    if (e < BR * HD) {
      let r = e / HD;
      let d = e % HD;
      var a = (*acc)[n];
      for (var c = 0u; c < p.bc; c++) { a = fma(Ss[r * BC + c], KVs[c * HP + d], a); }
      (*acc)[n] = a;
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
  stageQueryRows(b, h, i0, li);
  workgroupBarrier();
  if (li == 0u) {
    var f = 0u;
    for (var r = 0u; r < p.br; r++) {
      if (i0 + r < p.T && Lr[r] < MASKED_LSE) { f = 1u; }
    }
    flag = f;
  }
  let anyMasked = workgroupUniformLoad(&flag) != 0u;
  var jLo = 0u;
  if (i0 + 1u > p.window) { jLo = i0 + 1u - p.window; }
  var ktLo = jLo / BC;
  var ktHi = iLast / BC;
  if (anyMasked) {
    ktLo = 0u;
    ktHi = (p.T - 1u) / BC;
  }
  var acc: array<f32, MAXEL>;
  for (var kt = ktLo; kt <= ktHi; kt++) { keyTile(kt, b, g, i0, li, &acc); }
  for (var n = 0u; n < NEL; n++) {
    let e = li + n * WG;
    if (e < BR * HD) {
      let r = e / HD;
      let d = e % HD;
      let i = i0 + r;
      if (i < p.T) { dq[((b * p.T + i) * p.Hq + h) * HD + d] = acc[n]; }
    }
  }
}
