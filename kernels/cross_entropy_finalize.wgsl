// Fused lm_head cross-entropy, end of pass 1: per-row logsumexp and token loss from the running row state of
// cross_entropy_chunk_lse.wgsl, and the batch's summed loss and target count.
//
//   lse[r]       = m[r] + log(s[r])
//   tokenLoss[r] = lse[r] − y[r, target[r]]      0 when target[r] ∉ [0, V) (ignore_index −100)
//   loss[0]      = Σ_r tokenLoss[r],  loss[1] = #counted rows (f32, exact below 2^24)
//
// torch's CrossEntropyLoss(ignore_index=−100, reduction="sum"); the trainer divides by the target-token count
// of its whole accumulation window (docs/ARCHITECTURE.md#one-training-step). ACCUMULATE = 1 adds into loss[0..1] instead of overwriting,
// so one clear + one readback cover many micro-batches (or a whole eval split).
// One workgroup of WG invocations strides over the rows, then wg_sum. Entry `main_logprob` also writes
// labelLogprob[r] = y[r, target[r]] − lse[r] (0 when ignored), i.e. log_softmax at the label.

struct Params { rows: u32, V: u32 }

override ACCUMULATE: u32 = 0u;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read> state: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> tokenLoss: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> labelLogprob: array<f32>;

// #include reduce

fn counted(r: u32) -> bool {
  let t = targets[r];
  return t >= 0 && u32(t) < p.V;
}

fn row_lse(r: u32) -> f32 {
  return state[r] + log(state[p.rows + r]);
}

fn finalize(lanes: Lanes) {
  let li = lanes.li;
  var sum = 0.0;
  var count = 0.0;
  for (var r = li; r < p.rows; r += WG) {
    let l = row_lse(r);
    let c = counted(r);
    // select() never lets the unused target slot of an ignored row leak into the result.
    let tl = select(0.0, l - state[2u * p.rows + r], c);
    lse[r] = l;
    tokenLoss[r] = tl;
    sum += tl;
    count += select(0.0, 1.0, c);
  }
  let total = wg_sum(sum, lanes);
  let counted_rows = wg_sum(count, lanes);
  if (li == 0u) {
    if (ACCUMULATE == 1u) {
      loss[0] += total;
      loss[1] += counted_rows;
    } else {
      loss[0] = total;
      loss[1] = counted_rows;
    }
  }
}

@compute @workgroup_size(WG)
fn main(lanes: Lanes) {
  finalize(lanes);
}

@compute @workgroup_size(WG)
fn main_logprob(lanes: Lanes) {
  for (var r = lanes.li; r < p.rows; r += WG) {
    labelLogprob[r] = select(0.0, state[2u * p.rows + r] - row_lse(r), counted(r));
  }
  finalize(lanes);
}
