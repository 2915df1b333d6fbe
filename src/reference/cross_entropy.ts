/** Float64 CPU twin of `kernels/cross_entropy.wgsl`. */

/** Target value marking a row that does not count (loss 0, gradient 0). */
const IGNORE = 0xffffffff;

/**
 * Cross-entropy of each row of `logits` [rows, cols] against `targets` [rows] in float64:
 * `losses[r] = -log softmax(logits[r])[t_r]` and `dlogits[r, c] = scale * (softmax(logits[r])[c] -
 * (c == t_r))`; rows with target 0xFFFFFFFF get loss 0 and a zero gradient, other out-of-range
 * targets NaN (as the kernel does).
 */
export function crossEntropyRef(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  rows: number,
  cols: number,
  scale = 1,
): { losses: Float64Array; dlogits: Float64Array } {
  const losses = new Float64Array(rows);
  const dlogits = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const t = targets[r];
    if (t === IGNORE) continue;
    if (!(Number.isInteger(t) && t >= 0 && t < cols)) {
      losses[r] = NaN;
      dlogits.fill(NaN, o, o + cols);
      continue;
    }
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, logits[o + c]);
    let l = 0;
    for (let c = 0; c < cols; c++) l += Math.exp(logits[o + c] - m);
    const logL = Math.log(l);
    losses[r] = logL - (logits[o + t] - m);
    for (let c = 0; c < cols; c++) {
      dlogits[o + c] = scale * (Math.exp(logits[o + c] - m - logL) - (c === t ? 1 : 0));
    }
  }
  return { losses, dlogits };
}
