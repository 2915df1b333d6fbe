/** Float64 CPU twin of `kernels/bias_grad.wgsl`. */

/** Column sums `dbias[c] = sum_r dout[r, c]` of `dout` [rows, cols], in float64; [cols]. */
export function biasGradRef(dout: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const dbias = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) dbias[c] += dout[o + c];
  }
  return dbias;
}
