// Small elementwise kernels the engine strings between the big ones, over n contiguous f32 values
// (bindings may be views at 256-byte-aligned offsets). One invocation per element (per pair for `cast_half`),
// folded 1-D grid. Entry points and their storage bindings:
//   axpy      (x, y):  y[i] += alpha · x[i]      residual adds and gradient accumulation (x must not alias y)
//   scale     (y):     y[i] *= alpha
//   fill      (y):     y[i]  = alpha
//   cast_half (x, y):  y = x rounded to IEEE half, two per 32-bit word (pack2x16float), saturated to ±65504
//                      so that large activations never become Inf. Written as words, so it needs no
//                      half-precision shader feature; for odd n the upper half of the last word is set to 0.

struct Params { n: u32, alpha: f32 }

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;

fn index(wg: vec3u, nwg: vec3u, li: u32) -> u32 {
  return (wg.x + wg.y * nwg.x) * WG + li;
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn axpy(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i < p.n) { y[i] = fma(p.alpha, x[i], y[i]); }
}

// `scale` and `fill` bind y at binding 1.
@group(0) @binding(1) var<storage, read_write> y1: array<f32>;

@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i < p.n) { y1[i] *= p.alpha; }
}

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = index(wg, nwg, li);
  if (i < p.n) { y1[i] = p.alpha; }
}

@group(0) @binding(2) var<storage, read_write> packed: array<u32>;

@compute @workgroup_size(WG)
fn cast_half(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) li: u32) {
  let k = index(wg, nwg, li);
  let i = 2u * k;
  if (i >= p.n) { return; }
  let lo = x[i];
  let hi = select(0.0, x[min(i + 1u, p.n - 1u)], i + 1u < p.n);
  packed[k] = pack2x16float(clamp(vec2f(lo, hi), vec2f(-65504.0), vec2f(65504.0)));
}
