/**
 * Edit-success scores of Hase et al. 2023 (belief-localization `experiments/evaluate.py:
 * make_editing_results_df`; methods.md 2(f)), from the probability P of the edit's target after a
 * prompt before (pre) and after (post) the edit. P is ROME's: exp(−mean token NLL) of `" " + target`
 * after the prompt, on the FIRST prompt of each kind (rewrite, paraphrase, neighborhood).
 *
 * - rewrite score (all objectives but Fact Erasure): `max(2e-8, 1 − (1 − post) / (1 − pre))`, the share of
 *   the probability mass the target lacked that the edit moved to it;
 * - erasure score (Fact Erasure): `max(0, (pre − post) / pre)`, the share of the target's mass removed;
 * - paraphrase score: the same as the rewrite score on the first paraphrase;
 * - neighborhood score: `1 − |post − pre| / (|pre − 0.5| + 0.5)` on the first neighborhood prompt (the
 *   change as a share of the largest change possible from pre);
 * - target score: the harmonic mean of the three (0 when one of them is 0 or missing, as scipy's hmean
 *   raising falls back to 0 in the reference).
 */

/** The score of a change from `pre` to `post` of the target's probability on the rewrite or a paraphrase. */
export function rewriteScore(pre: number, post: number, erasure = false): number {
  if (erasure) return Math.max(0, (pre - post) / pre);
  return Math.max(2e-8, 1 - (1 - post) / (1 - pre));
}

/** The neighborhood score: 1 − |post − pre| / (|pre − 0.5| + 0.5). */
export function neighborhoodScore(pre: number, post: number): number {
  return 1 - Math.abs(post - pre) / (Math.abs(pre - 0.5) + 0.5);
}

/** Harmonic mean of `xs`; 0 when any is missing or not positive (the reference's fallback). */
export function harmonicMean(xs: Array<number | null>): number {
  if (xs.length === 0 || xs.some((x) => x === null || !(x > 0))) return 0;
  return xs.length / (xs as number[]).reduce((a, x) => a + 1 / x, 0);
}

/** Pre- and post-edit probabilities of the target on the first prompt of each kind (null: no such prompt). */
export interface ProbPair {
  pre: number;
  post: number;
}

/** The scores of one edit. */
export interface EditScores {
  /** Rewrite score, or the erasure score for Fact Erasure. */
  rewrite: number;
  /** Paraphrase score (null: no paraphrase). */
  paraphrase: number | null;
  /** Neighborhood score (null: no neighborhood prompt). */
  neighborhood: number | null;
  /** Harmonic mean of the three (0 when one is missing or 0). */
  target: number;
}

/** All Hase scores of one edit from its probability pairs. */
export function hasePoints(
  rewrite: ProbPair,
  paraphrase: ProbPair | null,
  neighborhood: ProbPair | null,
  erasure = false,
): EditScores {
  const r = rewriteScore(rewrite.pre, rewrite.post, erasure);
  const p = paraphrase ? rewriteScore(paraphrase.pre, paraphrase.post, erasure) : null;
  const n = neighborhood ? neighborhoodScore(neighborhood.pre, neighborhood.post) : null;
  return { rewrite: r, paraphrase: p, neighborhood: n, target: harmonicMean([r, p, n]) };
}
