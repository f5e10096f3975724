// Shared by attention_fwd.wgsl and attention_bwd_dq.wgsl (`// #include attention_kv_tile`): stage keys
// [j0, j0 + BC) of kv head g, from K or from V, into the workgroup tile KVs (rows padded to HP floats), zero
// past T. Needs from the kernel: p, k, v, KVs and the overrides HD, HP, BC, WG.

fn loadKV(fromV: bool, b: u32, g: u32, j0: u32, li: u32) {
  for (var e = li; e < BC * HD; e += WG) {
    let c = e / HD;
    let d = e % HD;
    let j = j0 + c;
    var x = 0.0;
    if (j < p.T) {
      let o = ((b * p.T + j) * p.Hkv + g) * HD + d;
      if (fromV) { x = v[o]; } else { x = k[o]; }
    }
    KVs[c * HP + d] = x;
  }
}

fn loadK(b: u32, g: u32, j0: u32, li: u32) { loadKV(false, b, g, j0, li); }

fn loadV(b: u32, g: u32, j0: u32, li: u32) { loadKV(true, b, g, j0, li); }
