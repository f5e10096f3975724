// Fused lm_head cross-entropy, pass 2, one vocab chunk: turn the chunk's recomputed pre-cap logits z
// [rows, cols] into d loss / d z in place, for the host's following matmul dh += dz · E[v0 .. v0+cols).
//
//   y = tanh(z/c)·c,  p = exp(y − lse)                 (lse from pass 1, cross_entropy_finalize.wgsl)
//   dz = scale · (p − [v0 + col == target]) · (1 − tanh²(z/c))      (cap = 0: no softcap, factor 1)
//   dz = 0 on rows whose target is outside [0, V) (ignore_index −100)
//
// This is torch's CrossEntropyLoss backward (softmax − onehot) chained through Gemma-2's final softcap
// (transformers modeling_gemma2.py); `scale` is the trainer's loss normalization (1 / target tokens of the
// accumulation window). One invocation per element; 1-D grid folded over x/y.

struct Params { rows: u32, cols: u32, v0: u32, V: u32, cap: f32, scale: f32 }

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> z: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * WG + li;
  if (i >= p.rows * p.cols) { return; }
  let row = i / p.cols;
  let col = i % p.cols;
  let t = targets[row];
  if (t < 0 || u32(t) >= p.V) {
    z[i] = 0.0;
    return;
  }
  let x = z[i];
  var y = x;
  var dcap = 1.0;
  if (p.cap > 0.0) {
    let th = tanh(clamp(x / p.cap, -15.0, 15.0));
    y = th * p.cap;
    dcap = 1.0 - th * th;
  }
  let prob = exp(y - lse[row]);
  let onehot = select(0.0, 1.0, u32(t) == p.v0 + col);
  z[i] = p.scale * (prob - onehot) * dcap;
}
