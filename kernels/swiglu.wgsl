// SwiGLU gating (Llama / Mistral / Qwen MLP, HF `act_fn(gate_proj(x)) * up_proj(x)` with act_fn = silu):
//   out[i] = silu(gate[i]) * up[i],   silu(g) = g * sigmoid(g)
// and its backward, with s = sigmoid(g):
//   silu'(g) = s + g s (1 - s) = s (1 + g (1 - s))
//   dgate[i] (+)= dout[i] * up[i] * silu'(gate[i]),   dup[i] (+)= dout[i] * silu(gate[i])
// ("(+)=" is "+=" when Params.accumulate != 0, "=" otherwise; the old values are then never read.)
// sigmoid comes from e = exp(-|g|) <= 1: s = 1/(1+e), 1 - s = e/(1+e) for g >= 0 and the reverse for
// g < 0, so nothing overflows and 1 - s never cancels. For |g| > ~104, e underflows to 0: silu(g) = g
// (or -0) and silu'(g) = 1 (or 0) exactly, finite for every finite input.
//
// Bindings (group 0); the entries share 0-2 and give 3 different meanings (WGSL forbids binding
// aliases only within one entry point's interface):
//   0 uniform Params { n: u32, accumulate: u32 }   element count (accumulate: `swiglu_backward` only)
//   1 storage read   gate: array<f32>   [n]
//   2 storage read   up: array<f32>     [n]
//   entry `swiglu`:           3 storage rw out [n] (must not alias gate or up)
//   entry `swiglu_backward`:  3 storage read dout [n], 4 storage rw dgate [n], 5 storage rw dup [n]
//                             (outputs alias no input and not each other)
// Dispatch: ceil(n / 256) workgroups of 256, split over x/y by `grid()`; index = gid.x + gid.y * nwg.x * 256.

struct Params {
  n: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(5) var<storage, read_write> dup: array<f32>;

// (sigmoid(g), 1 - sigmoid(g)) without overflow or cancellation.
fn sigmoidPair(g: f32) -> vec2<f32> {
  let e = exp(-abs(g));
  let inv = 1.0 / (1.0 + e);
  if (g >= 0.0) { return vec2<f32>(inv, e * inv); }
  return vec2<f32>(e * inv, inv);
}

@compute @workgroup_size(256)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    let g = gate[i];
    out[i] = g * sigmoidPair(g).x * up[i];
  }
}

@compute @workgroup_size(256)
fn swiglu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    let g = gate[i];
    let s = sigmoidPair(g);
    let d = dout[i];
    // g * (1 - s) is 0 (not NaN) when 1 - s underflows, as g is finite.
    var dg = d * up[i] * (s.x * (1.0 + g * s.y));
    var du = d * (g * s.x);
    if (p.accumulate != 0u) {
      dg += dgate[i];
      du += dup[i];
    }
    dgate[i] = dg;
    dup[i] = du;
  }
}
