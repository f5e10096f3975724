// The fallback of kernels/lib/row8_subgroup.wgsl (read its header) for devices without subgroups at least 8
// lanes wide, or MAIEUTIC_SUBGROUPS=0: the same functions, every invocation loading the values itself.

struct Row8 {
  @builtin(local_invocation_index) li: u32,
}

// Eight consecutive elements of a row: fetch1(base + j) for j = 0..7.
fn fetch8(base: u32, r: Row8) -> V8 {
  return V8(vec4f(fetch1(base), fetch1(base + 1u), fetch1(base + 2u), fetch1(base + 3u)),
            vec4f(fetch1(base + 4u), fetch1(base + 5u), fetch1(base + 6u), fetch1(base + 7u)));
}

// The offsets of a workgroup's `count` ≤ 8 rows (row_offsets) and one element of each (rows_at): component
// m = fetch1(o[m] + k) for m < count, the others repeating row count − 1 (loaded only when count > 4).
struct Rows { o: array<u32, 8>, count: u32 }

fn row_offsets(o: array<u32, 8>, count: u32, r: Row8) -> Rows {
  return Rows(o, count);
}

fn rows_at(rows: Rows, k: u32) -> V8 {
  let o = rows.o;
  let c = rows.count - 1u;
  let lo = vec4f(fetch1(o[0] + k), fetch1(o[min(1u, c)] + k), fetch1(o[min(2u, c)] + k),
                 fetch1(o[min(3u, c)] + k));
  var hi = vec4f(lo[min(c, 3u)]); // count ≤ 4: row count − 1 again, no load
  if (rows.count > 4u) {
    hi = vec4f(fetch1(o[4] + k), fetch1(o[min(5u, c)] + k), fetch1(o[min(6u, c)] + k), fetch1(o[min(7u, c)] + k));
  }
  return V8(lo, hi);
}
