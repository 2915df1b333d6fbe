// AdamW optimizer step, in place, with PyTorch's torch.optim.AdamW semantics (decoupled weight decay):
//   g     = grad[i] * gradScale
//   param = param * (1 - lr * weightDecay)
//   m     = beta1 * m + (1 - beta1) * g
//   v     = beta2 * v + (1 - beta2) * g^2
//   param = param - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// The last line is PyTorch's arrangement of lr * mhat / (sqrt(vhat) + eps), mhat = m / (1 - beta1^step),
// vhat = v / (1 - beta2^step). Every scalar that depends only on hyperparameters (1 - beta, the bias
// corrections, 1 - lr * weightDecay) is computed on the host in float64 and rounded to f32 once:
// computing 1 - beta2 in f32 from beta2 = f32(0.999) would be off by 1.3e-5 relative.
//
// Layouts: param, grad, m, v: array<f32> [n], all distinct buffers.
//
// Bindings (group 0):
//   0 uniform Params (below)
//   1 storage rw   param: array<f32>
//   2 storage read grad:  array<f32>
//   3 storage rw   m:     array<f32>   (first moment; zeros before step 1)
//   4 storage rw   v:     array<f32>   (second moment; zeros before step 1)
// Dispatch: ceil(n / WG) workgroups of WG = 256 over x/y (`grid()`), i = gid.x + gid.y * nwg.x * WG.

struct Params {
  n: u32,
  beta1: f32,
  oneMinusBeta1: f32,
  beta2: f32,
  oneMinusBeta2: f32,
  eps: f32,
  decay: f32,      // 1 - lr * weightDecay
  stepSize: f32,   // lr / (1 - beta1^step)
  bc2Sqrt: f32,    // sqrt(1 - beta2^step)
  gradScale: f32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WG)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let g = grad[i] * p.gradScale;
  let mi = p.beta1 * m[i] + p.oneMinusBeta1 * g;
  let vi = p.beta2 * v[i] + p.oneMinusBeta2 * (g * g);
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) / p.bc2Sqrt + p.eps;
  param[i] = param[i] * p.decay - p.stepSize * (mi / denom);
}
