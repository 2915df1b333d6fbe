/** Float64 CPU twin of `kernels/layernorm.wgsl`. */

/** What {@link layerNormRef} returns. */
export interface LayerNormRefResult {
  /** Normalised, scaled and shifted rows, [rows * cols]. */
  out: Float64Array;
  /** Per row (mean, rstd), [rows * 2], rstd = 1 / sqrt(biased var + eps). */
  stats: Float64Array;
}

/**
 * GPT-2 layer norm in float64: for each row of `x` [rows, cols],
 * `out = (x - mean) / sqrt(var + eps) * gamma + beta` with the biased variance (divide by cols).
 */
export function layerNormRef(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  rows: number,
  cols: number,
  eps = 1e-5,
): LayerNormRefResult {
  const out = new Float64Array(rows * cols);
  const stats = new Float64Array(rows * 2);
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
    for (let c = 0; c < cols; c++) out[o + c] = (x[o + c] - mean) * rstd * gamma[c] + beta[c];
    stats[2 * r] = mean;
    stats[2 * r + 1] = rstd;
  }
  return { out, stats };
}
