/** Float64 CPU twin of `kernels/gelu.wgsl`. */

/** GPT-2's gelu_new of one value: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in float64. */
export function geluScalarRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** Elementwise {@link geluScalarRef} of `x`, in float64. */
export function geluRef(x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = geluScalarRef(x[i]);
  return out;
}
