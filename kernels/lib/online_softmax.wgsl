// Shared fragment (not a kernel): online-softmax row statistics over a workgroup, used by softmax.wgsl
// and cross_entropy.wgsl. Pulled in with
//   //#include "lib/online_softmax.wgsl"
// and pasted once by the kernel loader (src/gpu/pipeline.ts).
//
// Declares (with lib/online_softmax_lane.wgsl: const NEG, fn laneStats): var<workgroup> redM, redL, and
//   fn rowStats(base: u32, cols: u32, lid: u32, one: f32) -> vec2<f32>
// Needs from the including kernel:
//   WG (u32, const or override) workgroup size; one workgroup of WG invocations handles one row
//   fn rowValue(i: u32) -> f32 element i of the kernel's flat input (the row starts at `base`)
//   a uniform f32 equal to 1.0, passed as `one` (see lib/kahan.wgsl: without it the compensation is lost)
//
// Each invocation streams its strided slice (c = lid, lid + WG, ...) keeping a running max m and a
// running sum l of exp(x - m) (online softmax: one exp per element, rescaling l when m grows; l is
// Kahan-compensated so its error stays ~1 ulp even over 50257 terms), writes (m, l) to workgroup
// memory, and after one barrier every invocation folds all WG pairs in the same order, so all hold
// bit-identical (m_r, l_r) with no further barrier. Invocations with no elements contribute (NEG, 0),
// which the fold ignores. Deterministic.

//#include "online_softmax_lane.wgsl"

var<workgroup> redM: array<f32, WG>;
var<workgroup> redL: array<f32, WG>;

// (m, l) = (max, sum of exp(x - max)) of the row rowValue(base .. base + cols), identical in every
// invocation. Call in uniform control flow (it has a barrier).
fn rowStats(base: u32, cols: u32, lid: u32, one: f32) -> vec2<f32> {
  let own = laneStats(base, cols, lid, one);
  redM[lid] = own.x;
  redL[lid] = own.y;
  workgroupBarrier();
  var M = NEG;
  var S = vec2<f32>(0.0, 0.0);
  for (var i = 0u; i < WG; i++) {
    let mi = redM[i];
    let li = redL[i];
    if (mi > M) {
      S = kahanAdd(S * exp(M - mi), li, one);
      M = mi;
    } else {
      S = kahanAdd(S, li * exp(mi - M), one);
    }
  }
  return vec2<f32>(M, S.x - S.y);
}
