// The loss of ROME / MEMIT's δ optimisation (src/edit/compute_v.ts) and its gradient w.r.t. the logits,
// one row per workgroup, so that a step reads back only the row losses and the site gradient (one map):
// with lse_r = m_r + log l_r (row statistics of lib/online_softmax.wgsl) and lp = logits - lse_r,
//   NLL row (kind 0, target t, weight w):   losses[r] = w (lse_r - logits[r, t])
//                                           dlogits[r, c] = w (exp(lp_c) - (c == t))
//   KL row (kind 1, p0 row k, weight w):    d = sum_c exp(lp_c) (lp_c - p0[k, c])
//                                           losses[r] = w d,  dlogits[r, c] = w exp(lp_c) (lp_c - p0[k, c] - d)
//   KL init row (kind 2, p0 row k):         p0[k, :] = lp (the δ = 0 distribution), losses[r] = 0,
//                                           dlogits[r, :] = 0 (the KL of a distribution with itself)
// Non-finite logits give a non-finite loss (the caller checks the losses it reads back).
//
// Layouts (row-major): logits [rows, cols] f32; info [rows] vec4<u32> = (kind, t or k, bits of w, 0);
//   p0 [K, cols] f32; losses [rows] f32; dlogits [rows, cols] f32 (no aliasing).
// Bindings (group 0): 0 uniform Params { rows, cols, one (1.0, see lib/kahan.wgsl), pad }, 1 logits,
//   2 info, 3 p0 (rw), 4 losses (rw), 5 dlogits (rw).
// Dispatch: one workgroup of WG = 128 per row, `rows` workgroups split over x / y by `grid()`.
// d is Kahan-summed per invocation and folded in one order by every invocation (bit-identical, no
// second barrier). Deterministic. Float64 twin: src/reference/delta_loss.ts.

struct Params {
  rows: u32,
  cols: u32,
  one: f32,
  pad: u32,
}

const WG: u32 = 128u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> info: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> p0: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;

//#include "lib/online_softmax.wgsl"

var<workgroup> redD: array<f32, WG>;

fn rowValue(i: u32) -> f32 {
  return logits[i];
}

@compute @workgroup_size(WG)
fn delta_loss(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let r = wg.x + wg.y * nwg.x;
  if (r >= p.rows) { return; } // workgroup-uniform: the barriers below stay in uniform control flow
  let base = r * p.cols;
  let st = rowStats(base, p.cols, lid, p.one);
  let lse = st.x + log(st.y);
  let inf = info[r];
  let kind = inf.x;
  let k = inf.y * p.cols;
  let w = bitcast<f32>(inf.z);
  var part = vec2<f32>(0.0, 0.0);
  if (kind == 1u) {
    for (var c = lid; c < p.cols; c += WG) {
      let lp = logits[base + c] - lse;
      part = kahanAdd(part, exp(lp) * (lp - p0[k + c]), p.one);
    }
  }
  redD[lid] = part.x - part.y;
  workgroupBarrier();
  var D = vec2<f32>(0.0, 0.0);
  for (var i = 0u; i < WG; i++) {
    D = kahanAdd(D, redD[i], p.one);
  }
  let d = D.x - D.y;
  if (kind == 0u) {
    let t = inf.y;
    if (lid == 0u) { losses[r] = w * (lse - logits[base + t]); }
    for (var c = lid; c < p.cols; c += WG) {
      dlogits[base + c] = w * (exp(logits[base + c] - lse) - select(0.0, 1.0, c == t));
    }
  } else if (kind == 1u) {
    if (lid == 0u) { losses[r] = w * d; }
    for (var c = lid; c < p.cols; c += WG) {
      let lp = logits[base + c] - lse;
      dlogits[base + c] = w * exp(lp) * (lp - p0[k + c] - d);
    }
  } else {
    if (lid == 0u) { losses[r] = 0.0; }
    for (var c = lid; c < p.cols; c += WG) {
      p0[k + c] = logits[base + c] - lse;
      dlogits[base + c] = 0.0;
    }
  }
}
