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
//   0 uniform Params { rows: u32, cols: u32 }
//   1 storage read   x: array<f32>
//   2 storage rw     out: array<f32>
// Entries: `softmax`, `log_softmax` (same bindings).
// Dispatch: one workgroup of WG = 128 invocations per row, `rows` workgroups split over x/y by
//   `grid()`; row = wg.x + wg.y * nwg.x. Any cols >= 1 (GPT-2's vocabulary: 50257, ~393 per invocation).
//
// Each invocation streams its strided slice (c = lid, lid + WG, ...) keeping a running max m and a
// running sum l of exp(x - m) (online softmax: one exp per element, rescaling l when m grows; l is
// Kahan-compensated so its error stays ~1 ulp even over 50257 terms), writes
// (m, l) to workgroup memory, and after one barrier every invocation folds all WG pairs in the same
// order, so all hold bit-identical (m_r, l_r) with no further barrier. A second sweep writes the
// outputs. Invocations with no elements contribute (NEG, 0), which the fold ignores.
// Accuracy: log_softmax is within ~1 ulp of |log p| plus ~1e-6 of float64 (x - m is rounded to f32
// once, then log l subtracted): < 1e-5 absolute for |log p| < 64, ~8e-6 for |log p| < 128.

struct Params {
  rows: u32,
  cols: u32,
}

const WG: u32 = 128u;
// Below any real logit; exp(NEG - finite) underflows to 0 without producing inf or NaN.
const NEG: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> redM: array<f32, WG>;
var<workgroup> redL: array<f32, WG>;

// Kahan-compensated running sum: s.x = sum, s.y = lost low-order part (true sum ~ s.x - s.y).
// Scaling both parts by the same factor (when the running max grows) keeps the pair consistent.
fn kahanAdd(s: vec2<f32>, v: f32) -> vec2<f32> {
  let y = v - s.y;
  let t = s.x + y;
  return vec2<f32>(t, (t - s.x) - y);
}

// (max, sum of exp(x - max)) of row `row`, identical in every invocation. Call in uniform control flow.
fn rowStats(row: u32, lid: u32) -> vec2<f32> {
  let base = row * p.cols;
  var m = NEG;
  var s = vec2<f32>(0.0, 0.0);
  for (var c = lid; c < p.cols; c += WG) {
    let v = x[base + c];
    if (v > m) {
      s = kahanAdd(s * exp(m - v), 1.0);
      m = v;
    } else {
      s = kahanAdd(s, exp(v - m));
    }
  }
  redM[lid] = m;
  redL[lid] = s.x - s.y;
  workgroupBarrier();
  var M = NEG;
  var S = vec2<f32>(0.0, 0.0);
  for (var i = 0u; i < WG; i++) {
    let mi = redM[i];
    let li = redL[i];
    if (mi > M) {
      S = kahanAdd(S * exp(M - mi), li);
      M = mi;
    } else {
      S = kahanAdd(S, li * exp(mi - M));
    }
  }
  return vec2<f32>(M, S.x - S.y);
}

@compute @workgroup_size(WG)
fn softmax(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let st = rowStats(row, lid);
  let inv = 1.0 / st.y;
  let base = row * p.cols;
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
  let st = rowStats(row, lid);
  let logL = log(st.y);
  let base = row * p.cols;
  for (var c = lid; c < p.cols; c += WG) {
    out[base + c] = (x[base + c] - st.x) - logL;
  }
}
