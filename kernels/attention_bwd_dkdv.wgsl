// Attention backward, step 2 (FlashAttention-2 outer loop over keys): dK and dV of one BC-key tile of one
// kv head, summed over the query heads that share it (GQA) and over the query tiles that can see it.
// Nothing T×T is stored: per query tile the scores are recomputed from q·k and the forward's lse.
//
//   raw = (q·k)·scale, t = tanh(raw/cap), s = t·cap          (s = raw without softcap)
//   P   = exp(s − lse_i) if visible, else 0                   (1/T for a fully masked row, see below)
//   dV += Pᵀ·dO
//   dP  = dO·Vᵀ,  dS = P∘(dP − Drow_i)·(1 − t²)·scale         (chain rule through softcap and scale)
//   dK += dSᵀ·Q
//
// Fully masked rows (every key masked): HF's finfo.min mask makes their softmax uniform over all T keys and,
// as the mask is added after the softcap, the gradient flows through every one of those scores. The forward
// leaves lse ≈ −1e30 (its masked value) for such a row, so P = 1/T there; such rows can sit in query tiles
// outside the causal/window range of this key tile (the keys are "future" ones), so those tiles are visited
// too when their lse says so.
//
// Layouts as the forward; rowStats = [Drow | lse] (each [B, Hq, T]) from attention_bwd_pre.wgsl, one binding so
// the kernel stays within WebGPU's default 8 storage buffers; dk, dv [B, T, Hkv, HD] are written (not
// accumulated): this workgroup is the only writer of its keys. Grid: (ceil(T/BC), Hkv, B).

// Params, MASKED_LSE, softcap, visible, recomputedProb: kernels/lib/attention_scores.wgsl.
// #include attention_scores

override HD: u32 = 64u;
override BR: u32 = 16u;  // query rows per tile
override BC: u32 = 32u;  // keys owned by the workgroup
override WG: u32 = 128u; // ≥ BR
override HP: u32 = HD + 1u;
override NEL: u32 = (BC * HD + WG - 1u) / WG; // dK (and dV) elements per invocation
const MAXEL: u32 = 32u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> rowStats: array<f32>; // [Drow | lse], each [B, Hq, T]
@group(0) @binding(6) var<storage, read> keyMask: array<u32>;
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

var<workgroup> Ks: array<f32, BC * HP>;
var<workgroup> Vs: array<f32, BC * HP>;
var<workgroup> Qs: array<f32, BR * HP>;
var<workgroup> dOs: array<f32, BR * HP>;
var<workgroup> Ps: array<f32, BR * BC>;
var<workgroup> dSs: array<f32, BR * BC>;
var<workgroup> Lr: array<f32, BR>;
var<workgroup> Dr: array<f32, BR>;
var<workgroup> flag: u32;

// stageQueryRows: q, dO, Drow and lse of a query tile (kernels/lib/attention_query_rows.wgsl).
// #include attention_query_rows

// One query tile of query head h against this workgroup's keys [j0, j0 + BC).
fn queryTile(qt: u32, h: u32, b: u32, j0: u32, li: u32,
             dkAcc: ptr<function, array<f32, MAXEL>>, dvAcc: ptr<function, array<f32, MAXEL>>) {
  let i0 = qt * BR;
  workgroupBarrier(); // the previous tile's readers are done
  stageQueryRows(b, h, i0, li);
  workgroupBarrier();
  for (var e = li; e < BR * BC; e += WG) {
    let r = e / BC;
    let c = e % BC;
    let i = i0 + r;
    let j = j0 + c;
    var qk = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < p.hd; d++) {
      qk = fma(Qs[r * HP + d], Ks[c * HP + d], qk);
      dp = fma(dOs[r * HP + d], Vs[c * HP + d], dp);
    }
    let st = softcap(qk * p.scale);
    let pr = recomputedProb(b, i, j, st.s, Lr[r]);
    Ps[e] = pr;
    dSs[e] = pr * (dp - Dr[r]) * (1.0 - st.t * st.t) * p.scale;
  }
  workgroupBarrier();
  for (var n = 0u; n < NEL; n++) {
    let e = li + n * WG;
    if (e < BC * HD) {
      let c = e / HD;
      let d = e % HD;
      var a = (*dvAcc)[n];
      var bk = (*dkAcc)[n];
      for (var r = 0u; r < p.br; r++) {
        a = fma(Ps[r * BC + c], dOs[r * HP + d], a);
        bk = fma(dSs[r * BC + c], Qs[r * HP + d], bk);
      }
      (*dvAcc)[n] = a;
      (*dkAcc)[n] = bk;
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let kt = wg.x;
  let g = wg.y;
  let b = wg.z;
  let j0 = kt * BC;
  let jLast = min(j0 + BC, p.T) - 1u;
  for (var e = li; e < BC * HD; e += WG) {
    let c = e / HD;
    let d = e % HD;
    let j = j0 + c;
    var x = 0.0;
    var y = 0.0;
    if (j < p.T) {
      let o = ((b * p.T + j) * p.Hkv + g) * HD + d;
      x = k[o];
      y = v[o];
    }
    Ks[c * HP + d] = x;
    Vs[c * HP + d] = y;
  }
  var dkAcc: array<f32, MAXEL>;
  var dvAcc: array<f32, MAXEL>;
  // Queries that can see a key of this tile: i ∈ [j0, jLast + window − 1] (window ≤ T, so no overflow).
  let qtLo = j0 / BR;
  let qtHi = min(jLast + p.window - 1u, p.T - 1u) / BR;
  let nQT = (p.T + BR - 1u) / BR;
  let group = p.Hq / p.Hkv;
  for (var hh = 0u; hh < group; hh++) {
    let h = g * group + hh;
    for (var qt = 0u; qt < nQT; qt++) {
      var run = qt >= qtLo && qt <= qtHi;
      if (!run) {
        // Outside the range only fully masked rows contribute; look for one in this tile's lse.
        workgroupBarrier();
        if (li == 0u) {
          var f = 0u;
          for (var r = 0u; r < p.br; r++) {
            let i = qt * BR + r;
            if (i < p.T && rowStats[p.B * p.Hq * p.T + (b * p.Hq + h) * p.T + i] < MASKED_LSE) { f = 1u; }
          }
          flag = f;
        }
        run = workgroupUniformLoad(&flag) != 0u;
      }
      if (run) { queryTile(qt, h, b, j0, li, &dkAcc, &dvAcc); }
    }
  }
  for (var n = 0u; n < NEL; n++) {
    let e = li + n * WG;
    if (e < BC * HD) {
      let c = e / HD;
      let d = e % HD;
      let j = j0 + c;
      if (j < p.T) {
        let o = ((b * p.T + j) * p.Hkv + g) * HD + d;
        dk[o] = dkAcc[n];
        dv[o] = dvAcc[n];
      }
    }
  }
}
