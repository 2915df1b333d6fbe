/**
 * Ordinary least squares, R² and the nested-model F-test, as R's `lm` / `summary(lm)$r.squared` /
 * `anova(full, reduced)` compute them for the regressions of Hase et al. 2023
 * (belief-localization `third_party/data-analysis.ipynb`; methods.md 2(f)):
 *
 * - `score ~ factor(layer)`: one indicator column per layer level (the span of R's intercept plus
 *   treatment contrasts);
 * - `score ~ trace`: intercept and the tracing effect;
 * - `score ~ factor(layer) * trace`: per-layer intercepts and per-layer slopes (the span of R's
 *   intercept, layer contrasts, trace and the layer × trace interactions).
 *
 * Aliased (linearly dependent) columns are dropped in order, as R's pivoting QR does (tolerance 1e-7
 * relative to the column's norm), so the residual degrees of freedom are n − rank. The p-value of the F
 * statistic comes from the regularized incomplete beta function (continued fraction), written here so
 * that nothing depends on a statistics package.
 */

/** A least-squares fit: residual sum of squares, rank of the design, and R² against the mean. */
export interface OlsFit {
  /** Observations. */
  n: number;
  /** Columns kept (the rank of the design after dropping aliased columns). */
  rank: number;
  /** Residual sum of squares. */
  rss: number;
  /** Total sum of squares about the mean (the intercept-only model's RSS). */
  tss: number;
  /** 1 − rss / tss (R's multiple R² for a model with an intercept in its span); null when tss is 0. */
  r2: number | null;
}

/**
 * Fits y on the columns of `x` (`x[i]` is row i; no intercept is added: put a column of ones, or
 * indicators that sum to one, in `x`). Columns are orthogonalised in order by modified Gram–Schmidt
 * (twice, for stability) and a column whose remaining norm is below 1e-7 of its own norm is dropped.
 */
export function ols(x: number[][], y: number[]): OlsFit {
  const n = y.length;
  if (x.length !== n) throw new RangeError(`design has ${x.length} rows, y has ${n}`);
  const p = n > 0 ? x[0].length : 0;
  const basis: Float64Array[] = [];
  for (let j = 0; j < p; j++) {
    const col = Float64Array.from(x, (row) => row[j]);
    const norm0 = Math.hypot(...col);
    if (norm0 === 0) continue;
    for (let pass = 0; pass < 2; pass++) {
      for (const q of basis) {
        let d = 0;
        for (let i = 0; i < n; i++) d += q[i] * col[i];
        for (let i = 0; i < n; i++) col[i] -= d * q[i];
      }
    }
    const norm = Math.hypot(...col);
    if (norm <= 1e-7 * norm0) continue;
    for (let i = 0; i < n; i++) col[i] /= norm;
    basis.push(col);
  }
  const r = Float64Array.from(y);
  for (let pass = 0; pass < 2; pass++) {
    for (const q of basis) {
      let d = 0;
      for (let i = 0; i < n; i++) d += q[i] * r[i];
      for (let i = 0; i < n; i++) r[i] -= d * q[i];
    }
  }
  let rss = 0;
  for (let i = 0; i < n; i++) rss += r[i] * r[i];
  const mean = y.reduce((a, b) => a + b, 0) / Math.max(1, n);
  let tss = 0;
  for (const v of y) tss += (v - mean) ** 2;
  return { n, rank: basis.length, rss, tss, r2: tss > 0 ? 1 - rss / tss : null };
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error below 1e-14). */
export function lnGamma(x: number): number {
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1, d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10000; m++) {
    const m2 = 2 * m;
    let num = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    num = -((a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) return h;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1]. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0 && b > 0)) throw new RangeError(`incompleteBeta needs a, b > 0, got ${a}, ${b}`);
  if (!(x >= 0 && x <= 1)) throw new RangeError(`incompleteBeta needs x in [0, 1], got ${x}`);
  if (x === 0 || x === 1) return x;
  const lnFront = lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x);
  // The fraction converges fast for x < (a + 1) / (a + b + 2); otherwise use I_x(a,b) = 1 − I_{1−x}(b,a).
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lnFront) * betaFraction(x, a, b)) / a;
  return 1 - (Math.exp(lnFront) * betaFraction(1 - x, b, a)) / b;
}

/** Upper tail P(F > f) of the F distribution with (d1, d2) degrees of freedom. */
export function fSurvival(f: number, d1: number, d2: number): number {
  if (!(d1 > 0 && d2 > 0)) throw new RangeError(`F needs positive degrees of freedom, got ${d1}, ${d2}`);
  if (!(f > 0)) return 1;
  if (f === Infinity) return 0;
  return incompleteBeta(d2 / (d2 + d1 * f), d2 / 2, d1 / 2);
}

/** The F-test of a reduced model nested in a full one (R's `anova(full, reduced)`). */
export interface FTest {
  /** F statistic; null when the test is undefined; Infinity when only the full fit is exact. */
  f: number | null;
  /** Numerator degrees of freedom: rank(full) − rank(reduced). */
  df1: number;
  /** Denominator degrees of freedom: n − rank(full). */
  df2: number;
  /** P(F > f); null when the test is undefined (no residual degrees of freedom, or equal ranks). */
  p: number | null;
}

/** F-test of `reduced` against `full` (both fitted to the same y; `reduced`'s columns in `full`'s span). */
export function fTest(full: OlsFit, reduced: OlsFit): FTest {
  const df1 = full.rank - reduced.rank, df2 = full.n - full.rank;
  if (df1 <= 0 || df2 <= 0) return { f: null, df1, df2, p: null };
  const num = Math.max(0, reduced.rss - full.rss) / df1;
  const den = full.rss / df2;
  if (den === 0) return { f: num > 0 ? Infinity : null, df1, df2, p: num > 0 ? 0 : null };
  const f = num / den;
  return { f, df1, df2, p: fSurvival(f, df1, df2) };
}

/** The three regressions of one (method, objective, metric) cell and what the paper reports of them. */
export interface LocalizationRegression {
  /** Observations (edits). */
  n: number;
  /** Distinct edit layers in the data. */
  layers: number;
  /** R² of `score ~ factor(layer)`. */
  r2Layer: number | null;
  /** R² of `score ~ trace`. */
  r2Trace: number | null;
  /** R² of `score ~ factor(layer) * trace`. */
  r2Both: number | null;
  /** R²(layer × trace) − R²(layer): what the tracing effect adds over the layer. */
  r2Added: number | null;
  /** F-test of `score ~ factor(layer)` against `score ~ factor(layer) * trace`. */
  fTest: FTest;
}

/**
 * Fits `score ~ factor(layer)`, `score ~ trace` and `score ~ factor(layer) * trace` on the rows
 * (`layer[i]`, `trace[i]`, `score[i]`) and tests the added R² of the tracing effect by the F-test of the
 * layer-only model against the full one.
 */
export function localizationRegression(
  layer: number[],
  trace: number[],
  score: number[],
): LocalizationRegression {
  const n = score.length;
  if (layer.length !== n || trace.length !== n) throw new RangeError("layer, trace and score lengths differ");
  const levels = [...new Set(layer)].sort((a, b) => a - b);
  const onehot = (l: number) => levels.map((v) => (v === l ? 1 : 0));
  const lyr = ols(layer.map(onehot), score);
  const tr = ols(trace.map((t) => [1, t]), score);
  const both = ols(layer.map((l, i) => [...onehot(l), ...onehot(l).map((v) => v * trace[i])]), score);
  return {
    n,
    layers: levels.length,
    r2Layer: lyr.r2,
    r2Trace: tr.r2,
    r2Both: both.r2,
    r2Added: both.r2 !== null && lyr.r2 !== null ? both.r2 - lyr.r2 : null,
    fTest: fTest(both, lyr),
  };
}
