// Rank-one update in place: W[i, j] += alpha * u[i] * v[j], W row-major [M, N].
// Used by ROME to write an edit into a Conv1D weight ([in, out] layout: u over inputs, v over outputs).
//
// Bindings (group 0):
//   0 uniform Params { m: u32, n: u32, alpha: f32 }
//   1 storage rw   w: array<f32>  [M * N]
//   2 storage read u: array<f32>  [M]
//   3 storage read v: array<f32>  [N]
// Dispatch: ceil(M * N / 256) workgroups of 256 over x/y (see `grid()`).

struct Params { m: u32, n: u32, alpha: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;

@compute @workgroup_size(256)
fn rank_one(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  if (idx >= p.m * p.n) { return; }
  let i = idx / p.n;
  let j = idx - i * p.n;
  w[idx] = w[idx] + p.alpha * u[i] * v[j];
}
