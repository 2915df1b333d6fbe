// Kahan-compensated elementwise accumulation: (sum, comp) += x, for running sums over many batches
// (the key statistics C = Σ kkᵀ over millions of tokens) whose plain f32 sum would lose n·eps.
// The true running sum is sum − comp (lib/kahan.wgsl).
//
// Bindings (group 0):
//   0 uniform Params { n: u32, one: f32 }   (one = 1.0, set by the launcher: see lib/kahan.wgsl)
//   1 storage rw   sum:  array<f32> [n]
//   2 storage rw   comp: array<f32> [n]
//   3 storage read x:    array<f32> [n]
// Dispatch: ceil(n / 256) workgroups of 256 over x/y (see `grid()`), i = gid.x + gid.y * nwg.x * 256.

struct Params {
  n: u32,
  one: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> sum: array<f32>;
@group(0) @binding(2) var<storage, read_write> comp: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;

//#include "lib/kahan.wgsl"

@compute @workgroup_size(256)
fn kahan_accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    let s = kahanAdd(vec2<f32>(sum[i], comp[i]), x[i], p.one);
    sum[i] = s.x;
    comp[i] = s.y;
  }
}
