/** Float64 CPU twin of `kernels/ig_accumulate.wgsl` (integrated-gradients Riemann sum). */

/** Layout of the gradients of the m scaled copies (see {@link igAccumulateRef}). */
export interface IgLayout {
  /** Neurons (length of `act` and `out`). */
  n: number;
  /** Interpolation steps m. */
  steps: number;
  /** Elements between the gradients of consecutive steps. */
  rowStride: number;
  /** Element of step 0, neuron 0. */
  offset: number;
}

/**
 * `out[i] = (prev ? prev[i] : 0) + scale * act[i] * sum_k weights[k] * grads[offset + k*rowStride + i]`
 * in float64 (a new array).
 */
export function igAccumulateRef(
  grads: ArrayLike<number>,
  weights: ArrayLike<number>,
  act: ArrayLike<number>,
  layout: IgLayout,
  scale: number,
  prev?: ArrayLike<number>,
): Float64Array {
  const { n, steps, rowStride, offset } = layout;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < steps; k++) s += weights[k] * grads[offset + k * rowStride + i];
    out[i] = (prev ? prev[i] : 0) + scale * act[i] * s;
  }
  return out;
}
