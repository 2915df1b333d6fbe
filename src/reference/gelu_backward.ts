/** Float64 CPU twin of `kernels/gelu_backward.wgsl`. */

const K = Math.sqrt(2 / Math.PI);
const A = 0.044715;

/**
 * Derivative of GPT-2's gelu_new ({@link geluScalarRef}) at `x`, in float64:
 * `0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx`, u = sqrt(2/pi) (x + 0.044715 x^3). The second term is
 * taken as 0 once 1 - tanh^2 u rounds to 0, so huge |x| gives 1 or 0 instead of NaN.
 */
export function geluGradScalarRef(x: number): number {
  const th = Math.tanh(K * (x + A * x * x * x));
  const sech2 = 1 - th * th;
  const tail = sech2 === 0 ? 0 : 0.5 * x * sech2 * K * (1 + 3 * A * x * x);
  return 0.5 * (1 + th) + tail;
}

/** `dx[i] = dout[i] * gelu'(x[i])` in float64, with `x` the PRE-activation input; [x.length]. */
export function geluBackwardRef(x: ArrayLike<number>, dout: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) dx[i] = dout[i] * geluGradScalarRef(x[i]);
  return dx;
}
