/**
 * Student's t distribution and the two-sided t confidence interval of a mean: the one home for the t
 * quantile. The CDF comes from the regularized incomplete beta function already used by the localization
 * study's F-test (./localization/regression.ts): for t ≥ 0, P(T ≤ t) = 1 − ½·I_{ν/(ν+t²)}(ν/2, ½).
 *
 * @module
 */
import { incompleteBeta } from "./localization/regression.ts";

/** P(T ≤ t) for Student's t with `df` > 0 degrees of freedom. */
export function tCdf(t: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`t distribution needs df > 0, got ${df}`);
  if (Number.isNaN(t)) return NaN;
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t with `df` degrees of freedom (bisection on {@link tCdf}, ~1e-12). */
export function tQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`tQuantile needs p in (0, 1), got ${p}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -tQuantile(1 - p, df);
  let lo = 0, hi = 1;
  while (tCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, hi); i++) {
    const mid = 0.5 * (lo + hi);
    if (tCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/** A mean with its two-sided t confidence interval (snake_case: it is written into result files). */
export interface TInterval {
  /** Number of finite values used. */
  n: number;
  /** Their mean (null when n = 0). */
  mean: number | null;
  /** Sample standard deviation (ddof 1; null when n < 2). */
  sd: number | null;
  /** Half-width t_{(1+level)/2, n−1} · sd / √n (null when n < 2). */
  half_width: number | null;
  /** mean − half_width (null when n < 2). */
  lo: number | null;
  /** mean + half_width (null when n < 2). */
  hi: number | null;
  /** The confidence level (0.95 by default). */
  level: number;
}

/** The t interval of the mean of `xs` (non-finite values are left out). */
export function tInterval(xs: number[], level = 0.95): TInterval {
  if (!(level > 0 && level < 1)) throw new RangeError(`level must be in (0, 1), got ${level}`);
  const v = xs.filter((x) => Number.isFinite(x));
  const n = v.length;
  if (n === 0) return { n, mean: null, sd: null, half_width: null, lo: null, hi: null, level };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { n, mean, sd: null, half_width: null, lo: null, hi: null, level };
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const half = tQuantile((1 + level) / 2, n - 1) * sd / Math.sqrt(n);
  return { n, mean, sd, half_width: half, lo: mean - half, hi: mean + half, level };
}
