// Integrated-gradients accumulation (Riemann sum over the interpolation steps), used by
// src/attribute/neurons.ts for knowledge-neuron attribution.
//
// Entry `ig_accumulate`, bindings (group 0; binding 0 is the uniform Params):
//   1 storage read  grads:   array<f32>  gradients of the m scaled copies; step k, neuron i is
//                                         grads[offset + k * rowStride + i]
//   2 storage read  weights: array<f32> [m]  per-step factor (e.g. -p_k to turn d(-log p)/da into dp/da)
//   3 storage read  act:     array<f32> [n]  the unscaled activation (IG's x - baseline, baseline 0)
//   4 storage rw    out:     array<f32> [n]
//   out[i] = (p.accumulate != 0 ? out[i] : 0) + p.scale * act[i] * sum_{k=0..m-1} weights[k] * grads[...]
// The sum over k runs in index order (deterministic, no atomics).
// Dispatch: ceil(n / WG) workgroups of WG over x/y (`grid()`), i = gid.x + gid.y * nwg.x * WG.

struct Params {
  n: u32,
  steps: u32,
  rowStride: u32,
  offset: u32,
  scale: f32,
  accumulate: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read> act: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn ig_accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) {
    return;
  }
  var s: f32 = 0.0;
  for (var k: u32 = 0u; k < p.steps; k = k + 1u) {
    s = s + weights[k] * grads[p.offset + k * p.rowStride + i];
  }
  var prev: f32 = 0.0;
  if (p.accumulate != 0u) {
    prev = out[i];
  }
  out[i] = prev + p.scale * act[i] * s;
}
