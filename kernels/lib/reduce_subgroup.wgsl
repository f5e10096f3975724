// Workgroup-wide reductions with subgroup operations (WebGPU's `subgroups` feature): each subgroup adds its
// lanes with subgroupAdd / subgroupMax (no workgroup memory, no barrier), its lane 0 writes one partial, and
// every invocation adds the partials of the workgroup's subgroups in order. Two barriers per call instead of
// log2(WG) + 1. The same names and rules as kernels/lib/reduce_workgroup.wgsl (read its header); this file
// holds no size assumption: subgroups are 4..128 lanes wide depending on the hardware (8 on lavapipe, 32 on
// NVIDIA, 32 or 64 on AMD), and the partials are summed in subgroup order, so a result is deterministic on a
// given adapter.
// Naga accepts the subgroup builtins once the device has the feature; it rejects `enable subgroups;`
// ("not yet implemented"), so the file has no enable directive.

struct Lanes {
  @builtin(local_invocation_index) li: u32,
  @builtin(subgroup_id) sg: u32,
  @builtin(num_subgroups) nsg: u32,
  @builtin(subgroup_invocation_id) lane: u32,
}

var<workgroup> reduce_one: array<f32, WG>;        // [subgroup]
var<workgroup> reduce_many: array<f32, 32u * WG>; // [value][subgroup]

// Σ v over the workgroup, returned to every invocation.
fn wg_sum(v: f32, l: Lanes) -> f32 {
  let s = subgroupAdd(v);
  workgroupBarrier();
  if (l.lane == 0u) { reduce_one[l.sg] = s; }
  workgroupBarrier();
  var t = 0.0;
  for (var g = 0u; g < l.nsg; g++) { t += reduce_one[g]; }
  return t;
}

// max v over the workgroup, returned to every invocation.
fn wg_max(v: f32, l: Lanes) -> f32 {
  let s = subgroupMax(v);
  workgroupBarrier();
  if (l.lane == 0u) { reduce_one[l.sg] = s; }
  workgroupBarrier();
  var t = reduce_one[0];
  for (var g = 1u; g < l.nsg; g++) { t = max(t, reduce_one[g]); }
  return t;
}

// n ≤ 32 sums at once: invocation i < n gets Σ over the workgroup of (*acc)[i]; the others get 0.
fn wg_sum_n(acc: ptr<function, array<f32, 32>>, n: u32, l: Lanes) -> f32 {
  workgroupBarrier();
  for (var v = 0u; v < n; v++) {
    let s = subgroupAdd((*acc)[v]);
    if (l.lane == 0u) { reduce_many[v * WG + l.sg] = s; }
  }
  workgroupBarrier();
  var t = 0.0;
  if (l.li < n) {
    for (var g = 0u; g < l.nsg; g++) { t += reduce_many[l.li * WG + g]; }
  }
  return t;
}
