/** Float64 CPU twins of `kernels/softmax.wgsl`. */

/** Log-softmax of each row of `x` [rows, cols] in float64 (max-subtracted), [rows * cols]. */
export function logSoftmaxRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[o + c]);
    let l = 0;
    for (let c = 0; c < cols; c++) l += Math.exp(x[o + c] - m);
    const logL = Math.log(l);
    for (let c = 0; c < cols; c++) out[o + c] = x[o + c] - m - logL;
  }
  return out;
}

/** Softmax of each row of `x` [rows, cols] in float64 (max-subtracted), [rows * cols]. */
export function softmaxRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = logSoftmaxRef(x, rows, cols);
  for (let i = 0; i < out.length; i++) out[i] = Math.exp(out[i]);
  return out;
}
