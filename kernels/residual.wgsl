// Residual add: out[i] = a[i] + b[i] (out may alias neither input; in-place adds use `add_inplace`).
//
// Bindings (group 0):
//   0 uniform Params { n: u32 }       element count
//   1 storage read   a: array<f32>    [n]
//   2 storage read   b: array<f32>    [n]
//   3 storage rw     out: array<f32>  [n]       (entry `add`)
//   For `add_inplace`: 1 = acc (rw, acc += b), 2 = b.
// Dispatch: ceil(n / 256) workgroups of 256, split over x/y by `grid()`; index = gid.x + gid.y * nwg.x * 256.

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) { out[i] = a[i] + b[i]; }
}
