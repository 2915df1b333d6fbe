/** Float64 CPU twin of `kernels/adamw.wgsl`. */
import { adamwHyper, type AdamWOptions } from "../gpu/adamw.ts";

/**
 * One AdamW step (PyTorch `torch.optim.AdamW` semantics) in float64, updating `param`, `m` and `v`
 * in place from `grad`; same options, defaults and validation as the GPU `adamw`.
 */
export function adamwRef(
  param: Float64Array,
  grad: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  opts: AdamWOptions,
): void {
  const { lr, beta1, beta2, eps, weightDecay, step, gradScale } = adamwHyper(opts);
  const n = param.length;
  if (grad.length !== n || m.length !== n || v.length !== n) {
    throw new RangeError(
      `adamwRef: lengths differ (param ${n}, grad ${grad.length}, m ${m.length}, v ${v.length})`,
    );
  }
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  for (let i = 0; i < n; i++) {
    const g = grad[i] * gradScale;
    param[i] *= 1 - lr * weightDecay;
    m[i] = beta1 * m[i] + (1 - beta1) * g;
    v[i] = beta2 * v[i] + (1 - beta2) * g * g;
    const mhat = m[i] / bc1;
    const vhat = v[i] / bc2;
    param[i] -= lr * mhat / (Math.sqrt(vhat) + eps);
  }
}
