// The loss of ROME / MEMIT's δ optimisation (src/edit/compute_v.ts) and its gradient w.r.t. the logits,
// one row per workgroup, so that a step reads back only the row losses and the site gradient (one map).
// With (m, l) the row's max and sum of exp(x - m) (lib/online_softmax.wgsl), lse = m + log l,
// p_c = exp(x_c - m) / l and lp = x - lse:
//   NLL row (kind 0, target t, weight w):   losses[r] = w (lse - x_t),  dlogits[r, c] = w (p_c - (c == t))
//   KL row (kind 1, P0 row k, weight w):    d = KL(P || P0) = sum_c p_c (lp_c - lp0_c)
//                                           losses[r] = w d,  dlogits[r, c] = w p_c (lp_c - lp0_c - d)
//   KL init row (kind 2, P0 row k):         P0 row k = (x, m, l) of this row (δ = 0), losses[r] = 0,
//                                           dlogits[r, :] = 0 (the KL of a distribution with itself)
// Precision: KL is second order in the change of the logits, so it is never formed as a difference of
// first-order terms (rounded log-probabilities are off by an ulp of |lp| ~ log V, and sums of p·dx by
// the exp's few ulps, both far above a KL of 1e-5). P0 keeps the raw logits x0 and (m0, l0); with
// dx = x - x0 (close floats: exact or nearly), q = P0's probabilities, em(t) = e^t - 1 and
// g(t) = e^t - 1 - t (series for small t), exactly
//   Z = sum q e^dx = 1 + U,  U = B + G,  B = sum q dx,  G = sum q g(dx),  H = sum q dx em(dx),
//   KL = (H - G - phi(U)) / (1 + U),   phi(U) = (1 + U) log(1 + U) - U,
// where H, G and phi are second order and computed without cancellation (phi by its series).
// p = q e^dx / Z and lp - lp0 = dx - log(1 + U) give the gradient. Sums Kahan-compensated.
// Non-finite logits give a non-finite loss (the caller checks the losses it reads back).
//
// Layouts (row-major): logits [rows, cols] f32; info [rows] vec4<u32> = (kind, t or k, bits of w, 0);
//   p0 [K, cols + 2] f32 (x0, m0, l0); losses [rows] f32; dlogits [rows, cols] f32 (no aliasing).
// Bindings (group 0): 0 uniform Params { rows, cols, one (1.0, see lib/kahan.wgsl), pad }, 1 logits,
//   2 info, 3 p0 (rw), 4 losses (rw), 5 dlogits (rw).
// Dispatch: one workgroup of WG (default 128) per row, `rows` workgroups split over x / y by `grid()`.
// Reductions fold in one order in every invocation (bit-identical, no second barrier). Deterministic.
// Float64 twin: src/reference/delta_loss.ts.

struct Params {
  rows: u32,
  cols: u32,
  one: f32,
  pad: u32,
}

// Lanes per row: an override set per adapter by src/gpu/row_workgroup.ts (wide on GPUs, one SIMD vector
// on CPU adapters), the default otherwise.
override WG: u32 = 128u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> info: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> p0: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;

//#include "lib/online_softmax.wgsl"

var<workgroup> redB: array<f32, WG>;
var<workgroup> redG: array<f32, WG>;
var<workgroup> redH: array<f32, WG>;

fn rowValue(i: u32) -> f32 {
  return logits[i];
}

// g(t) = exp(t) - 1 - t, second order, without the cancellation for small t (series to t^7: relative
// error < 1e-10 for |t| < 0.1).
fn expm1MinusX(t: f32) -> f32 {
  if (abs(t) < 0.1) {
    let t2 = t * t;
    return t2 * (0.5 + t * (1.0 / 6.0 + t * (1.0 / 24.0 + t * (1.0 / 120.0 + t * (1.0 / 720.0 + t / 5040.0)))));
  }
  return (exp(t) - 1.0) - t;
}

// log(1 + u) = 2 atanh(s), s = u / (2 + u), by its odd series for |u| < 0.5 (|s| < 1/3: relative error
// below 1e-7 of the result, against ~6e-8 absolute for log(1 + u)).
fn log1p(u: f32) -> f32 {
  if (abs(u) < 0.5) {
    let s = u / (2.0 + u);
    let s2 = s * s;
    return 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 / 13.0))))));
  }
  return log(1.0 + u);
}

// phi(u) = (1 + u) log(1 + u) - u = sum_{n >= 2} (-1)^n u^n / (n (n - 1)), second order: the series for
// |u| < 0.1 (to u^9: relative error < 1e-9), else the formula (phi > 4.8e-3 there, error ~1e-7 of it).
fn phi(u: f32) -> f32 {
  if (abs(u) < 0.1) {
    let u2 = u * u;
    return u2 * (0.5 - u * (1.0 / 6.0 - u * (1.0 / 12.0 - u * (1.0 / 20.0 - u * (1.0 / 30.0 - u * (1.0 / 42.0 - u * (1.0 / 56.0 - u / 72.0)))))));
  }
  return (1.0 + u) * log1p(u) - u;
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
  let invL = 1.0 / st.y;
  let inf = info[r];
  let kind = inf.x;
  let k = inf.y * (p.cols + 2u);
  let w = bitcast<f32>(inf.z);
  var b = vec2<f32>(0.0, 0.0);
  var g = vec2<f32>(0.0, 0.0);
  var h = vec2<f32>(0.0, 0.0);
  let m0 = p0[k + p.cols];
  let invL0 = 1.0 / p0[k + p.cols + 1u];
  if (kind == 1u) {
    for (var c = lid; c < p.cols; c += WG) {
      let x0 = p0[k + c];
      let dx = logits[base + c] - x0;
      let q = exp(x0 - m0) * invL0;
      let gx = expm1MinusX(dx);
      b = kahanAdd(b, q * dx, p.one);
      g = kahanAdd(g, q * gx, p.one);
      h = kahanAdd(h, q * dx * (gx + dx), p.one);
    }
  }
  redB[lid] = b.x - b.y;
  redG[lid] = g.x - g.y;
  redH[lid] = h.x - h.y;
  workgroupBarrier();
  var B = vec2<f32>(0.0, 0.0);
  var G = vec2<f32>(0.0, 0.0);
  var H = vec2<f32>(0.0, 0.0);
  for (var i = 0u; i < WG; i++) {
    B = kahanAdd(B, redB[i], p.one);
    G = kahanAdd(G, redG[i], p.one);
    H = kahanAdd(H, redH[i], p.one);
  }
  let gs = G.x - G.y;
  let U = (B.x - B.y) + gs;
  let dlse = log1p(U);
  let d = ((H.x - H.y) - gs - phi(U)) / (1.0 + U);
  if (kind == 0u) {
    let t = inf.y;
    if (lid == 0u) { losses[r] = w * (lse - logits[base + t]); }
    for (var c = lid; c < p.cols; c += WG) {
      dlogits[base + c] = w * (exp(logits[base + c] - st.x) * invL - select(0.0, 1.0, c == t));
    }
  } else if (kind == 1u) {
    if (lid == 0u) { losses[r] = w * d; }
    for (var c = lid; c < p.cols; c += WG) {
      let x0 = p0[k + c];
      let dx = logits[base + c] - x0;
      let prob = exp(x0 - m0) * invL0 * exp(dx) / (1.0 + U);
      dlogits[base + c] = w * prob * (dx - dlse - d);
    }
  } else {
    if (lid == 0u) {
      losses[r] = 0.0;
      p0[k + p.cols] = st.x;
      p0[k + p.cols + 1u] = st.y;
    }
    for (var c = lid; c < p.cols; c += WG) {
      p0[k + c] = logits[base + c];
      dlogits[base + c] = 0.0;
    }
  }
}
