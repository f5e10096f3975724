// Workgroup-wide reductions in workgroup memory, for adapters without the `subgroups` feature (and for
// MAIEUTIC_SUBGROUPS=0). The host appends this file, or kernels/lib/reduce_subgroup.wgsl, to a kernel that
// says `// #include reduce` (src/gpu/kernel.ts); both define the same names, so a kernel is written once:
//   - the entry point takes `lanes: Lanes` (its builtins differ between the two files);
//   - the kernel defines WG (const or override, a power of two), its workgroup size;
//   - every invocation calls a reduction, in uniform control flow (they contain barriers); each call starts
//     with a barrier, so calls may follow each other without the kernel adding one.
// Sums here are trees over the invocations (pairwise: lane i adds lane i + s), as in llm.c's block reductions.

struct Lanes {
  @builtin(local_invocation_index) li: u32,
}

var<workgroup> reduce_one: array<f32, WG>;
var<workgroup> reduce_many: array<f32, 32u * WG>; // [value][invocation]

// Σ v over the workgroup, returned to every invocation.
fn wg_sum(v: f32, l: Lanes) -> f32 {
  workgroupBarrier();
  reduce_one[l.li] = v;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (l.li < s) { reduce_one[l.li] += reduce_one[l.li + s]; }
  }
  workgroupBarrier();
  return reduce_one[0];
}

// max v over the workgroup, returned to every invocation.
fn wg_max(v: f32, l: Lanes) -> f32 {
  workgroupBarrier();
  reduce_one[l.li] = v;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (l.li < s) { reduce_one[l.li] = max(reduce_one[l.li], reduce_one[l.li + s]); }
  }
  workgroupBarrier();
  return reduce_one[0];
}

// n ≤ 32 sums at once (a register block of partial dot products, as in kernels/matvec.wgsl): invocation
// i < n gets Σ over the workgroup of (*acc)[i]; the others get 0.
fn wg_sum_n(acc: ptr<function, array<f32, 32>>, n: u32, l: Lanes) -> f32 {
  workgroupBarrier();
  for (var v = 0u; v < n; v++) { reduce_many[v * WG + l.li] = (*acc)[v]; }
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (l.li < s) {
      for (var v = 0u; v < n; v++) { reduce_many[v * WG + l.li] += reduce_many[v * WG + l.li + s]; }
    }
  }
  workgroupBarrier();
  var t = 0.0;
  if (l.li < n) { t = reduce_many[l.li * WG]; }
  return t;
}
