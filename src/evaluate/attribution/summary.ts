/**
 * The summary of `engram study attribution` (schema `engram-attribution-study/1`): Yu et al.'s
 * faithfulness statistics per k beside the random-k baseline, IA vs NA overlap and diversity, the
 * fine-tuning study with 95% t intervals over seeds, and the table of the paper's three headline
 * findings (holds / does not hold, with the numbers and thresholds).
 *
 * "Keeps > x% of the prediction" is read two ways, both from Yu et al.'s statistics and both reported:
 * - primary, `kept_predictions`: the fraction of blocked runs whose predicted label is unchanged,
 *   1 − flips / runs (Yu et al. count "# of prediction changed");
 * - secondary, `kept_probability_ratio`: mean p_blocked(label) / mean p_baseline(label), i.e.
 *   1 − mean prob_drop / mean p_baseline(label) — a RATIO of means, not Yu et al.'s difference statistic.
 *
 * @module
 */
import { type TInterval, tInterval } from "../t_interval.ts";
import type { BlockRecord, TestRecord } from "./record.ts";

/** The schema tag of the summary. */
export const ATTRIBUTION_STUDY_SCHEMA = "engram-attribution-study/1";

/** Pooled blocking statistics of one (k, mode, attributed|random) cell over all tests. */
export interface PooledBlock {
  /** Blocked runs pooled (tests, times the draws for random neurons). */
  runs: number;
  /** Runs whose prediction changed. */
  flips: number;
  /** flips / runs. */
  flip_rate: number;
  /** 1 − flip_rate: the fraction of predictions kept (the findings' primary statistic). */
  kept_predictions: number;
  /** Yu et al.'s mean of p_baseline(label) − p_blocked(label). */
  prob_drop_mean: number;
  /** Mean p_baseline(label) over the runs. */
  p_baseline_label_mean: number;
  /** Mean p_blocked(label) over the runs (= p_baseline_label_mean − prob_drop_mean). */
  p_blocked_label_mean: number;
  /** A ratio of means: p_blocked_label_mean / p_baseline_label_mean (the findings' secondary statistic). */
  kept_probability_ratio: number;
  /** engram's per-run ratio p_blocked(target) / p(target), averaged. */
  retained_ratio_target_mean: number;
}

/** Faithfulness at one k. */
export interface FaithfulnessSummary {
  k: number;
  /** Mean neurons actually blocked (k clipped to each test's coarse neurons). */
  k_used_mean: number;
  sufficiency: PooledBlock;
  comprehensiveness: PooledBlock;
  random_sufficiency: PooledBlock;
  random_comprehensiveness: PooledBlock;
}

/** One row of the findings table. */
export interface Finding {
  id: 1 | 2 | 3;
  claim: string;
  /** What is compared with the threshold. */
  statistic: string;
  value: number | null;
  /** The comparison: value > threshold (findings 1, 2) or the CI's lower end <= threshold (finding 3). */
  comparison: string;
  threshold: number;
  /** null when the study lacks what the finding needs (k absent, fewer than 2 seeds). */
  holds: boolean | null;
  /** The same statistic for the random baseline (findings 1, 2) or the 95% CI (finding 3). */
  baseline: string;
  /** The secondary reading of the claim and whether it holds under it. */
  secondary: { statistic: string; value: number | null; holds: boolean | null };
}

/** The whole summary. */
export interface AttributionSummary {
  schema: typeof ATTRIBUTION_STUDY_SCHEMA;
  model: string;
  fingerprint: string;
  settings: Record<string, unknown>;
  tests: number;
  pool: number;
  seconds: number;
  definitions: Record<string, string>;
  faithfulness: FaithfulnessSummary[];
  overlap: {
    ia_precision_at_k: number | null;
    na_instances_precision_at_k: number | null;
    instance_jaccard: TInterval;
    rank_correlation: TInterval;
    neuron_jaccard: TInterval;
    ia_neurons_pooled: { na_unique: number; ia_unique: number; overlap: number };
    unique_instances: { ia: number; na_instances: number; slots: number };
  };
  diversity: { ia_cos_mean: TInterval; na_instances_cos_mean: TInterval; random_cos_mean: TInterval };
  finetune: {
    seeds: number[];
    delta_top: TInterval;
    delta_random_by_seed: number[];
    delta_random: TInterval;
    gain_over_random_by_seed: number[];
    gain_over_random: TInterval;
    gain_over_random_tests: TInterval;
  };
  findings: Finding[];
}

/** What each statistic means (written into the summary). */
export const DEFINITIONS: Record<string, string> = {
  sufficiency: "at the target (last) position every FFN intermediate activation of every layer is zeroed " +
    "except the selected neurons (Yu et al.'s block_mode 'sufficiency')",
  comprehensiveness: "the selected neurons' activations zeroed at the target position ('suppress')",
  label: "the unblocked model's prediction (argmax) at the target position",
  prob_drop_mean: "Yu et al.'s mean of p_baseline(label) - p_blocked(label)",
  flips: "Yu et al.'s count of runs whose predicted label changed",
  kept_predictions: "1 - flips / runs: the fraction of predictions kept (primary reading of 'keeps x%')",
  kept_probability_ratio:
    "mean p_blocked(label) / mean p_baseline(label): a ratio of means, NOT Yu et al.'s " +
    "statistic (secondary reading of 'keeps x%')",
  random: "k_used neurons drawn uniformly without replacement from all FFN neurons, several draws per test",
  k_used: "k clipped to the test's coarse neurons (Yu et al.'s use_top ranks the stored coarse list)",
  finetune_delta: "change of log p(target | test prompt) after fine-tuning a copy of the model",
  gain_over_random: "delta_top - delta_random; 95% t interval over seeds (per seed: mean over tests)",
  gain_over_random_tests: "the same difference per test (averaged over seeds); 95% t interval over tests",
  diversity:
    "mean pairwise cosine of the instances' last hidden states (ln_f at the last token; Yu et al.'s " +
    "diversity_measurement); lower = more diverse",
};

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** Pools one cell over tests: `cells[i]` of test i, whose unblocked p(label) is `pLabel[i]`. */
export function poolBlocks(cells: BlockRecord[], pLabel: number[]): PooledBlock {
  let runs = 0, flips = 0, drop = 0, base = 0, ratio = 0;
  cells.forEach((c, i) => {
    runs += c.runs;
    flips += c.flips;
    drop += c.prob_drop * c.runs;
    base += pLabel[i] * c.runs;
    ratio += c.retained_ratio_target * c.runs;
  });
  const dropMean = drop / runs, baseMean = base / runs;
  return {
    runs,
    flips,
    flip_rate: flips / runs,
    kept_predictions: 1 - flips / runs,
    prob_drop_mean: dropMean,
    p_baseline_label_mean: baseMean,
    p_blocked_label_mean: baseMean - dropMean,
    kept_probability_ratio: (baseMean - dropMean) / baseMean,
    retained_ratio_target_mean: ratio / runs,
  };
}

/** Faithfulness pooled per k over the tests (every test must have the same ks). */
export function summarizeFaithfulness(tests: TestRecord[]): FaithfulnessSummary[] {
  if (tests.length === 0) return [];
  const pL = tests.map((t) => t.p_label);
  return tests[0].faithfulness.map((f0, j) => {
    const cells = tests.map((t) => {
      const c = t.faithfulness[j];
      if (!c || c.k !== f0.k) throw new RangeError(`test ${t.index} has no faithfulness row for k = ${f0.k}`);
      return c;
    });
    return {
      k: f0.k,
      k_used_mean: mean(cells.map((c) => c.k_used)),
      sufficiency: poolBlocks(cells.map((c) => c.sufficiency), pL),
      comprehensiveness: poolBlocks(cells.map((c) => c.comprehensiveness), pL),
      random_sufficiency: poolBlocks(cells.map((c) => c.random_sufficiency), pL),
      random_comprehensiveness: poolBlocks(cells.map((c) => c.random_comprehensiveness), pL),
    };
  });
}

/** The fine-tuning summary: per seed the mean over tests, t intervals over seeds and over tests. */
export function summarizeFinetune(tests: TestRecord[]): AttributionSummary["finetune"] {
  const seeds = tests[0]?.finetune.seeds ?? [];
  const top = tests.map((t) => t.finetune.delta_top);
  const bySeed = seeds.map((_, s) => mean(tests.map((t) => t.finetune.delta_random_by_seed[s])));
  const topMean = mean(top);
  const gainBySeed = bySeed.map((r) => topMean - r);
  const perTest = tests.map((t) => t.finetune.delta_top - mean(t.finetune.delta_random_by_seed));
  return {
    seeds,
    delta_top: tInterval(top),
    delta_random_by_seed: bySeed,
    delta_random: tInterval(bySeed),
    gain_over_random_by_seed: gainBySeed,
    gain_over_random: tInterval(gainBySeed),
    gain_over_random_tests: tInterval(perTest),
  };
}

const f4 = (v: number | null | undefined) => (v === null || v === undefined ? "n/a" : v.toFixed(4));

/**
 * The findings table. 1: sufficiency at k = 1 keeps > 80% of the predictions; 2: comprehensiveness at
 * k = 100 keeps > 90%; 3: fine-tuning on the top-k IA instances is no better than on k random ones —
 * holds when the 95% t interval (over seeds) of the gain over random reaches 0 or below (lower end ≤ 0).
 */
export function findings(faith: FaithfulnessSummary[], ft: AttributionSummary["finetune"]): Finding[] {
  const at = (k: number) => faith.find((f) => f.k === k);
  const keep = (
    id: 1 | 2,
    k: number,
    mode: "sufficiency" | "comprehensiveness",
    threshold: number,
    claim: string,
  ): Finding => {
    const f = at(k);
    const cell = f?.[mode];
    const rnd = f?.[mode === "sufficiency" ? "random_sufficiency" : "random_comprehensiveness"];
    return {
      id,
      claim,
      statistic: `kept_predictions, ${mode} k = ${k} (k_used mean ${f ? f.k_used_mean.toFixed(1) : "n/a"})`,
      value: cell?.kept_predictions ?? null,
      comparison: ">",
      threshold,
      holds: cell ? cell.kept_predictions > threshold : null,
      baseline: rnd
        ? `random k: kept_predictions ${f4(rnd.kept_predictions)}, ratio ${f4(rnd.kept_probability_ratio)}`
        : "n/a",
      secondary: {
        statistic: `kept_probability_ratio (a ratio of means), ${mode} k = ${k}`,
        value: cell?.kept_probability_ratio ?? null,
        holds: cell ? cell.kept_probability_ratio > threshold : null,
      },
    };
  };
  const g = ft.gain_over_random, gt = ft.gain_over_random_tests;
  return [
    keep(1, 1, "sufficiency", 0.8, "keeping only the single top neuron keeps > 80% of the prediction"),
    keep(2, 100, "comprehensiveness", 0.9, "ablating the top 100 neurons keeps > 90% of the prediction"),
    {
      id: 3,
      claim: "influential (top-k IA) instances are no better than k random ones for fine-tuning",
      statistic: `lower end of the 95% t interval over ${g.n} seeds of delta_top - delta_random (log p)`,
      value: g.lo,
      comparison: "<=",
      threshold: 0,
      holds: g.lo === null ? null : g.lo <= 0,
      baseline: `gain ${f4(g.mean)} [${f4(g.lo)}, ${f4(g.hi)}]`,
      secondary: {
        statistic: `lower end of the 95% t interval over ${gt.n} tests of the per-test gain`,
        value: gt.lo,
        holds: gt.lo === null ? null : gt.lo <= 0,
      },
    },
  ];
}

/** Unique neurons of each side pooled over tests, and how many both share (Yu et al.'s Counter sets). */
export function pooledNeurons(
  na: Array<Array<{ layer: number; neuron: number }>>,
  ia: Array<Array<{ layer: number; neuron: number }>>,
): { na_unique: number; ia_unique: number; overlap: number } {
  const keys = (xs: Array<Array<{ layer: number; neuron: number }>>) =>
    new Set(xs.flat().map((n) => `${n.layer}:${n.neuron}`));
  const a = keys(na), b = keys(ia);
  return { na_unique: a.size, ia_unique: b.size, overlap: [...a].filter((x) => b.has(x)).length };
}

/** The whole summary of the tests on disk. */
export function summarize(
  tests: TestRecord[],
  head: {
    model: string;
    fingerprint: string;
    settings: Record<string, unknown>;
    pool: number;
    seconds: number;
  },
): AttributionSummary {
  const ts = [...tests].sort((a, b) => a.index - b.index);
  const nonNull = (xs: Array<number | null>) => xs.filter((x): x is number => x !== null);
  const prec = (xs: Array<number | null>) => (nonNull(xs).length ? mean(nonNull(xs)) : null);
  const faith = summarizeFaithfulness(ts);
  const ft = summarizeFinetune(ts);
  const k = ts[0]?.overlap.ia_top.length ?? 0;
  return {
    schema: ATTRIBUTION_STUDY_SCHEMA,
    model: head.model,
    fingerprint: head.fingerprint,
    settings: head.settings,
    tests: ts.length,
    pool: head.pool,
    seconds: head.seconds,
    definitions: DEFINITIONS,
    faithfulness: faith,
    overlap: {
      ia_precision_at_k: prec(ts.map((t) => t.overlap.ia_precision_at_k)),
      na_instances_precision_at_k: prec(ts.map((t) => t.overlap.na_instances_precision_at_k)),
      instance_jaccard: tInterval(ts.map((t) => t.overlap.instance_jaccard)),
      rank_correlation: tInterval(ts.map((t) => t.overlap.rank_correlation)),
      neuron_jaccard: tInterval(ts.map((t) => t.overlap.neuron_jaccard)),
      ia_neurons_pooled: pooledNeurons(
        ts.map((t) => t.overlap.na_neurons),
        ts.map((t) => t.overlap.ia_neurons),
      ),
      unique_instances: {
        ia: new Set(ts.flatMap((t) => t.overlap.ia_top)).size,
        na_instances: new Set(ts.flatMap((t) => t.overlap.na_instances_top)).size,
        slots: ts.length * k,
      },
    },
    diversity: {
      ia_cos_mean: tInterval(nonNull(ts.map((t) => t.diversity.ia_cos_mean))),
      na_instances_cos_mean: tInterval(nonNull(ts.map((t) => t.diversity.na_instances_cos_mean))),
      random_cos_mean: tInterval(nonNull(ts.map((t) => t.diversity.random_cos_mean))),
    },
    finetune: ft,
    findings: findings(faith, ft),
  };
}
