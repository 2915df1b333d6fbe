/** Float64 CPU twins of `kernels/reduce.wgsl`. */

/** sum_i x[i]^2 in float64 (pairwise, so its own error is ~1e-16 relative for any length). */
export function sumSquaresRef(x: ArrayLike<number>): number {
  return pairwise(x, 0, x.length, true);
}

/** sum_i x[i] in float64 (pairwise). */
export function sumRef(x: ArrayLike<number>): number {
  return pairwise(x, 0, x.length, false);
}

function pairwise(x: ArrayLike<number>, lo: number, hi: number, square: boolean): number {
  if (hi - lo <= 64) {
    let s = 0;
    for (let i = lo; i < hi; i++) s += square ? x[i] * x[i] : x[i];
    return s;
  }
  const mid = (lo + hi) >>> 1;
  return pairwise(x, lo, mid, square) + pairwise(x, mid, hi, square);
}

/** x * alpha elementwise, in float64 (a new array). */
export function scaleRef(x: ArrayLike<number>, alpha: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * alpha;
  return out;
}
