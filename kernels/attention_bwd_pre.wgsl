// Attention backward, step 1 (FlashAttention-2 preprocessing): Drow[b, h, i] = Σ_d dout[b,i,h,d]·out[b,i,h,d]
// = rowsum(dO∘O) = Σ_j P_ij·dP_ij, the term every dS_ij = P_ij·(dP_ij − Drow_i) subtracts. It also copies the
// forward's lse next to it: rowStats = [Drow | lse], each [B, Hq, T], so that the dK/dV kernel reads both
// through one binding (it would otherwise need 9 storage buffers, WebGPU's default limit being 8).
// Layouts: dout, out [B, T, Hq, HD]; lse [B, Hq, T]. One invocation per row; 1-D grid folded over x/y by the
// Recorder, so the row index is (wg.x + wg.y·nwg.x)·WG + lid with an overshoot guard.

struct Params { B: u32, T: u32, Hq: u32, HD: u32 }

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> out: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> rowStats: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let n = (wg.x + wg.y * nwg.x) * WG + li;
  let rows = p.B * p.Hq * p.T;
  if (n >= rows) { return; }
  let i = n % p.T;
  let h = (n / p.T) % p.Hq;
  let b = n / (p.T * p.Hq);
  let base = ((b * p.T + i) * p.Hq + h) * p.HD;
  var s = 0.0;
  for (var d = 0u; d < p.HD; d++) { s = fma(dout[base + d], out[base + d], s); }
  rowStats[n] = s;
  rowStats[rows + n] = lse[n];
}
