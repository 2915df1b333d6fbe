/**
 * Bridges between instance attribution (IA) and neuron attribution (NA), after Yu, Atanasova and
 * Augenstein 2024 (methods.md §2(g)), and the overlap measures used to compare their findings.
 *
 * - NA-Instances (`neuron_analysis_feb.py: mapping_instances`): training instances ranked through the test
 *   instance's top neurons. For each training instance, DCG over the test's top-n neurons (default 5):
 *   gain_j = z-score of the training instance's attribution of neuron j among its own neuron scores (0
 *   when j is not among its attributed neurons), discount_j = (0-based rank of j in the training
 *   instance's list) + 2 (2 when absent), score = Σ_j (2^gain_j − 1) / log2(discount_j); a score of
 *   exactly 0 becomes −∞. The z-score divides by the population standard deviation (ddof = 0), as
 *   `scipy.stats.zscore` does by default; `ddof: 1` gives the sample standard deviation.
 *   A list whose scores are all equal (one neuron, say) has no spread: its gains are 0 here, where scipy
 *   returns NaN (and numpy's argsort then ranks that instance first).
 * - IA-Neurons: the top neuron(s) by NA of the top-1 IA training instance (cutoff 1 by default).
 */
import { InputError } from "../errors.ts";
import type { Neuron } from "./neurons.ts";

/** A training instance's NA result: its neurons ranked by attribution (highest first). */
export type RankedNeurons = Neuron[];

const key = (n: { layer: number; neuron: number }) => `${n.layer}:${n.neuron}`;

/** Options of {@link naInstanceScores}. */
export interface NaInstanceOptions {
  /** Delta degrees of freedom of the z-score's standard deviation: 0 (default, scipy) or 1. */
  ddof?: 0 | 1;
}

/**
 * Standard scores of `x` with the standard deviation over (n − ddof); all 0 when the spread is 0 or
 * n ≤ ddof (see the module comment).
 */
export function zScores(x: ArrayLike<number>, ddof: 0 | 1 = 0): Float64Array {
  const m = x.length;
  const out = new Float64Array(m);
  if (m <= ddof) return out;
  let mean = 0;
  for (let i = 0; i < m; i++) mean += x[i];
  mean /= m;
  let ss = 0;
  for (let i = 0; i < m; i++) ss += (x[i] - mean) ** 2;
  const sd = Math.sqrt(ss / (m - ddof));
  if (sd > 0) { for (let i = 0; i < m; i++) out[i] = (x[i] - mean) / sd; }
  return out;
}

/**
 * NA-Instances scores (see the module comment): `testTop` are the test instance's top neurons (the first
 * `n` are used), `train[i]` the ranked neuron list of training instance i (its attributed/coarse neurons).
 */
export function naInstanceScores(
  testTop: RankedNeurons,
  train: RankedNeurons[],
  n = 5,
  opts: NaInstanceOptions = {},
): Float64Array {
  const ddof = opts.ddof ?? 0;
  if (ddof !== 0 && ddof !== 1) throw new InputError(`ddof ${ddof} must be 0 or 1`, { field: "ddof" });
  const top = testTop.slice(0, n);
  if (top.length === 0) {
    throw new InputError("the test instance has no attributed neurons", { field: "neurons" });
  }
  const out = new Float64Array(train.length);
  train.forEach((list, i) => {
    const z = zScores(list.map((x) => x.score), ddof);
    const pos = new Map(list.map((x, r) => [key(x), r]));
    let score = 0;
    for (const j of top) {
      const r = pos.get(key(j));
      const gain = r === undefined ? 0 : z[r];
      const discount = (r ?? 0) + 2;
      score += (2 ** gain - 1) / Math.log2(discount);
    }
    out[i] = score === 0 ? -Infinity : score;
  });
  return out;
}

/** IA-Neurons: the first `cutoff` neurons of the top-1 IA training instance's ranked list. */
export function iaNeurons(iaRanking: number[], trainNeurons: RankedNeurons[], cutoff = 1): Neuron[] {
  if (iaRanking.length === 0) throw new InputError("empty IA ranking", { field: "ranking" });
  const list = trainNeurons[iaRanking[0]];
  if (!list) {
    throw new InputError(`no neuron list for training instance ${iaRanking[0]}`, { field: "ranking" });
  }
  return list.slice(0, cutoff);
}

/** |A ∩ B| / |A ∪ B| over keys (1 for two empty sets). */
export function jaccard<T>(a: Iterable<T>, b: Iterable<T>, keyOf: (x: T) => string = String): number {
  const A = new Set([...a].map(keyOf)), B = new Set([...b].map(keyOf));
  if (A.size === 0 && B.size === 0) return 1;
  let inter = 0;
  for (const x of A) if (B.has(x)) inter++;
  return inter / (A.size + B.size - inter);
}

/** Jaccard of two neuron sets. */
export function neuronJaccard(
  a: Array<{ layer: number; neuron: number }>,
  b: Array<{ layer: number; neuron: number }>,
): number {
  return jaccard(a, b, key);
}

/** Ranks (1-based, ties get the mean rank), −∞ and NaN treated as the lowest values. */
function ranks(x: ArrayLike<number>): Float64Array {
  const v = Array.from(x, (y) => (Number.isNaN(y) ? -Infinity : y));
  const idx = v.map((_, i) => i).sort((a, b) => v[a] - v[b] || (v[a] === v[b] ? 0 : a - b));
  const r = new Float64Array(v.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && v[idx[j + 1]] === v[idx[i]]) j++;
    for (let k = i; k <= j; k++) r[idx[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

/** Spearman rank correlation (Pearson of the tie-averaged ranks); NaN when either side is constant. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new InputError(`spearman: lengths ${a.length} != ${b.length}`, { field: "scores" });
  }
  const ra = ranks(a), rb = ranks(b);
  const n = ra.length;
  const ma = ra.reduce((s, x) => s + x, 0) / n, mb = rb.reduce((s, x) => s + x, 0) / n;
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < n; i++) {
    num += (ra[i] - ma) * (rb[i] - mb);
    da += (ra[i] - ma) ** 2;
    db += (rb[i] - mb) ** 2;
  }
  return da === 0 || db === 0 ? NaN : num / Math.sqrt(da * db);
}
