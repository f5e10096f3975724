// NF4 quantization with double-quantized absmax, bit for bit as bitsandbytes 0.50.1 (CUDA):
// `kQuantizeBlockwise<..., NF4>` (blocksize 64) then `quantize_blockwise(absmax - offset, blocksize=256)`
// with the signed dynamic map (`kQuantizeBlockwise<..., General8bit>`). CPU reference: src/quant/nf4.ts.
//
// Entry points (host wrapper: src/quant/nf4_gpu.ts; bindings follow CONTRIBUTING, unused numbers skipped):
//   quantize: w[n] -> packed (bytes as u32 words, byte k = code[2k] << 4 | code[2k+1]), absmax[ceil(n/64)]
//   mean:     absmax -> offset[0] = float32 mean (tree sum; may differ from the float64 mean by an ulp,
//             so exact callers upload the CPU value instead)
//   dq:       absmax, offset -> qabsmax (bytes as u32 words), absmax2[ceil(nb/256)]
//
// Exactness: max, subtraction and multiplication are exact or correctly rounded in WGSL, but division is only
// 2.5 ulp, so the reciprocal bnb stores (`1.0f / absmax`, IEEE round-to-nearest) is computed with integers.

struct Params { n: u32, nb: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> packed: array<u32>;
@group(0) @binding(3) var<storage, read_write> absmax: array<f32>;
@group(0) @binding(4) var<storage, read_write> offset: array<f32>;
@group(0) @binding(5) var<storage, read_write> qabsmax: array<u32>;
@group(0) @binding(6) var<storage, read_write> absmax2: array<f32>;
@group(0) @binding(7) var<storage, read> dmap: array<f32, 256>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;
var<workgroup> codes: array<u32, WG>;

// Correctly rounded 1/a for normal a whose reciprocal is normal: RN(2^48 / M) by long division of the
// 24-bit significand M (no tie is possible unless M is a power of two, which is handled exactly).
fn recip_rn(a: f32) -> f32 {
  let bits = bitcast<u32>(a);
  let e = (bits >> 23u) & 0xffu;
  if (e == 0u || e >= 253u) { return 1.0 / a; } // zero, subnormal, inf/nan or subnormal result: not used
  let sign = bits & 0x80000000u;
  let m = bits & 0x7fffffu;
  if (m == 0u) { return bitcast<f32>(sign | ((254u - e) << 23u)); }
  let M = m | 0x800000u;
  var rem = 1u;
  var q = 0u;
  for (var i = 0u; i < 48u; i++) {
    rem = rem << 1u;
    q = q << 1u;
    if (rem >= M) { rem -= M; q |= 1u; }
  }
  // q = floor(2^48 / M) has 25 bits; the last one is the rounding bit (sticky can't make a tie).
  let Q = (q + 1u) >> 1u;
  return bitcast<f32>(sign | ((253u - e) << 23u) | (Q - 0x800000u));
}

// bnb dQuantizeNF4: strict `>` against float32 midpoints (float literals with an `f` suffix in kernels.cu).
fn nf4_code(x: f32) -> u32 {
  if (x > 0.03979014977812767) {
    if (x > 0.3893125355243683) {
      if (x > 0.6427869200706482) { return select(14u, 15u, x > 0.8614784181118011); }
      return select(12u, 13u, x > 0.5016634166240692);
    }
    if (x > 0.2035212516784668) { return select(10u, 11u, x > 0.2920137718319893); }
    return select(8u, 9u, x > 0.1202552504837513);
  }
  if (x > -0.33967943489551544) {
    if (x > -0.13791173323988914) { return select(6u, 7u, x > -0.045525018125772476); }
    return select(4u, 5u, x > -0.23460740596055984);
  }
  if (x > -0.6106329262256622) { return select(2u, 3u, x > -0.4599952697753906); }
  return select(0u, 1u, x > -0.8480964004993439);
}

// bnb dQuantize<0>: 7-step binary search from pivot 127, then a midpoint test.
fn dyn_code(x: f32) -> u32 {
  var pivot = 127u;
  var upper_pivot = 255u;
  var lower_pivot = 0u;
  var lower = -1.0;
  var upper = 1.0;
  var val = dmap[pivot];
  for (var i = 64u; i > 0u; i = i >> 1u) {
    if (x > val) { lower_pivot = pivot; lower = val; pivot += i; }
    else { upper_pivot = pivot; upper = val; pivot -= i; }
    val = dmap[pivot];
  }
  if (upper_pivot == 255u) { upper = dmap[upper_pivot]; }
  if (lower_pivot == 0u) { lower = dmap[lower_pivot]; }
  if (x > val) {
    let mid = (upper + val) * 0.5;
    return select(pivot, upper_pivot, x > mid);
  }
  let mid = (lower + val) * 0.5;
  return select(pivot, lower_pivot, x < mid);
}

// Four 64-blocks per workgroup. p.n = elements, p.nb = blocks.
@compute @workgroup_size(WG)
fn quantize(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) li: u32) {
  let wid = wg.x + wg.y * nwg.x;
  let i = wid * WG + li;
  let x = select(0.0, w[min(i, p.n - 1u)], i < p.n); // padding is 0.0, as bnb's LoadFloat default
  red[li] = abs(x);
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if ((li & 63u) < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let am = red[li & ~63u];
  let b = wid * 4u + (li >> 6u);
  if ((li & 63u) == 0u && b < p.nb) { absmax[b] = am; }
  // An all-zero block is 0 * inf = NaN in bnb, which the decision tree sends to code 0.
  codes[li] = select(nf4_code(x * recip_rn(am)), 0u, am == 0.0);
  workgroupBarrier();
  if (li < 32u) {
    let k = li * 8u;
    let word = ((codes[k] << 4u) | codes[k + 1u]) | (((codes[k + 2u] << 4u) | codes[k + 3u]) << 8u) |
      (((codes[k + 4u] << 4u) | codes[k + 5u]) << 16u) | (((codes[k + 6u] << 4u) | codes[k + 7u]) << 24u);
    let gw = wid * 32u + li;
    if (gw < (p.n + 7u) / 8u) { packed[gw] = word; }
  }
}

// Single workgroup: offset[0] = mean(absmax[0..p.nb]).
@compute @workgroup_size(WG)
fn mean(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = li; i < p.nb; i += WG) { s += absmax[i]; }
  red[li] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k >> 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  if (li == 0u) { offset[0] = red[0] / f32(p.nb); }
}

// One 256-block of absmax per workgroup. p.nb = number of absmax values.
@compute @workgroup_size(WG)
fn dq(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
      @builtin(local_invocation_index) li: u32) {
  let wid = wg.x + wg.y * nwg.x;
  let i = wid * WG + li;
  let valid = i < p.nb;
  let c = select(0.0, absmax[min(i, p.nb - 1u)] - offset[0], valid);
  red[li] = abs(c);
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let am2 = red[0];
  if (li == 0u && wid * WG < p.nb) { absmax2[wid] = am2; }
  // absmax2 == 0: bnb computes 0 * inf = NaN, and the binary search sends NaN to code 0.
  codes[li] = select(dyn_code(c * recip_rn(am2)), 0u, am2 == 0.0);
  workgroupBarrier();
  if (li < 64u) {
    let k = li * 4u;
    let word = codes[k] | (codes[k + 1u] << 8u) | (codes[k + 2u] << 16u) | (codes[k + 3u] << 24u);
    let gw = wid * 64u + li;
    if (gw < (p.nb + 3u) / 4u) { qabsmax[gw] = word; }
  }
}

// Test hook for the integer reciprocal: packed[i] = bits of recip_rn(w[i]).
@compute @workgroup_size(WG)
fn recip(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i < p.n) { packed[i] = bitcast<u32>(recip_rn(w[i])); }
}
