// Embedding backward (token or position table): scatter-add of the output gradient into table rows,
//   table[v, c] (+)= sum over rows t with index[t] == v of dout[t, c]
// done as a deterministic gather (no atomics): the host groups the rows of dout by index into a CSR
// list (sorted unique indices, and for each, its rows in increasing order), and one invocation per
// (unique index, channel) sums its rows in that order. Rows of the table whose index does not occur
// are not touched here (the launcher clears the table first unless accumulating).
// ("(+)=" is "+=" when Params.accumulate != 0, "=" otherwise; the old value is then never read.)
//
// Layouts (row-major):
//   dout    [T, C]      f32 gradient of the embedding output
//   uniq    [U]         u32 distinct indices, ascending, each < the table's row count (host-checked)
//   offsets [U + 1]     u32 CSR offsets: the rows of uniq[k] are rowlist[offsets[k] .. offsets[k + 1])
//   rowlist [T]         u32 row indices of dout, grouped by index
//   table   [V, C]      f32 gradient table (dwte or dwpe); must not alias dout. Bound as rows v0.. only
//                       (a window of a table larger than one storage binding): row v0 starts at element
//                       tableBase of the binding, and a dispatch handles uniq[k0 .. U), the distinct
//                       indices inside the window; consecutive dispatches cover all of uniq.
//
// Bindings (group 0):
//   0 uniform Params { C, U, accumulate, k0, v0, tableBase: u32 }
//   1 storage read   dout: array<f32>
//   2 storage read   uniq: array<u32>
//   3 storage read   offsets: array<u32>
//   4 storage read   rowlist: array<u32>
//   5 storage rw     table: array<f32>
// Dispatch: ceil((U - k0)*C / 256) workgroups of 256 (one invocation per (k, c)), split over x/y by
//   `grid()`; i = gid.x + gid.y * nwg.x * 256, k = k0 + i / C, c = i % C. Adjacent invocations touch adjacent channels.

struct Params {
  C: u32,
  U: u32,
  accumulate: u32,
  k0: u32,
  v0: u32,
  tableBase: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> uniq: array<u32>;
@group(0) @binding(3) var<storage, read> offsets: array<u32>;
@group(0) @binding(4) var<storage, read> rowlist: array<u32>;
@group(0) @binding(5) var<storage, read_write> table: array<f32>;

@compute @workgroup_size(256)
fn embedding_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= (p.U - p.k0) * p.C) { return; }
  let k = p.k0 + i / p.C;
  let c = i % p.C;
  var s = 0.0;
  for (var j = offsets[k]; j < offsets[k + 1u]; j++) { s += dout[rowlist[j] * p.C + c]; }
  let o = (uniq[k] - p.v0) * p.C + p.tableBase + c;
  if (p.accumulate != 0u) { s += table[o]; }
  table[o] = s;
}
