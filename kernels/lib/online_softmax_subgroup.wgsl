// Shared fragment (not a kernel): the subgroup variant of lib/online_softmax.wgsl, swapped in for it by
// the kernel loader (src/gpu/pipeline.ts, SUBGROUP_VARIANT) on a device with the `subgroups` feature
// when the launcher asks for it (src/gpu/row_workgroup.ts). Same declarations, same contract:
//   const NEG (lib/online_softmax_lane.wgsl), var<workgroup> redM, redL, fn rowStats(base, cols, lid, one)
// Needs from the including kernel what lib/online_softmax.wgsl needs, and a workgroup size WG that is a
// multiple of the subgroup size (the launcher checks it against the adapter's largest subgroup size), so
// that every subgroup is full.
//
// Each invocation streams its strided slice as in lib/online_softmax.wgsl (running max, Kahan-compensated
// running sum). Then, instead of every invocation folding all WG partials:
//   1. each subgroup folds its lanes' (m, l) with subgroupMax / subgroupAdd; its first lane writes the
//      pair to workgroup memory, the others write the neutral (NEG, 0);
//   2. after one barrier, lane k of every subgroup (k = its index in the subgroup, n = the subgroup size,
//      both counted with subgroup operations so that no builtin parameter is needed) folds the slots
//      k, k + n, k + 2n, ... — together a subgroup's lanes read every slot, whatever the mapping of
//      local invocation indices to subgroups —, and a second subgroupMax / subgroupAdd gives the row's
//      (m_r, l_r).
// Every subgroup folds the same slots in the same lane order, so all invocations hold the same (m_r, l_r)
// (up to how the device orders a subgroup sum, which is fixed for a given device). The cross-lane sums
// are not compensated: two levels of at most WG terms, a few ulp. Deterministic on a given device.

//#include "online_softmax_lane.wgsl"

var<workgroup> redM: array<f32, WG>;
var<workgroup> redL: array<f32, WG>;

// The (max, sum of exp(x - max)) of the pairs (m, l) of one subgroup's lanes.
fn subgroupFold(m: f32, l: f32) -> vec2<f32> {
  let M = subgroupMax(m);
  return vec2<f32>(M, subgroupAdd(l * exp(m - M)));
}

// (m, l) = (max, sum of exp(x - max)) of the row rowValue(base .. base + cols), the same in every
// invocation. Call in uniform control flow (it has subgroup operations and a barrier).
fn rowStats(base: u32, cols: u32, lid: u32, one: f32) -> vec2<f32> {
  let own = laneStats(base, cols, lid, one);
  let sub = subgroupFold(own.x, own.y);
  let k = subgroupExclusiveAdd(1u);
  let n = subgroupAdd(1u);
  redM[lid] = select(NEG, sub.x, k == 0u);
  redL[lid] = select(0.0, sub.y, k == 0u);
  workgroupBarrier();
  var M = NEG;
  var S = 0.0;
  for (var i = k; i < WG; i += n) {
    let mi = redM[i];
    let li = redL[i];
    if (mi > M) {
      S = S * exp(M - mi) + li;
      M = mi;
    } else {
      S += li * exp(mi - M);
    }
  }
  return subgroupFold(M, S);
}
