// Shared fragment (not a kernel): one invocation's part of the online-softmax row statistics, used by
// lib/online_softmax.wgsl and lib/online_softmax_subgroup.wgsl (which differ only in how the lanes' pairs
// are folded). Pulled in with
//   //#include "online_softmax_lane.wgsl"
// Needs from the including kernel: WG, fn rowValue(i: u32) -> f32, and `one` (see lib/kahan.wgsl).

//#include "kahan.wgsl"

// Below any real logit; exp(NEG - finite) underflows to 0 without producing inf or NaN.
const NEG: f32 = -3.0e38;

// (m, l) of this invocation's strided slice c = lid, lid + WG, ... of the row rowValue(base .. base + cols):
// a running max m and a running sum l of exp(x - m) (one exp per element, rescaling l when m grows;
// Kahan-compensated, ~1 ulp even over 50257 terms). An invocation with no elements gives (NEG, 0).
fn laneStats(base: u32, cols: u32, lid: u32, one: f32) -> vec2<f32> {
  var m = NEG;
  var s = vec2<f32>(0.0, 0.0);
  for (var c = lid; c < cols; c += WG) {
    let v = rowValue(base + c);
    if (v > m) {
      s = kahanAdd(s * exp(m - v), 1.0, one);
      m = v;
    } else {
      s = kahanAdd(s, exp(v - m), one);
    }
  }
  return vec2<f32>(m, s.x - s.y);
}
