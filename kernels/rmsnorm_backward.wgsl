// RMS norm backward (matching kernels/rmsnorm.wgsl). With the forward's per-row rstd_r,
// xhat[r, c] = x[r, c] * rstd_r and g = dout * weight:
//   dx[r, c]     (+)= rstd_r * (g[r, c] - xhat[r, c] * mean_c(g[r, :] * xhat[r, :]))
//   dweight[c]   (+)= sum_r dout[r, c] * xhat[r, c]
// (from d rstd / d x[c] = -rstd^3 x[c] / n). "(+)=" is "+=" when Params.accumulate != 0 (the outputs'
// old values are read and added to), "=" otherwise (the old values are never read, so they may be NaN).
//
// Row addressing as in the forward: row i starts at
//   start(i) = offset + (i / rowsPerGroup) * groupStride + (i % rowsPerGroup) * rowStride
// identically in dout, x and dx; stats stay dense [rows]. Only the addressed elements of dx are written.
//
// Layouts (f32):
//   dout, x, dx   addressed rows (dx must not alias any input)
//   stats  [rows]   per row rstd, as written by the forward's `rmsnorm_stats` entry
//   weight [cols]
//   dweight [cols]
//
// Bindings (group 0); the two entries share 0-3 and give 4-5 different meanings (WGSL forbids binding
// aliases only within one entry point's interface):
//   0 uniform Params { rows, cols, offset, rowsPerGroup, groupStride, rowStride, accumulate: u32 }
//   1 storage read   dout: array<f32>
//   2 storage read   x: array<f32>
//   3 storage read   stats: array<f32>
//   entry `rmsnorm_backward`:         4 storage read weight, 5 storage rw dx
//   entry `rmsnorm_backward_params`:  4 storage rw dweight
//
// Dispatch:
//   `rmsnorm_backward`: one workgroup of WG (default 64) per row, `rows` workgroups split over x/y by `grid()`;
//     row = wg.x + wg.y * nwg.x. Strided partial sums, one barrier, every invocation folds all WG
//     partials in the same order (bit-identical totals, no broadcast barrier).
//   `rmsnorm_backward_params`: workgroups of (CB = 32 columns) x (RS = 8 row lanes), ceil(cols / 32)
//     workgroups split by `grid()`; block = wg.x + wg.y * nwg.x. Lane ly sums rows ly, ly + RS, ... of
//     its column; after one barrier lane 0 folds the RS partials in order. Deterministic, no atomics.

struct Params {
  rows: u32,
  cols: u32,
  offset: u32,
  rowsPerGroup: u32,
  groupStride: u32,
  rowStride: u32,
  accumulate: u32,
}

// Lanes per row: an override set per adapter by src/gpu/row_workgroup.ts (wide on GPUs, one SIMD vector
// on CPU adapters), the default otherwise.
override WG: u32 = 64u;
const CB: u32 = 32u;
// Row lanes per column: an override set per adapter by src/gpu/row_workgroup.ts (8 on GPUs, 1 on CPU
// adapters, where the lanes of a workgroup share one core and the barrier's fold is pure overhead).
override RS: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> dweight: array<f32>;

var<workgroup> redGX: array<f32, WG>;
var<workgroup> partW: array<array<f32, CB>, RS>;

fn rowStart(row: u32) -> u32 {
  return p.offset + (row / p.rowsPerGroup) * p.groupStride + (row % p.rowsPerGroup) * p.rowStride;
}

@compute @workgroup_size(WG)
fn rmsnorm_backward(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let n = p.cols;
  let base = rowStart(row);
  let rstd = stats[row];

  var sgx = 0.0;
  for (var c = lid; c < n; c += WG) {
    sgx += dout[base + c] * weight[c] * (x[base + c] * rstd);
  }
  redGX[lid] = sgx;
  workgroupBarrier();
  var tgx = 0.0;
  for (var i = 0u; i < WG; i++) { tgx += redGX[i]; }
  let meanGX = tgx / f32(n);

  for (var c = lid; c < n; c += WG) {
    let xhat = x[base + c] * rstd;
    var v = rstd * (dout[base + c] * weight[c] - xhat * meanGX);
    if (p.accumulate != 0u) { v += dx[base + c]; }
    dx[base + c] = v;
  }
}

@compute @workgroup_size(CB, RS)
fn rmsnorm_backward_params(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let block = wg.x + wg.y * nwg.x;
  let c = block * CB + lid.x;
  var sw = 0.0;
  if (c < p.cols) {
    for (var r = lid.y; r < p.rows; r += RS) {
      let o = rowStart(r) + c;
      sw += dout[o] * (x[o] * stats[r]);
    }
  }
  partW[lid.y][lid.x] = sw;
  workgroupBarrier();
  if (lid.y == 0u && c < p.cols) {
    var tw = 0.0;
    for (var i = 0u; i < RS; i++) { tw += partW[i][lid.x]; }
    if (p.accumulate != 0u) { tw += dweight[c]; }
    dweight[c] = tw;
  }
}
