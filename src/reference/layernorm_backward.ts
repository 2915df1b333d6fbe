/** Float64 CPU twin of `kernels/layernorm_backward.wgsl`. */

/** What {@link layerNormBackwardRef} returns. */
export interface LayerNormBackwardRefResult {
  /** Gradient with respect to the input x, [rows * cols]. */
  dx: Float64Array;
  /** Gradient with respect to gamma, [cols]. */
  dgamma: Float64Array;
  /** Gradient with respect to beta, [cols]. */
  dbeta: Float64Array;
}

/**
 * Gradients of GPT-2 layer norm ({@link layerNormRef}) in float64, given the upstream gradient `dout`
 * [rows, cols] and the forward input `x` [rows, cols]. Recomputes each row's mean and
 * rstd = 1 / sqrt(biased var + eps); with xhat = (x - mean) * rstd and g = dout * gamma:
 * `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))`, `dgamma[c] = sum_r dout * xhat`,
 * `dbeta[c] = sum_r dout`.
 */
export function layerNormBackwardRef(
  dout: ArrayLike<number>,
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  rows: number,
  cols: number,
  eps = 1e-5,
): LayerNormBackwardRefResult {
  const dx = new Float64Array(rows * cols);
  const dgamma = new Float64Array(cols);
  const dbeta = new Float64Array(cols);
  const xhat = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let mean = 0;
    for (let c = 0; c < cols; c++) mean += x[o + c];
    mean /= cols;
    let v = 0;
    for (let c = 0; c < cols; c++) {
      const d = x[o + c] - mean;
      v += d * d;
    }
    v /= cols;
    const rstd = 1 / Math.sqrt(v + eps);
    let sg = 0, sgx = 0;
    for (let c = 0; c < cols; c++) {
      xhat[c] = (x[o + c] - mean) * rstd;
      const g = dout[o + c] * gamma[c];
      sg += g;
      sgx += g * xhat[c];
      dgamma[c] += dout[o + c] * xhat[c];
      dbeta[c] += dout[o + c];
    }
    const mg = sg / cols, mgx = sgx / cols;
    for (let c = 0; c < cols; c++) dx[o + c] = rstd * (dout[o + c] * gamma[c] - mg - xhat[c] * mgx);
  }
  return { dx, dgamma, dbeta };
}
