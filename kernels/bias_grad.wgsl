// Bias gradient: column sums of the upstream gradient,
//   dbias[c] (+)= sum_r dout[r, c]
// ("(+)=" is "+=" when Params.accumulate != 0, "=" otherwise; the old dbias is then never read).
//
// Layouts (row-major, f32):
//   dout  [rows, cols]
//   dbias [cols]         must not alias dout
//
// Bindings (group 0):
//   0 uniform Params { rows: u32, cols: u32, accumulate: u32 }
//   1 storage read   dout: array<f32>
//   2 storage rw     dbias: array<f32>
// Dispatch: workgroups of (CB = 32 columns) x (RS = 8 row lanes), ceil(cols / 32) workgroups split
//   over x/y by `grid()`; block = wg.x + wg.y * nwg.x, c = block * 32 + lid.x.
//
// Reduction (deterministic, no atomics): lane ly sums rows ly, ly + RS, ly + 2 RS, ... of column c in
// order; after one barrier lane 0 folds the RS partials in order and writes. Adjacent invocations
// read adjacent columns, so every row read is coalesced.

struct Params {
  rows: u32,
  cols: u32,
  accumulate: u32,
}

const CB: u32 = 32u;
// Row lanes per column: an override set per adapter by src/gpu/row_workgroup.ts (8 on GPUs, 1 on CPU
// adapters, where the lanes of a workgroup share one core and the barrier's fold is pure overhead).
override RS: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbias: array<f32>;

var<workgroup> part: array<array<f32, CB>, RS>;

@compute @workgroup_size(CB, RS)
fn bias_grad(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let block = wg.x + wg.y * nwg.x;
  let c = block * CB + lid.x;
  let n = p.cols;
  var s = 0.0;
  if (c < n) {
    for (var r = lid.y; r < p.rows; r += RS) { s += dout[r * n + c]; }
  }
  part[lid.y][lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && c < n) {
    var t = 0.0;
    for (var i = 0u; i < RS; i++) { t += part[i][lid.x]; }
    if (p.accumulate != 0u) { t += dbias[c]; }
    dbias[c] = t;
  }
}
