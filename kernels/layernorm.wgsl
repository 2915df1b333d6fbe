// Layer norm forward (GPT-2): out[r, c] = (x[r, c] - mean_r) * rstd_r * gamma[c] + beta[c], with
// mean_r = sum_c x[r, c] / cols, var_r = sum_c (x[r, c] - mean_r)^2 / cols (biased, two-pass) and
// rstd_r = 1 / sqrt(var_r + eps) (eps inside the square root).
//
// Layouts (row-major, f32):
//   x     [rows, cols]
//   gamma [cols], beta [cols]
//   out   [rows, cols]     must not alias x
//   stats [rows, 2]        per row (mean, rstd)   (entry `layernorm_stats` only)
//
// Bindings (group 0):
//   0 uniform Params { rows: u32, cols: u32, eps: f32 }
//   1 storage read   x: array<f32>
//   2 storage read   gamma: array<f32>
//   3 storage read   beta: array<f32>
//   4 storage rw     out: array<f32>
//   5 storage rw     stats: array<f32>    (entry `layernorm_stats` only)
// Dispatch: one workgroup of WG (default 64) per row, `rows` workgroups split over x/y by `grid()`;
//   row = wg.x + wg.y * nwg.x.
//
// Reduction: each invocation sums a strided slice of the row (c = lid, lid + WG, ...), writes its
// partial to workgroup memory, and after one barrier every invocation folds all WG partials in the
// same order, so all hold the bit-identical total with no broadcast barrier. Two reductions (sum,
// then sum of squared deviations about the mean) use separate arrays: 2 barriers per row in total.

struct Params {
  rows: u32,
  cols: u32,
  eps: f32,
}

// Lanes per row: an override set per adapter by src/gpu/row_workgroup.ts (wide on GPUs, one SIMD vector
// on CPU adapters), the default otherwise.
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

var<workgroup> redSum: array<f32, WG>;
var<workgroup> redSq: array<f32, WG>;

// Normalises row `row` into `out` and returns (mean, rstd). Must be called in uniform control flow.
fn normRow(row: u32, lid: u32) -> vec2<f32> {
  let n = p.cols;
  let base = row * n;
  var s = 0.0;
  for (var c = lid; c < n; c += WG) { s += x[base + c]; }
  redSum[lid] = s;
  workgroupBarrier();
  var tot = 0.0;
  for (var i = 0u; i < WG; i++) { tot += redSum[i]; }
  let mean = tot / f32(n);

  var q = 0.0;
  for (var c = lid; c < n; c += WG) {
    let d = x[base + c] - mean;
    q += d * d;
  }
  redSq[lid] = q;
  workgroupBarrier();
  var qt = 0.0;
  for (var i = 0u; i < WG; i++) { qt += redSq[i]; }
  let rstd = 1.0 / sqrt(qt / f32(n) + p.eps);

  for (var c = lid; c < n; c += WG) {
    out[base + c] = (x[base + c] - mean) * rstd * gamma[c] + beta[c];
  }
  return vec2<f32>(mean, rstd);
}

@compute @workgroup_size(WG)
fn layernorm(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  _ = normRow(row, lid);
}

@compute @workgroup_size(WG)
fn layernorm_stats(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let st = normRow(row, lid);
  if (lid == 0u) {
    stats[2u * row] = st.x;
    stats[2u * row + 1u] = st.y;
  }
}
