// A rung of the `maieutic bench` kernel ladder: dequantize a whole NF4 weight (bitsandbytes layout with
// double-quantized absmax, as kernels/nf4_matmul.wgsl reads it) into a full f16 copy, the "dequantize, then
// matmul" path that docs/ARCHITECTURE.md#performance rules out for the engine. One invocation per packed u32 word = 8 elements,
// which lie in one 64-block (64 is a multiple of 8); the output is written as 4 words of two halves each
// (pack2x16float, low half = lower element index), so no shader-f16 feature is needed.
//   absmax[b] = DYNAMIC_MAP[qabsmax[b]] · absmax2[b / 256] + offset;  w = NF4_CODE[code] · absmax[e / 64]
// Byte j of a word holds elements 2j (high nibble) and 2j + 1 (low nibble).

struct Params { words: u32, offset: f32 }

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> Wq: array<u32>;
@group(0) @binding(2) var<storage, read> Qa: array<u32>;
@group(0) @binding(3) var<storage, read> absmax2: array<f32>;
@group(0) @binding(4) var<storage, read> tables: array<f32>; // [0,16): NF4 code, [16,272): dynamic map
@group(0) @binding(5) var<storage, read_write> W16: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let w = (wg.x + wg.y * nwg.x) * WG + li;
  if (w >= p.words) { return; }
  let block = w >> 3u; // 8 elements per word, 64 per block
  let q = (Qa[block >> 2u] >> ((block & 3u) * 8u)) & 0xffu;
  let am = tables[16u + q] * absmax2[block >> 8u] + p.offset;
  let word = Wq[w];
  for (var j = 0u; j < 4u; j++) {
    let byte = (word >> (j * 8u)) & 0xffu;
    let hi = tables[byte >> 4u] * am;
    let lo = tables[byte & 0xfu] * am;
    W16[w * 4u + j] = pack2x16float(vec2f(hi, lo));
  }
}
