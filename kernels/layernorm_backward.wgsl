// Layer norm backward (GPT-2 semantics, matching kernels/layernorm.wgsl). With the forward's per-row
// stats (mean_r, rstd_r), xhat[r, c] = (x[r, c] - mean_r) * rstd_r and g = dout * gamma:
//   dx[r, c]  (+)= rstd_r * (g[r, c] - mean_c(g[r, :]) - xhat[r, c] * mean_c(g[r, :] * xhat[r, :]))
//   dgamma[c] (+)= sum_r dout[r, c] * xhat[r, c]
//   dbeta[c]  (+)= sum_r dout[r, c]
// "(+)=" is "+=" when Params.accumulate != 0 (the outputs' old values are read and added to),
// "=" otherwise (the old values are never read, so they may be NaN).
//
// Layouts (row-major, f32):
//   dout   [rows, cols]   gradient of the layer norm output
//   x      [rows, cols]   the forward's input
//   stats  [rows, 2]      per row (mean, rstd), as written by the forward's `layernorm_stats` entry
//   gamma  [cols]
//   dx     [rows, cols]   must not alias any input
//   dgamma [cols], dbeta [cols]
//
// Bindings (group 0); the two entries share 0-3 and give 4-5 different meanings (WGSL forbids
// binding aliases only within one entry point's interface):
//   0 uniform Params { rows: u32, cols: u32, accumulate: u32 }
//   1 storage read   dout: array<f32>
//   2 storage read   x: array<f32>
//   3 storage read   stats: array<f32>
//   entry `layernorm_backward`:         4 storage read gamma, 5 storage rw dx
//   entry `layernorm_backward_params`:  4 storage rw dgamma,  5 storage rw dbeta
//
// Dispatch:
//   `layernorm_backward`: one workgroup of WG (default 64) per row, `rows` workgroups split over x/y by
//     `grid()`; row = wg.x + wg.y * nwg.x. Each invocation sums a strided slice of the row into two
//     workgroup partial arrays; after one barrier every invocation folds all WG partials in the same
//     order (bit-identical totals, no broadcast barrier).
//   `layernorm_backward_params`: workgroups of (CB = 32 columns) x (RS = 8 row lanes), ceil(cols / 32)
//     workgroups split by `grid()`; block = wg.x + wg.y * nwg.x. Lane ly sums rows ly, ly + RS, ...
//     of its column; after one barrier lane 0 folds the RS partials in order. Deterministic, no
//     atomics; adjacent invocations read adjacent columns (coalesced).

struct Params {
  rows: u32,
  cols: u32,
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
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbeta: array<f32>;

var<workgroup> redG: array<f32, WG>;
var<workgroup> redGX: array<f32, WG>;
var<workgroup> partG: array<array<f32, CB>, RS>;
var<workgroup> partB: array<array<f32, CB>, RS>;

@compute @workgroup_size(WG)
fn layernorm_backward(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let n = p.cols;
  let base = row * n;
  let mean = stats[2u * row];
  let rstd = stats[2u * row + 1u];

  var sg = 0.0;
  var sgx = 0.0;
  for (var c = lid; c < n; c += WG) {
    let g = dout[base + c] * gamma[c];
    sg += g;
    sgx += g * ((x[base + c] - mean) * rstd);
  }
  redG[lid] = sg;
  redGX[lid] = sgx;
  workgroupBarrier();
  var tg = 0.0;
  var tgx = 0.0;
  for (var i = 0u; i < WG; i++) {
    tg += redG[i];
    tgx += redGX[i];
  }
  let meanG = tg / f32(n);
  let meanGX = tgx / f32(n);

  for (var c = lid; c < n; c += WG) {
    let xhat = (x[base + c] - mean) * rstd;
    var v = rstd * (dout[base + c] * gamma[c] - meanG - xhat * meanGX);
    if (p.accumulate != 0u) { v += dx[base + c]; }
    dx[base + c] = v;
  }
}

@compute @workgroup_size(CB, RS)
fn layernorm_backward_params(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let block = wg.x + wg.y * nwg.x;
  let c = block * CB + lid.x;
  let n = p.cols;
  var sg = 0.0;
  var sb = 0.0;
  if (c < n) {
    for (var r = lid.y; r < p.rows; r += RS) {
      let d = dout[r * n + c];
      sb += d;
      sg += d * ((x[r * n + c] - stats[2u * r]) * stats[2u * r + 1u]);
    }
  }
  partG[lid.y][lid.x] = sg;
  partB[lid.y][lid.x] = sb;
  workgroupBarrier();
  if (lid.y == 0u && c < n) {
    var tg = 0.0;
    var tb = 0.0;
    for (var i = 0u; i < RS; i++) {
      tg += partG[i][lid.x];
      tb += partB[i][lid.x];
    }
    if (p.accumulate != 0u) {
      tg += dgamma[c];
      tb += dbeta[c];
    }
    dgamma[c] = tg;
    dbeta[c] = tb;
  }
}
