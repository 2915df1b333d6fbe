// Whole-tensor reductions and elementwise fills, used for global gradient-norm clipping and for
// zeroing gradients / accumulators.
//
// Entries and their bindings (group 0; binding 0 is always the uniform Params):
//   sum_partial   1 storage read  x: array<f32> [n]          -> 2 storage rw dst: array<f32> [nParts]
//                 dst[w] = sum over chunk w of f(x[i]), chunk w = x[w*CHUNK .. min(n, (w+1)*CHUNK)),
//                 f(v) = v*v when p.square != 0, else v.
//                 Dispatch: nParts = ceil(n / CHUNK) workgroups of WG over x/y (`grid()`),
//                 w = wg.x + wg.y * nwg.x.
//   sum_final     1 storage read  x: array<f32> [n = nParts]  -> 2 storage rw dst: array<f32> [>= 1]
//                 dst[0] = (p.accumulate != 0 ? dst[0] : 0) + sum_i x[i]   (f is NOT applied here).
//                 Dispatch: exactly 1 workgroup of WG.
//   scale         1 storage rw xw: array<f32> [n]: xw[i] *= p.value.
//   fill          1 storage rw xu: array<u32> [n]: xu[i] = p.bits (the host passes the f32 bit pattern
//                 for f32 tensors, the integer itself for u32/i32 ones, so NaN-like u32 patterns such as
//                 0xFFFFFFFF survive).
//                 scale, fill dispatch: ceil(n / WG) workgroups of WG over x/y (`grid()`),
//                 i = gid.x + gid.y * nwg.x * WG.
//
// Deterministic (no atomics): every invocation of a sum sums its strided elements (i = base + lid,
// base + lid + WG, ...) sequentially with Kahan compensation, writes the result to workgroup memory,
// and after one barrier invocation 0 folds the WG values in index order, again Kahan-compensated.
// The same input therefore always gives the bit-identical sum, and its relative error is a few ulp
// whatever n (measured: <= 6e-8 for sums of squares up to 1e6 elements, i.e. the final rounding).

struct Params {
  n: u32,
  square: u32,
  accumulate: u32,
  value: f32,
  bits: u32,
  // Always 1.0 (set by the launcher): keeps the Kahan compensation from being folded away (lib/kahan.wgsl).
  one: f32,
}

const WG: u32 = 256u;
// Elements per workgroup of `sum_partial`: 16 per invocation.
const CHUNK: u32 = 4096u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// Same binding slot as `x`, used only by the in-place entries (never together with `x`).
@group(0) @binding(1) var<storage, read_write> xw: array<f32>;
@group(0) @binding(1) var<storage, read_write> xu: array<u32>;

var<workgroup> red: array<f32, WG>;

//#include "lib/kahan.wgsl"

// Sum of red[0..WG) in index order; call from invocation 0 after a barrier.
fn foldShared() -> f32 {
  var s = vec2<f32>(0.0, 0.0);
  for (var i = 0u; i < WG; i++) {
    s = kahanAdd(s, red[i], p.one);
  }
  return s.x - s.y;
}

@compute @workgroup_size(WG)
fn sum_partial(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let w = wg.x + wg.y * nwg.x;
  // Uniform per workgroup: the whole workgroup returns together, before the barrier.
  if (w * CHUNK >= p.n) { return; }
  let end = min(p.n, (w + 1u) * CHUNK);
  var s = vec2<f32>(0.0, 0.0);
  for (var i = w * CHUNK + lid; i < end; i += WG) {
    let v = x[i];
    s = kahanAdd(s, select(v, v * v, p.square != 0u), p.one);
  }
  red[lid] = s.x - s.y;
  workgroupBarrier();
  if (lid == 0u) { dst[w] = foldShared(); }
}

@compute @workgroup_size(WG)
fn sum_final(@builtin(local_invocation_index) lid: u32) {
  var s = vec2<f32>(0.0, 0.0);
  for (var i = lid; i < p.n; i += WG) {
    s = kahanAdd(s, x[i], p.one);
  }
  red[lid] = s.x - s.y;
  workgroupBarrier();
  if (lid == 0u) {
    let total = foldShared();
    if (p.accumulate != 0u) {
      // One more rounding: the running total over earlier tensors plus this one's sum.
      dst[0] = dst[0] + total;
    } else {
      dst[0] = total;
    }
  }
}

@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < p.n) { xw[i] = xw[i] * p.value; }
}

@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < p.n) { xu[i] = p.bits; }
}
