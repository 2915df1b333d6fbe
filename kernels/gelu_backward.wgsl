// GELU backward, in the form the override constant EXACT chooses (as in kernels/gelu.wgsl).
// EXACT = false (default), tanh approximation (GPT-2's gelu_new):
//   gelu(x) = 0.5 x (1 + tanh(u)) = x * s,   u = k (x + a x^3),  s = sigmoid(2u),  k = sqrt(2/pi), a = 0.044715
//   gelu'(x) = s + x * 2 s (1 - s) * du/dx,  du/dx = k (1 + 3 a x^2)
//   dx[i] (+)= dout[i] * gelu'(x[i])
// ("(+)=" is "+=" when Params.accumulate != 0, "=" otherwise; the old dx is then never read.)
// As in the forward, s comes from e = exp(-2|u|) <= 1: s = 1/(1+e) (u >= 0) or e/(1+e) (u < 0), and
// s (1 - s) = e / (1 + e)^2 for either sign, so nothing overflows and nothing cancels. |u| is capped
// at 100, where e = exp(-200) underflows to 0 in f32: then the second term is exactly 0 (selected,
// so x * du/dx = inf for huge |x| never reaches the result) and gelu' = 1 (large x) or 0 (large -x).
// EXACT = true, erf form gelu(x) = x Phi(x):
//   gelu'(x) = Phi(x) + x phi(x) = normCdf2(x) / 2 + x exp(-x^2 / 2) / sqrt(2 pi)
// (lib/erf.wgsl; the second term is taken as 0 for |x| > 20, where exp(-200) is 0 in f32 anyway, so
// x * x = inf for huge |x| never reaches the result): 1 for large x, 0 for large -x.
//
// Bindings (group 0):
//   0 uniform Params { n: u32, accumulate: u32 }
//   1 storage read   x: array<f32>      [n] the PRE-activation input of the forward
//   2 storage read   dout: array<f32>   [n] gradient of the gelu output
//   3 storage rw     dx: array<f32>     [n] (must not alias x or dout)
// Dispatch: ceil(n / 256) workgroups of 256, split over x/y by `grid()`; index = gid.x + gid.y * nwg.x * 256.

struct Params {
  n: u32,
  accumulate: u32,
}

//#include "lib/erf.wgsl"

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const INV_SQRT_2PI: f32 = 0.3989422804014327;
const A: f32 = 0.044715;

override EXACT: bool = false;

// gelu'(v) of the selected form.
fn geluGrad(v: f32) -> f32 {
  if (EXACT) {
    let tail = select(v * exp(-0.5 * v * v) * INV_SQRT_2PI, 0.0, abs(v) > 20.0);
    return 0.5 * normCdf2(v) + tail;
  }
  let u = SQRT_2_OVER_PI * (v + A * v * v * v);
  let e = exp(-2.0 * min(abs(u), 100.0));
  let inv = 1.0 / (1.0 + e);
  let s = select(e, 1.0, u >= 0.0) * inv;
  let du = SQRT_2_OVER_PI * (1.0 + 3.0 * A * v * v);
  let tail = select(2.0 * e * inv * inv * v * du, 0.0, e == 0.0);
  return s + tail;
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

// Same binding slots as x / dout / dx, used only by `gelu_backward4`.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dout4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dx4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    var g = dout[i] * geluGrad(x[i]);
    if (p.accumulate != 0u) { g += dx[i]; }
    dx[i] = g;
  }
}

// n % 4 == 0: one vec4 per invocation, the same arithmetic per element (bit-identical to `gelu_backward`),
// a quarter of the load and store instructions.
@compute @workgroup_size(256)
fn gelu_backward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n / 4u) {
    let v = x4[i];
    var g = dout4[i] * vec4<f32>(geluGrad(v.x), geluGrad(v.y), geluGrad(v.z), geluGrad(v.w));
    if (p.accumulate != 0u) { g += dx4[i]; }
    dx4[i] = g;
  }
}
