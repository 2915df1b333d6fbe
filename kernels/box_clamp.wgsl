// In-place box constraint (FT-L's norm_constraint, ROME's `torch.clamp(w, min=w0 - eps, max=w0 + eps)`):
//   x[i] = lo[i] if x[i] < lo[i]; hi[i] if x[i] > hi[i]; else x[i] (a NaN stays NaN).
// The bounds are float32 roundings of w0 ∓ eps computed on the host in float64; clamping to them gives the
// same float32 as comparing with the float64 bounds and rounding the chosen bound (the nearest float32 to
// a bound is never on the other side of any other float32), so the kernel equals the host clamp bitwise.
//
// Bindings (group 0):
//   0 uniform Params { n: u32 }
//   1 storage rw   x:  array<f32> [n]
//   2 storage read lo: array<f32> [n]
//   3 storage read hi: array<f32> [n]
// Dispatch: ceil(n / 256) workgroups of 256 over x/y (see `grid()`), i = gid.x + gid.y * nwg.x * 256.

struct Params {
  n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> lo: array<f32>;
@group(0) @binding(3) var<storage, read> hi: array<f32>;

@compute @workgroup_size(256)
fn box_clamp(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    let v = x[i];
    let l = lo[i];
    let h = hi[i];
    // NaN is tested on its bits: a compiler may assume no NaN in comparisons (llvmpipe clamps it).
    let nan = (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
    x[i] = select(select(select(v, h, v > h), l, v < l), v, nan);
  }
}
