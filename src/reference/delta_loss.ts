/** Float64 CPU twin of `kernels/delta_loss.wgsl` (the δ optimisation's loss rows and their logit gradient). */

/** One row of {@link deltaLossRef}: NLL of `target` (kind 0), KL against p0 row `k` (1), or KL init (2). */
export interface DeltaLossRow {
  kind: 0 | 1 | 2;
  /** The target id (kind 0) or the p0 row (kinds 1, 2). */
  index: number;
  /** Weight of the row's loss and gradient. */
  weight: number;
}

/**
 * Row losses and dL/dlogits of `logits` [rows, cols] in float64, as the kernel defines them (KL from the
 * log-softmax directly); kind-2 rows write their P0 row into `p0` in the kernel's layout (rows of
 * cols + 2: the logits, their max m and the sum of exp(x − m)).
 */
export function deltaLossRef(
  logits: ArrayLike<number>,
  info: DeltaLossRow[],
  cols: number,
  p0: Float64Array,
): { losses: Float64Array; dlogits: Float64Array } {
  const rows = info.length;
  const losses = new Float64Array(rows), dlogits = new Float64Array(rows * cols);
  const lp = new Float64Array(cols);
  info.forEach(({ kind, index, weight: w }, r) => {
    const o = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, logits[o + c]);
    let l = 0;
    for (let c = 0; c < cols; c++) l += Math.exp(logits[o + c] - m);
    const lse = m + Math.log(l);
    for (let c = 0; c < cols; c++) lp[c] = logits[o + c] - lse;
    if (kind === 0) {
      losses[r] = -w * lp[index];
      for (let c = 0; c < cols; c++) dlogits[o + c] = w * (Math.exp(lp[c]) - (c === index ? 1 : 0));
    } else if (kind === 1) {
      const k = index * (cols + 2);
      const lse0 = p0[k + cols] + Math.log(p0[k + cols + 1]);
      const lp0 = (c: number) => p0[k + c] - lse0;
      let d = 0;
      for (let c = 0; c < cols; c++) d += Math.exp(lp[c]) * (lp[c] - lp0(c));
      losses[r] = w * d;
      for (let c = 0; c < cols; c++) dlogits[o + c] = w * Math.exp(lp[c]) * (lp[c] - lp0(c) - d);
    } else {
      const k = index * (cols + 2);
      for (let c = 0; c < cols; c++) p0[k + c] = logits[o + c];
      p0[k + cols] = m;
      p0[k + cols + 1] = l;
    }
  });
  return { losses, dlogits };
}
