/**
 * Rows whose softmax denominator loses digits when summed naively in f32, for the tests that must fail
 * when the kernels' Kahan compensation is lost (kernels/lib/kahan.wgsl, kernels/lib/online_softmax.wgsl).
 */

/** Invocations per row in softmax.wgsl and cross_entropy.wgsl (WG there). */
export const ROW_WG = 128;

/**
 * `rows` (≤ 3) rows of `cols` logits, mostly "tiny" ones at -16.9 ± 0.2: exp of them, 3.8e-8 .. 5.6e-8,
 * is below half an ulp of 1 (2^-24 ≈ 6e-8), so a naive f32 sum that already holds 1 drops every one.
 * Each invocation sums its strided slice (c = lid, lid + WG, ...), so to make each slice lossy,
 * row 0 puts a large logit (0) at the start of every slice, and row 1 in the middle of every slice (the
 * running max grows mid-stream: the rescaling path). Row 2 has a single large logit: only one slice
 * loses digits there, the cross-slice fold the rest. With cols = WG * k + odd, each slice holds
 * ~k tiny terms, i.e. a relative loss of ~k * 4.6e-8 in the naive sum.
 *
 * Returns the logits and, per row, the index of one large logit and one tiny one (e.g. as targets).
 */
export function lossyRows(
  r: () => number,
  rows: number,
  cols: number,
): { x: Float32Array; big: number[]; tiny: number[] } {
  if (rows > 3 || cols < 4 * ROW_WG) {
    throw new RangeError(`lossyRows: rows ${rows} > 3 or cols ${cols} too small`);
  }
  const x = new Float32Array(rows * cols);
  for (let i = 0; i < x.length; i++) x[i] = -16.9 + 0.4 * (r() - 0.5);
  const mid = Math.floor(cols / ROW_WG / 2) * ROW_WG;
  const starts = [0, mid, Math.floor(cols / 3)];
  const big: number[] = [], tiny: number[] = [];
  for (let row = 0; row < rows; row++) {
    const n = row === 2 ? 1 : ROW_WG;
    for (let j = 0; j < n; j++) x[row * cols + starts[row] + j] = 0;
    big.push(starts[row] + (n - 1));
    tiny.push(cols - 1 - row);
  }
  return { x, big, tiny };
}
