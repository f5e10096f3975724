// Shared by attention_bwd_dq.wgsl and attention_bwd_dkdv.wgsl (`// #include attention_query_rows`): stage the
// BR query rows [i0, i0 + BR) of query head h — q into Qs, dO into dOs (rows padded to HP floats) — and
// their row statistics from rowStats = [Drow | lse] (each [B, Hq, T], attention_bwd_pre.wgsl) into Dr and
// Lr; zero past T. Needs from the kernel: p, q, dout, rowStats, Qs, dOs, Lr, Dr and HD, HP, BR, WG.

fn stageQueryRows(b: u32, h: u32, i0: u32, li: u32) {
  for (var e = li; e < BR * HD; e += WG) {
    let r = e / HD;
    let d = e % HD;
    let i = i0 + r;
    var x = 0.0;
    var y = 0.0;
    if (i < p.T) {
      let o = ((b * p.T + i) * p.Hq + h) * HD + d;
      x = q[o];
      y = dout[o];
    }
    Qs[r * HP + d] = x;
    dOs[r * HP + d] = y;
  }
  if (li < BR) {
    let i = i0 + li;
    var l = 0.0;
    var dd = 0.0;
    if (i < p.T) {
      dd = rowStats[(b * p.Hq + h) * p.T + i];
      l = rowStats[p.B * p.Hq * p.T + (b * p.Hq + h) * p.T + i];
    }
    Lr[li] = l;
    Dr[li] = dd;
  }
}
