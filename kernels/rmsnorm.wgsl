// RMS norm forward (HF LlamaRMSNorm, all in f32): for each row r of length n = cols,
//   rstd_r = 1 / sqrt(sum_c x[r, c]^2 / n + eps),   out[r, c] = weight[c] * (x[r, c] * rstd_r)
// (eps inside the square root; no mean subtraction, no bias; the product order is HF's:
// normalise first, then scale).
//
// Row addressing (so the norm can run on heads inside a wider buffer, e.g. Qwen3's per-head q/k norm on
// the fused qkv buffer): row i starts at element
//   start(i) = offset + (i / rowsPerGroup) * groupStride + (i % rowsPerGroup) * rowStride
// in both x and out; its n elements are contiguous. Dense rows are offset 0, rowsPerGroup = rows,
// rowStride = cols. Only the addressed elements of out are written. The launcher checks that rows do
// not overlap and fit the buffers.
//
// Layouts (f32):
//   x      addressed rows as above
//   weight [cols]
//   out    same addressing as x; must not alias x
//   stats  [rows]    per row rstd   (entry `rmsnorm_stats` only), dense
//
// Bindings (group 0):
//   0 uniform Params { rows, cols: u32, eps: f32, offset, rowsPerGroup, groupStride, rowStride: u32 }
//   1 storage read   x: array<f32>
//   2 storage read   weight: array<f32>
//   3 storage rw     out: array<f32>
//   4 storage rw     stats: array<f32>    (entry `rmsnorm_stats` only)
// Dispatch: one workgroup of WG (default 64) per row, `rows` workgroups split over x/y by `grid()`;
//   row = wg.x + wg.y * nwg.x.
//
// Reduction: each invocation sums the squares of a strided slice of the row (c = lid, lid + WG, ...),
// writes its partial to workgroup memory, and after one barrier every invocation folds all WG partials
// in the same order, so all hold the bit-identical total with no broadcast barrier.

struct Params {
  rows: u32,
  cols: u32,
  eps: f32,
  offset: u32,
  rowsPerGroup: u32,
  groupStride: u32,
  rowStride: u32,
}

// Lanes per row: an override set per adapter by src/gpu/row_workgroup.ts (wide on GPUs, one SIMD vector
// on CPU adapters), the default otherwise.
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

var<workgroup> redSq: array<f32, WG>;

fn rowStart(row: u32) -> u32 {
  return p.offset + (row / p.rowsPerGroup) * p.groupStride + (row % p.rowsPerGroup) * p.rowStride;
}

// Normalises row `row` into `out` and returns its rstd. Must be called in uniform control flow.
fn normRow(row: u32, lid: u32) -> f32 {
  let n = p.cols;
  let base = rowStart(row);
  var q = 0.0;
  for (var c = lid; c < n; c += WG) {
    let v = x[base + c];
    q += v * v;
  }
  redSq[lid] = q;
  workgroupBarrier();
  var qt = 0.0;
  for (var i = 0u; i < WG; i++) { qt += redSq[i]; }
  let rstd = 1.0 / sqrt(qt / f32(n) + p.eps);
  for (var c = lid; c < n; c += WG) {
    out[base + c] = weight[c] * (x[base + c] * rstd);
  }
  return rstd;
}

@compute @workgroup_size(WG)
fn rmsnorm(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  _ = normRow(row, lid);
}

@compute @workgroup_size(WG)
fn rmsnorm_stats(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let rstd = normRow(row, lid);
  if (lid == 0u) { stats[row] = rstd; }
}
