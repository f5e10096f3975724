// Scaled embedding lookup for one chunk of the table (transformers modeling_gemma2.py Gemma2Model.forward:
// `inputs_embeds * hidden_size**0.5`):
//   out[n, :] = table[ids[n] − rowStart, :] · scale     for every token n with rowStart ≤ ids[n] < rowStart + rows
// Tokens whose id is outside this chunk are left untouched, so one dispatch per chunk fills the output.
// The 256000 × 2304 table is held as several buffers (each ≤ maxStorageBufferBindingSize) of contiguous rows.
// The table is read as 32-bit words so one kernel serves every storage format without the half-precision
// shader feature: FMT 0 = f32, 1 = IEEE half (two per word, low half first, via unpack2x16float), 2 = bfloat16
// (the top 16 bits of an f32). Output f32 [tokens, dim]. One workgroup per token (folded grid).

struct Params { tokens: u32, dim: u32, rowStart: u32, rows: u32, scale: f32 }

override WG: u32 = 256u;
override FMT: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn load(e: u32) -> f32 {
  if (FMT == 0u) { return bitcast<f32>(table[e]); }
  let word = table[e / 2u];
  if (FMT == 1u) { return unpack2x16float(word)[e % 2u]; }
  return bitcast<f32>(select(word << 16u, word & 0xffff0000u, e % 2u == 1u));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let n = wg.x + wg.y * nwg.x;
  if (n >= p.tokens) { return; }
  let id = ids[n];
  // id − rowStart wraps around for ids below the chunk, so one comparison covers both ends.
  let local = id - p.rowStart;
  if (local >= p.rows) { return; }
  let src = local * p.dim;
  let dst = n * p.dim;
  for (var c = li; c < p.dim; c += WG) {
    out[dst + c] = load(src + c) * p.scale;
  }
}
