// Fused log-softmax + negative log-likelihood over the last dimension, and its gradient:
//   losses[r]     = -log softmax(logits[r])[t_r] = log(l_r) - (logits[r, t_r] - m_r)
//   dlogits[r, c] = scale * (softmax(logits[r])[c] - (c == t_r ? 1 : 0))
//                 = scale * (exp(logits[r, c] - m_r) / l_r - onehot)
// with m_r = max_c logits[r, c], l_r = sum_c exp(logits[r, c] - m_r), t_r = targets[r].
// t_r = 0xFFFFFFFF (IGNORE) marks a row that does not count: losses[r] = 0, dlogits[r, :] = 0.
// Any other t_r >= cols is a caller bug the kernel cannot throw for: losses[r] and dlogits[r, :] are
// NaN, so it shows up in the loss instead of training on garbage.
//
// Layouts (row-major):
//   logits  [rows, cols] f32
//   targets [rows]       u32
//   losses  [rows]       f32
//   dlogits [rows, cols] f32   must not alias logits
//
// Bindings (group 0):
//   0 uniform Params { rows: u32, cols: u32, scale: f32, one: f32 (always 1.0, see lib/kahan.wgsl) }
//   1 storage read   logits:  array<f32>
//   2 storage read   targets: array<u32>
//   3 storage rw     losses:  array<f32>
//   4 storage rw     dlogits: array<f32>   (entry `cross_entropy` only)
// Entries: `cross_entropy` (losses and gradient), `cross_entropy_loss` (losses only, bindings 0-3).
// Dispatch: one workgroup of WG (default 128) per row, `rows` workgroups split over x/y by
//   `grid()`; row = wg.x + wg.y * nwg.x. Any cols >= 1 (GPT-2's vocabulary: 50257).
//
// Row statistics (m_r, l_r) come from lib/online_softmax.wgsl, as in softmax.wgsl (online softmax,
// Kahan-compensated sum, bit-identical in every invocation of the row's workgroup). Deterministic.
// Accuracy: losses within ~1 ulp of the loss plus ~1e-6 of float64 (< 1e-5 absolute for losses < 64);
// dlogits within ~1e-7 of scale (absolute).

struct Params {
  rows: u32,
  cols: u32,
  scale: f32,
  // Always 1.0 (set by the launcher): keeps the Kahan compensation from being folded away.
  one: f32,
}

// Lanes per row: an override set per adapter by src/gpu/row_workgroup.ts (wide on GPUs, one SIMD vector
// on CPU adapters), the default otherwise.
override WG: u32 = 128u;
const IGNORE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

//#include "lib/online_softmax.wgsl"
//#include "lib/nan.wgsl"

// The input lib/online_softmax.wgsl reads.
fn rowValue(i: u32) -> f32 {
  return logits[i];
}

// Loss of row `row` given its target and statistics.
fn rowLoss(row: u32, t: u32, st: vec2<f32>) -> f32 {
  if (t == IGNORE) { return 0.0; }
  if (t >= p.cols) { return quietNan(); } // NaN: target out of range
  return log(st.y) - (logits[row * p.cols + t] - st.x);
}

@compute @workgroup_size(WG)
fn cross_entropy(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  // Statistics are computed even for ignored rows: keeps the barrier in uniform control flow.
  let st = rowStats(row * p.cols, p.cols, lid, p.one);
  let t = targets[row];
  if (lid == 0u) { losses[row] = rowLoss(row, t, st); }
  let base = row * p.cols;
  if (t == IGNORE) {
    for (var c = lid; c < p.cols; c += WG) { dlogits[base + c] = 0.0; }
  } else if (t >= p.cols) {
    for (var c = lid; c < p.cols; c += WG) { dlogits[base + c] = quietNan(); }
  } else {
    let inv = 1.0 / st.y;
    for (var c = lid; c < p.cols; c += WG) {
      let prob = exp(logits[base + c] - st.x) * inv;
      dlogits[base + c] = p.scale * (prob - select(0.0, 1.0, c == t));
    }
  }
}

@compute @workgroup_size(WG)
fn cross_entropy_loss(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let st = rowStats(row * p.cols, p.cols, lid, p.one);
  if (lid == 0u) { losses[row] = rowLoss(row, targets[row], st); }
}
