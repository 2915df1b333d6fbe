/**
 * Row reductions over logits and scores: argmax, top-k, log-sum-exp and log-softmax. The one home of
 * these small loops, which every layer above uses on host arrays.
 *
 * @module
 */

/** Index of the largest of `x[off .. off+len)` relative to `off`; the first one on ties. */
export function argmax(x: ArrayLike<number>, off: number = 0, len?: number): number {
  len ??= x.length - off;
  let best = 0;
  for (let i = 1; i < len; i++) if (x[off + i] > x[off + best]) best = i;
  return best;
}

/**
 * Indices of the `k` largest values of `x`, largest first; ties go to the lower index. `k` is clipped to
 * [0, x.length]. Partial insertion for small k, a full sort otherwise.
 */
export function topK(x: ArrayLike<number>, k: number): number[] {
  const n = x.length;
  k = Math.max(0, Math.min(Math.floor(k), n));
  if (k === 0) return [];
  if (k * 8 > n) {
    return Array.from({ length: n }, (_, i) => i).sort((a, b) => x[b] - x[a] || a - b).slice(0, k);
  }
  const top: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = x[i];
    if (top.length === k && !(v > x[top[k - 1]])) continue;
    let j = top.length === k ? k - 1 : top.length;
    while (j > 0 && v > x[top[j - 1]]) {
      top[j] = top[j - 1];
      j--;
    }
    top[j] = i;
  }
  return top;
}

/** log Σ exp over `x[off .. off+len)`, shifted by the maximum so that it neither overflows nor underflows. */
export function logSumExp(x: ArrayLike<number>, off: number = 0, len?: number): number {
  len ??= x.length - off;
  let m = -Infinity;
  for (let v = 0; v < len; v++) m = Math.max(m, x[off + v]);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let v = 0; v < len; v++) s += Math.exp(x[off + v] - m);
  return m + Math.log(s);
}

/** Writes the log-softmax of `x[off .. off+len)` into `out[0 .. len)` (float64 arithmetic) and returns `out`. */
export function logSoftmaxInto<T extends Float64Array | Float32Array>(
  x: ArrayLike<number>,
  off: number,
  len: number,
  out: T,
): T {
  const lse = logSumExp(x, off, len);
  for (let v = 0; v < len; v++) out[v] = x[off + v] - lse;
  return out;
}
