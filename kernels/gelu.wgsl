// GELU, two forms chosen by the override constant EXACT:
// EXACT = false (default), tanh approximation (GPT-2's gelu_new / PyTorch gelu(approximate="tanh")):
//   out[i] = 0.5 * x * (1 + tanh(u)),  u = sqrt(2/pi) * (x + 0.044715 * x^3).
// Evaluated as the identical x * sigmoid(2u), with e = exp(-2|u|) <= 1 so nothing overflows:
//   sigmoid(2u) = 1 / (1 + e) for u >= 0,  e / (1 + e) for u < 0.
// No built-in tanh (which returns NaN for large arguments on some drivers) and no cancellation in
// 1 + tanh(u) for negative x. |u| is capped at 100 (x^3 overflows to inf for |x| > ~1e12), where
// e = exp(-200) underflows to 0: out = x for large positive x and -0 for large negative x.
// EXACT = true, erf form (HF/NeoX "gelu", PyTorch gelu(approximate="none")):
//   out[i] = 0.5 * x * (1 + erf(x / sqrt 2)) = 0.5 * x * normCdf2(x)   (lib/erf.wgsl: erfc of a positive
// argument for negative x, so the tail does not cancel; exactly x / -0 once erfc underflows).
//
// Entry `erf` (tests, and any caller needing erf): out[i] = erf(x[i]), the lib/erf.wgsl function.
//
// Bindings (group 0):
//   0 uniform Params { n: u32 }         element count
//   1 storage read   x: array<f32>      [n]
//   2 storage rw     out: array<f32>    [n]   (must not alias x)
// Dispatch: ceil(n / 256) workgroups of 256, split over x/y by `grid()`; index = gid.x + gid.y * nwg.x * 256
// (entry `gelu4`, for n % 4 == 0: ceil(n / 1024), one vec4 each).

struct Params { n: u32 }

//#include "lib/erf.wgsl"

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

override EXACT: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Same binding slots as x / out, used only by `gelu4` (never together with x / out).
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;

fn geluOne(v: f32) -> f32 {
  if (EXACT) { return 0.5 * v * normCdf2(v); }
  let u = SQRT_2_OVER_PI * (v + 0.044715 * v * v * v);
  let e = exp(-2.0 * min(abs(u), 100.0));
  return v * (select(e, 1.0, u >= 0.0) / (1.0 + e));
}

@compute @workgroup_size(256)
fn gelu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) { out[i] = geluOne(x[i]); }
}

// n % 4 == 0 (p.n counts floats): one vec4 per invocation, the same arithmetic per element (bit-identical
// to `gelu`), one load and one store instruction instead of four — what a CPU adapter pays for.
@compute @workgroup_size(256)
fn gelu4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n / 4u) {
    let v = x4[i];
    out4[i] = vec4<f32>(geluOne(v.x), geluOne(v.y), geluOne(v.z), geluOne(v.w));
  }
}

@compute @workgroup_size(256)
fn erf(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) { out[i] = erfF32(x[i]); }
}
