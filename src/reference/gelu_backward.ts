/** Float64 CPU twin of `kernels/gelu_backward.wgsl` (both GELU forms). */
import { erfcRef, type GeluRefApproximate } from "./gelu.ts";

const K = Math.sqrt(2 / Math.PI);
const A = 0.044715;

/**
 * Derivative of GPT-2's gelu_new (`geluScalarRef` in ./gelu.ts) at `x`, in float64:
 * `0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx`, u = sqrt(2/pi) (x + 0.044715 x^3). The second term is
 * taken as 0 once 1 - tanh^2 u rounds to 0, so huge |x| gives 1 or 0 instead of NaN.
 */
export function geluGradScalarRef(x: number): number {
  const th = Math.tanh(K * (x + A * x * x * x));
  const sech2 = 1 - th * th;
  const tail = sech2 === 0 ? 0 : 0.5 * x * sech2 * K * (1 + 3 * A * x * x);
  return 0.5 * (1 + th) + tail;
}

/**
 * Derivative of exact GELU x Phi(x) at `x`, in float64: `Phi(x) + x phi(x)` with
 * Phi(x) = erfc(-x / sqrt 2) / 2 and phi(x) = exp(-x^2 / 2) / sqrt(2 pi). The second term is taken as 0
 * once exp(-x^2 / 2) is 0, so huge |x| gives 1 or 0 instead of NaN (x * 0 with x * x = inf).
 */
export function geluExactGradScalarRef(x: number): number {
  const g = Math.exp(-0.5 * x * x);
  return 0.5 * erfcRef(-x / Math.SQRT2) + (g === 0 ? 0 : x * g / Math.sqrt(2 * Math.PI));
}

/**
 * `dx[i] = dout[i] * gelu'(x[i])` in float64, with `x` the PRE-activation input; [x.length]. The form
 * is GPT-2's tanh approximation by default, the exact erf form for `approximate = "none"`.
 */
export function geluBackwardRef(
  x: ArrayLike<number>,
  dout: ArrayLike<number>,
  approximate: GeluRefApproximate = "tanh",
): Float64Array {
  const f = approximate === "none" ? geluExactGradScalarRef : geluGradScalarRef;
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) dx[i] = dout[i] * f(x[i]);
  return dx;
}
