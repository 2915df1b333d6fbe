/**
 * Average indirect effect (AIE) over many traces, grouped by token class as in ROME's
 * `notebooks/average_causal_effects.ipynb`: first / middle / last subject token, first subsequent token,
 * further tokens, last token. Tokens before the subject (and a BOS prefix) belong to no class. A
 * single-token subject counts as both first and last subject token; a subject followed by exactly one
 * token gives that token to both "first subsequent token" and "last token" (the notebook's indexing).
 *
 * Two pooling rules for the classes that span several tokens of one prompt (middle subject tokens,
 * further tokens):
 * - `"token"` (default, the notebook's): every token's restored score is one sample of its class
 *   (`Avg.add_all`). The class mean is the mean of the pooled restored scores minus the mean corrupted
 *   score over all traced prompts (`d["result"][i] - d["low_score"]`); the 95% CI half-width is
 *   1.96 · std / √N with the population std (numpy's default ddof = 0) of the pooled restored scores and
 *   N the number of traced prompts (the notebook's `count = d["size"]`, the first-subject-token count),
 *   the same N for every class.
 * - `"prompt"` (engram's earlier rule): each prompt contributes the mean indirect effect
 *   (restored − its own corrupted score) over the class's tokens, once; the class mean is the mean over
 *   the prompts that have the class, and the CI uses the sample std (n − 1) of those per-prompt values
 *   and their count.
 */

/** The six token classes, in plotting order. */
export const TOKEN_CLASSES = [
  "first subject token",
  "middle subject tokens",
  "last subject token",
  "first subsequent token",
  "further tokens",
  "last token",
] as const;

/** How several tokens of one class in one prompt are pooled: see the module doc. */
export type ClassPool = "token" | "prompt";

/** The pooling rules, default first. */
export const CLASS_POOLS: readonly ClassPool[] = ["token", "prompt"];

/**
 * Token positions of each class for a prompt of `T` tokens with subject [a, b): the indices of
 * {@link TOKEN_CLASSES} map to lists of positions (possibly empty). As in the notebook, the first
 * subsequent token is position b whenever the prompt has one (also when b is the last token).
 */
export function tokenClassPositions(T: number, [a, b]: [number, number]): number[][] {
  const range = (lo: number, hi: number) => Array.from({ length: Math.max(0, hi - lo) }, (_, i) => lo + i);
  const last = T - 1;
  return [
    [a],
    range(a + 1, b - 1),
    [b - 1],
    b <= last ? [b] : [],
    range(b + 1, last),
    [last],
  ];
}

/** Averages of one kind: per class and layer. */
export interface ClassAverage {
  /** The class names, {@link TOKEN_CLASSES} in order. */
  classes: string[];
  /** Pooling rule used. */
  pool: ClassPool;
  /** Average indirect effect [class][layer]. */
  mean: number[][];
  /** Half-width of the 95% confidence interval [class][layer] (see the module doc; 0 without spread). */
  ci95: number[][];
  /** Samples of each class: tokens ("token" pool) or prompts having the class ("prompt" pool). */
  count: number[];
  /** Prompts accumulated. */
  prompts: number;
  /** Mean corrupted score over the prompts. */
  lowScore: number;
}

/** Accumulates per-prompt score grids ([token][layer]) into token-class averages with 95% CIs. */
export class ClassAccumulator {
  // Running mean and sum of squared deviations (Welford) per class and layer.
  private readonly avg: number[][];
  private readonly m2: number[][];
  private readonly n: number[];
  private prompts = 0;
  private lowSum = 0;

  /** An empty accumulator for `nLayer` layers and pooling rule `pool` (default "token", the notebook's). */
  constructor(readonly nLayer: number, readonly pool: ClassPool = "token") {
    if (!CLASS_POOLS.includes(pool)) throw new RangeError(`unknown pool '${pool}'`);
    this.avg = TOKEN_CLASSES.map(() => new Array(nLayer).fill(0));
    this.m2 = TOKEN_CLASSES.map(() => new Array(nLayer).fill(0));
    this.n = TOKEN_CLASSES.map(() => 0);
  }

  /**
   * Adds one prompt: its restored scores ([token][layer], p of the answer with the state restored), its
   * corrupted score (p_corrupt, nothing restored) and its subject range [a, b).
   */
  add(scores: number[][], lowScore: number, subjectRange: [number, number]): void {
    const pos = tokenClassPositions(scores.length, subjectRange);
    this.prompts++;
    this.lowSum += lowScore;
    pos.forEach((ps, k) => {
      if (ps.length === 0) return;
      if (this.pool === "token") {
        // Raw scores, pooled token by token; the mean low score is subtracted at the end.
        for (const p of ps) this.push(k, scores[p]);
        return;
      }
      this.push(
        k,
        Array.from({ length: this.nLayer }, (_, l) => {
          let m = 0;
          for (const p of ps) m += scores[p][l] - lowScore;
          return m / ps.length;
        }),
      );
    });
  }

  /** Adds one sample row ([layer]) to class `k`'s running mean and squared deviations. */
  private push(k: number, row: number[]): void {
    const n = ++this.n[k];
    for (let l = 0; l < this.nLayer; l++) {
      const d = row[l] - this.avg[k][l];
      this.avg[k][l] += d / n;
      this.m2[k][l] += d * (row[l] - this.avg[k][l]);
    }
  }

  /** Means, 95% CI half-widths and counts (see the module doc for each pooling rule). */
  result(): ClassAverage {
    const lowScore = this.prompts ? this.lowSum / this.prompts : 0;
    const token = this.pool === "token";
    const mean = this.avg.map((row, k) => row.map((m) => (token && this.n[k] ? m - lowScore : m)));
    const ci95 = this.m2.map((row, k) =>
      row.map((m2) => {
        const n = this.n[k];
        // "token": population std (numpy's ddof = 0) over the prompt count; "prompt": sample std over n.
        if (token) return n === 0 ? 0 : 1.96 * Math.sqrt(m2 / n) / Math.sqrt(this.prompts);
        return n < 2 ? 0 : 1.96 * Math.sqrt(m2 / (n - 1)) / Math.sqrt(n);
      })
    );
    return {
      classes: [...TOKEN_CLASSES],
      pool: this.pool,
      mean,
      ci95,
      count: [...this.n],
      prompts: this.prompts,
      lowScore,
    };
  }
}
