// In-place residual add: acc[i] += b[i].
//
// Bindings (group 0):
//   0 uniform Params { n: u32 }
//   1 storage rw   acc: array<f32>  [n]
//   2 storage read b:   array<f32>  [n]
// Dispatch: ceil(n / 256) workgroups of 256 over x/y (see `grid()`).

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

@compute @workgroup_size(256)
fn add_inplace(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) { acc[i] = acc[i] + b[i]; }
}
