// Softmax and log-softmax over the last dimension, numerically stable (row max subtracted):
//   softmax:     out[r, c] = exp(x[r, c] - m_r) / l_r
//   log_softmax: out[r, c] = (x[r, c] - m_r) - log(l_r)
// with m_r = max_c x[r, c] and l_r = sum_c exp(x[r, c] - m_r).
//
// Layouts (row-major, f32):
//   x   [rows, cols]
//   out [rows, cols]   must not alias x
//
// Bindings (group 0):
//   0 uniform Params { rows: u32, cols: u32, one: f32 (always 1.0, see lib/kahan.wgsl) }
//   1 storage read   x: array<f32>
//   2 storage rw     out: array<f32>
// Entries: `softmax`, `log_softmax` (same bindings).
// Dispatch: one workgroup of WG (default 128) per row, `rows` workgroups split over x/y by
//   `grid()`; row = wg.x + wg.y * nwg.x. Any cols >= 1 (GPT-2's vocabulary: 50257, ~393 per invocation at WG 128).
//
// Row statistics (m_r, l_r) come from lib/online_softmax.wgsl (online softmax, Kahan-compensated sum,
// bit-identical in every invocation of the row's workgroup); a second sweep writes the outputs.
// Accuracy: log_softmax is within ~1 ulp of |log p| plus ~1e-6 of float64 (x - m is rounded to f32
// once, then log l subtracted): < 1e-5 absolute for |log p| < 64, ~8e-6 for |log p| < 128.

struct Params {
  rows: u32,
  cols: u32,
  // Always 1.0 (set by the launcher): keeps the Kahan compensation from being folded away.
  one: f32,
}

// Lanes per row: an override set per adapter by src/gpu/row_workgroup.ts (wide on GPUs, one SIMD vector
// on CPU adapters), the default otherwise.
override WG: u32 = 128u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

//#include "lib/online_softmax.wgsl"

// The input lib/online_softmax.wgsl reads.
fn rowValue(i: u32) -> f32 {
  return x[i];
}

@compute @workgroup_size(WG)
fn softmax(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let st = rowStats(base, p.cols, lid, p.one);
  let inv = 1.0 / st.y;
  for (var c = lid; c < p.cols; c += WG) {
    out[base + c] = exp(x[base + c] - st.x) * inv;
  }
}

@compute @workgroup_size(WG)
fn log_softmax(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  let st = rowStats(base, p.cols, lid, p.one);
  let logL = log(st.y);
  for (var c = lid; c < p.cols; c += WG) {
    out[base + c] = (x[base + c] - st.x) - logL;
  }
}
