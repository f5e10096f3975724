// NF4 dequantization shared by every kernel that reads a frozen NF4 weight (`// #include nf4_dequant`:
// nf4_matmul*.wgsl, nf4_matvec.wgsl, lib/nf4_regs.wgsl, bench/bench_nf4_dequant.wgsl). Layout and order follow
// bitsandbytes (functional.py dequantize_4bit with double quantization, csrc kDequantizeBlockwise): W flattened
// row-major in blocks of 64 consecutive elements, byte k = code[2k] << 4 | code[2k+1], bytes read from
// little-endian u32 words;
//   absmax[b] = f32(DYNAMIC_MAP[qabsmax[b]] * absmax2[b / 256]) + offset     (rounded product, then the add)
//   w         = NF4_CODE[code] * absmax[e / 64]
// Needs from the kernel: the bindings Wq (packed bytes), Qa (qabsmax bytes), absmax2, tables ([0,16): NF4 code,
// [16,272): dynamic map) and the uniform `p` with fields `zero` (an opaque 0) and `offset`.

fn absmax_of(block: u32) -> f32 {
  let q = (Qa[block >> 2u] >> ((block & 3u) * 8u)) & 0xffu;
  let prod = tables[16u + q] * absmax2[block >> 8u];
  // p.zero is 0 at run time but opaque to the compiler, so `prod + offset` cannot be contracted into an fma:
  // bitsandbytes rounds the product to f32 before adding the offset.
  return bitcast<f32>(bitcast<u32>(prod) ^ p.zero) + p.offset;
}

// The 4-bit code of element i of a packed word (byte i/2 holds element i in its high nibble when i is even).
fn word_code(word: u32, i: u32) -> u32 {
  return (word >> ((i >> 1u) * 8u + select(0u, 4u, (i & 1u) == 0u))) & 0xfu;
}

// The 4-bit code of element ei of W (flat index).
fn nf4_code(ei: u32) -> u32 {
  let byte = (Wq[ei >> 3u] >> (((ei >> 1u) & 3u) * 8u)) & 0xffu;
  return select(byte & 0xfu, byte >> 4u, (ei & 1u) == 0u);
}
