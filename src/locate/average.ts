/**
 * Average indirect effect (AIE) over many traces, grouped by token class as in ROME's
 * `average_causal_effects` notebook: first / middle / last subject token, first subsequent token,
 * further tokens, last token. Tokens before the subject (and a BOS prefix) belong to no class. A class
 * that spans several tokens of one prompt (middle subject tokens, further tokens) contributes the mean
 * over those tokens, once per prompt. A single-token subject counts as both first and last subject token.
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

/**
 * Token positions of each class for a prompt of `T` tokens with subject [a, b): the indices of
 * {@link TOKEN_CLASSES} map to lists of positions (possibly empty).
 */
export function tokenClassPositions(T: number, [a, b]: [number, number]): number[][] {
  const range = (lo: number, hi: number) => Array.from({ length: Math.max(0, hi - lo) }, (_, i) => lo + i);
  const last = T - 1;
  return [
    [a],
    range(a + 1, b - 1),
    [b - 1],
    b < last ? [b] : [],
    range(b + 1, last),
    [last],
  ];
}

/** Averages of one kind: per class and layer. */
export interface ClassAverage {
  classes: string[];
  /** Mean indirect effect [class][layer]. */
  mean: number[][];
  /** Half-width of the 95% confidence interval 1.96 * std / sqrt(n) [class][layer] (0 when n < 2). */
  ci95: number[][];
  /** Prompts contributing to each class. */
  count: number[];
}

/** Accumulates per-prompt effect grids ([token][layer]) into token-class means with 95% CIs. */
export class ClassAccumulator {
  private readonly sum: number[][];
  private readonly sumSq: number[][];
  private readonly n: number[];

  constructor(readonly nLayer: number) {
    this.sum = TOKEN_CLASSES.map(() => new Array(nLayer).fill(0));
    this.sumSq = TOKEN_CLASSES.map(() => new Array(nLayer).fill(0));
    this.n = TOKEN_CLASSES.map(() => 0);
  }

  /** Adds one prompt's effects grid with subject range [a, b). */
  add(effects: number[][], subjectRange: [number, number]): void {
    const pos = tokenClassPositions(effects.length, subjectRange);
    pos.forEach((ps, k) => {
      if (ps.length === 0) return;
      this.n[k]++;
      for (let l = 0; l < this.nLayer; l++) {
        let m = 0;
        for (const p of ps) m += effects[p][l] / ps.length;
        this.sum[k][l] += m;
        this.sumSq[k][l] += m * m;
      }
    });
  }

  /** Means, 95% CI half-widths (sample std) and counts. */
  result(): ClassAverage {
    const mean = this.sum.map((row, k) => row.map((s) => (this.n[k] ? s / this.n[k] : 0)));
    const ci95 = this.sumSq.map((row, k) =>
      row.map((sq, l) => {
        const n = this.n[k];
        if (n < 2) return 0;
        const v = Math.max(0, (sq - n * mean[k][l] * mean[k][l]) / (n - 1));
        return 1.96 * Math.sqrt(v) / Math.sqrt(n);
      })
    );
    return { classes: [...TOKEN_CLASSES], mean, ci95, count: [...this.n] };
  }
}
