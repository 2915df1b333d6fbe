// The regression code of the localization study against R² and F statistics computed by hand, and the
// F distribution against tabulated quantiles.
import assert from "node:assert/strict";
import {
  fSurvival,
  fTest,
  incompleteBeta,
  lnGamma,
  localizationRegression,
  ols,
} from "../src/evaluate/localization/regression.ts";

const close = (a: number | null, b: number, tol: number, what: string) => {
  assert.ok(a !== null && Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
};

Deno.test("lnGamma at integers and one half", () => {
  close(lnGamma(1), 0, 1e-13, "ln Γ(1)");
  close(lnGamma(5), Math.log(24), 1e-13, "ln Γ(5)");
  close(lnGamma(0.5), 0.5 * Math.log(Math.PI), 1e-13, "ln Γ(1/2)");
  close(lnGamma(30.5), 72.9534711841694, 1e-10, "ln Γ(30.5)"); // Python math.lgamma(30.5)
});

Deno.test("incomplete beta: closed forms", () => {
  // I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(2, 3) = P(Binomial(4, x) >= 2).
  close(incompleteBeta(0.3, 1, 1), 0.3, 1e-14, "I(1,1)");
  close(incompleteBeta(0.7, 3.5, 1), 0.7 ** 3.5, 1e-13, "I(3.5,1)");
  close(incompleteBeta(0.5, 2, 3), 11 / 16, 1e-14, "I_0.5(2,3)");
  const x = 0.8; // P(Bin(4, .8) >= 2) = 1 - .2^4 - 4 * .8 * .2^3
  close(incompleteBeta(x, 2, 3), 1 - 0.2 ** 4 - 4 * 0.8 * 0.2 ** 3, 1e-14, "I_0.8(2,3)");
  assert.equal(incompleteBeta(0, 2, 2), 0);
  assert.equal(incompleteBeta(1, 2, 2), 1);
  assert.throws(() => incompleteBeta(0.5, 0, 1), RangeError);
});

Deno.test("F upper tail at tabulated critical values", () => {
  // F_{0.95}(1, 10) = 4.964603, F_{0.95}(3, 20) = 3.098391, F_{0.99}(2, 5) = 13.27393, F_{0.95}(5, 10) = 3.325835.
  close(fSurvival(4.964603, 1, 10), 0.05, 1e-6, "F(1,10)");
  close(fSurvival(3.098391, 3, 20), 0.05, 1e-6, "F(3,20)");
  close(fSurvival(13.27393, 2, 5), 0.01, 1e-6, "F(2,5)");
  close(fSurvival(3.325835, 5, 10), 0.05, 1e-6, "F(5,10)");
  // F(2, 2): P(F > f) = 1 / (1 + f).
  close(fSurvival(39, 2, 2), 1 / 40, 1e-14, "F(2,2)");
  assert.equal(fSurvival(0, 3, 4), 1);
});

Deno.test("OLS R² of a line by hand", () => {
  // x = 1..4, y = 1, 2, 2, 4: Sxy = 4.5, Sxx = 5, Syy = 4.75, R² = Sxy² / (Sxx Syy) = 20.25 / 23.75.
  const fit = ols([[1, 1], [1, 2], [1, 3], [1, 4]], [1, 2, 2, 4]);
  assert.equal(fit.rank, 2);
  close(fit.r2, 20.25 / 23.75, 1e-14, "R²");
  close(fit.rss, 4.75 - 20.25 / 5, 1e-13, "RSS");
  // A repeated column is aliased: the rank stays 2 and the fit is unchanged.
  const dup = ols([[1, 1, 2], [1, 2, 4], [1, 3, 6], [1, 4, 8]], [1, 2, 2, 4]);
  assert.equal(dup.rank, 2);
  close(dup.r2, 20.25 / 23.75, 1e-13, "R² with an aliased column");
});

Deno.test("layer / trace / both regressions and the F-test by hand", () => {
  // Layer 0: trace 0, 1, 2 -> 1, 2, 3.5; layer 1: -> 2, 2, 2.5. Both group means are 13/6, so R²(layer) = 0;
  // TSS = 10/3; per-layer lines leave RSS 1/24 + 1/24; R²(both) = 1 − (1/12) / (10/3) = 0.975;
  // R²(trace) = Sxy² / (Sxx Syy) = 9 / (4 · 10/3) = 0.675; F = ((10/3 − 1/12) / 2) / ((1/12) / 2) = 39 on
  // (2, 2) degrees of freedom, P(F > 39) = 1/40.
  const r = localizationRegression([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 2, 3.5, 2, 2, 2.5]);
  assert.equal(r.n, 6);
  assert.equal(r.layers, 2);
  close(r.r2Layer, 0, 1e-14, "R² layer");
  close(r.r2Trace, 0.675, 1e-14, "R² trace");
  close(r.r2Both, 0.975, 1e-14, "R² both");
  close(r.r2Added, 0.975, 1e-14, "added R²");
  assert.equal(r.fTest.df1, 2);
  assert.equal(r.fTest.df2, 2);
  close(r.fTest.f, 39, 1e-10, "F");
  close(r.fTest.p, 1 / 40, 1e-12, "p");
});

Deno.test("F-test is null without residual degrees of freedom", () => {
  const r = localizationRegression([0, 1], [0.3, 0.7], [0.1, 0.9]);
  assert.equal(r.fTest.df2, 0);
  assert.equal(r.fTest.p, null);
  assert.equal(r.fTest.f, null);
  // A constant score has no variance to explain.
  const c = localizationRegression([0, 0, 1, 1], [0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]);
  assert.equal(c.r2Layer, null);
  const full = ols([[1, 0], [1, 1], [1, 2]], [0, 1, 2]);
  const red = ols([[1], [1], [1]], [0, 1, 2]);
  assert.equal(fTest(full, red).df2, 1);
  close(fTest(full, red).p, 0, 1e-12, "p of a perfect fit"); // F is huge: RSS is rounding only
});

/** RSS of y on full-rank columns x by the normal equations, solved by Gaussian elimination (float64). */
function rssNormalEquations(x: number[][], y: number[]): number {
  const p = x[0].length;
  const a = Array.from({ length: p }, (_, i) => [
    ...Array.from({ length: p }, (_, j) => x.reduce((s, r) => s + r[i] * r[j], 0)),
    x.reduce((s, r, k) => s + r[i] * y[k], 0),
  ]);
  for (let c = 0; c < p; c++) {
    let piv = c;
    for (let r = c + 1; r < p; r++) if (Math.abs(a[r][c]) > Math.abs(a[piv][c])) piv = r;
    [a[c], a[piv]] = [a[piv], a[c]];
    for (let r = 0; r < p; r++) {
      if (r === c) continue;
      const f = a[r][c] / a[c][c];
      for (let k = c; k <= p; k++) a[r][k] -= f * a[c][k];
    }
  }
  const beta = a.map((row, i) => row[p] / row[i]);
  return y.reduce((s, v, k) => s + (v - x[k].reduce((t, xv, j) => t + xv * beta[j], 0)) ** 2, 0);
}

Deno.test("OLS RSS equals the normal equations on a random layer × trace design", () => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const n = 23, levels = 3;
  const layer = Array.from({ length: n }, (_, i) => i % levels);
  const trace = Array.from({ length: n }, () => rand());
  const y = layer.map((l, i) => 0.3 * l + (l === 1 ? 2 : -1) * trace[i] + 0.2 * (rand() - 0.5));
  const design = layer.map((l, i) => [
    ...Array.from({ length: levels }, (_, k) => (k === l ? 1 : 0)),
    ...Array.from({ length: levels }, (_, k) => (k === l ? trace[i] : 0)),
  ]);
  const fit = ols(design, y);
  assert.equal(fit.rank, 2 * levels);
  const ref = rssNormalEquations(design, y);
  assert.ok(Math.abs(fit.rss - ref) < 1e-12 * Math.max(1, ref), `${fit.rss} vs ${ref}`);
  // R's treatment-contrast design (intercept, contrasts, trace, interactions) spans the same space.
  const rDesign = layer.map((l, i) => [
    1,
    l === 1 ? 1 : 0,
    l === 2 ? 1 : 0,
    trace[i],
    l === 1 ? trace[i] : 0,
    l === 2 ? trace[i] : 0,
  ]);
  assert.ok(Math.abs(rssNormalEquations(rDesign, y) - ref) < 1e-10);
  const r = localizationRegression(layer, trace, y);
  const mean = y.reduce((a, b) => a + b, 0) / n;
  const tss = y.reduce((s, v) => s + (v - mean) ** 2, 0);
  close(r.r2Both, 1 - ref / tss, 1e-12, "R² both");
  assert.equal(r.fTest.df1, levels);
  assert.equal(r.fTest.df2, n - 2 * levels);
});
