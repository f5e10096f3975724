// Operand values that every invocation of a register-blocked workgroup needs (the same addresses for all of
// them: nf4_matmul_regblock.wgsl's x, nf4_matmul_dx_regblock.wgsl's dY), shared through the subgroup: each
// lane loads and converts one value, and subgroupBroadcast hands it to every lane. On lavapipe a buffer load
// costs ~10 instructions per lane, uniform address or not, and a broadcast is a register extract, so the NF4
// kernels run 1.3–1.8x faster (BENCHMARKS.md, "Subgroups").
// The host appends this file, or kernels/lib/row8_load.wgsl (same names, every invocation loads for itself),
// to a kernel that says `// #include row8` (src/gpu/kernel.ts); this one only when the device's subgroups are
// at least 8 wide, so a workgroup of WG = 8 invocations is one subgroup holding lanes 0..7.
// The kernel defines `struct V8 { lo: vec4f, hi: vec4f }`, `fn fetch1(i: u32) -> f32` (element i as the kernel
// uses it: converted, rounded); its entry point takes `r8: Row8`; fetch8 and rows_at are called in uniform
// control flow.

struct Row8 {
  @builtin(subgroup_invocation_id) lane: u32,
}

fn share8(v: f32) -> V8 {
  return V8(vec4f(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u),
                  subgroupBroadcast(v, 3u)),
            vec4f(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u),
                  subgroupBroadcast(v, 7u)));
}

// Eight consecutive elements of a row: fetch1(base + j) for j = 0..7.
fn fetch8(base: u32, r: Row8) -> V8 {
  return share8(fetch1(base + r.lane));
}

// The offsets of a workgroup's `count` ≤ 8 rows (prepared once by row_offsets) and one element of each
// (rows_at): component m = fetch1(o[m] + k) for m < count, the others repeating row count − 1. Here each lane
// keeps the offset of its own row.
struct Rows { mine: u32 }

fn row_offsets(o: array<u32, 8>, count: u32, r: Row8) -> Rows {
  return Rows(o[min(r.lane, count - 1u)]);
}

fn rows_at(rows: Rows, k: u32) -> V8 {
  return share8(fetch1(rows.mine + k));
}
