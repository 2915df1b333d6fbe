/**
 * The zod schema of `summary.json` of `engram study attribution --out DIR` (`--json` prints the same
 * document): schema `engram-attribution-study/1`, see src/evaluate/attribution/summary.ts for every
 * field's meaning.
 *
 * @module
 */
import { z } from "./zod.ts";

const num = z.number();
const nullableNum = z.number().nullable();

/** A mean with its two-sided t interval (src/evaluate/t_interval.ts). */
export const tIntervalSchema = z.object({
  n: z.number().int().nonnegative(),
  mean: nullableNum,
  sd: nullableNum,
  half_width: nullableNum,
  lo: nullableNum,
  hi: nullableNum,
  level: num,
});

/** One pooled (k, mode) cell of the faithfulness tests. */
export const pooledBlockSchema = z.object({
  runs: z.number().int().nonnegative(),
  flips: z.number().int().nonnegative(),
  flip_rate: num,
  kept_predictions: num,
  prob_drop_mean: num,
  p_baseline_label_mean: num,
  p_blocked_label_mean: num,
  kept_probability_ratio: num,
  retained_ratio_target_mean: num,
});

const verdict = z.boolean().nullable();

/** `engram-attribution-study/1`: the summary of Yu et al.'s study. */
export const attributionStudySchema = z.object({
  schema: z.literal("engram-attribution-study/1"),
  model: z.string(),
  fingerprint: z.string(),
  settings: z.record(z.string(), z.unknown()),
  tests: z.number().int().nonnegative(),
  pool: z.number().int().nonnegative(),
  seconds: num,
  definitions: z.record(z.string(), z.string()),
  faithfulness: z.array(z.object({
    k: z.number().int().positive(),
    k_used_mean: num,
    sufficiency: pooledBlockSchema,
    comprehensiveness: pooledBlockSchema,
    random_sufficiency: pooledBlockSchema,
    random_comprehensiveness: pooledBlockSchema,
  })),
  overlap: z.object({
    ia_precision_at_k: nullableNum,
    na_instances_precision_at_k: nullableNum,
    instance_jaccard: tIntervalSchema,
    rank_correlation: tIntervalSchema,
    neuron_jaccard: tIntervalSchema,
    ia_neurons_pooled: z.object({ na_unique: num, ia_unique: num, overlap: num }),
    unique_instances: z.object({ ia: num, na_instances: num, slots: num }),
  }),
  diversity: z.object({
    ia_cos_mean: tIntervalSchema,
    na_instances_cos_mean: tIntervalSchema,
    random_cos_mean: tIntervalSchema,
  }),
  finetune: z.object({
    seeds: z.array(z.number().int()),
    delta_top: tIntervalSchema,
    delta_random_by_seed: z.array(num),
    delta_random: tIntervalSchema,
    gain_over_random_by_seed: z.array(num),
    gain_over_random: tIntervalSchema,
    gain_over_random_tests: tIntervalSchema,
  }),
  findings: z.array(z.object({
    id: z.union([z.literal(1), z.literal(2), z.literal(3)]),
    claim: z.string(),
    statistic: z.string(),
    value: nullableNum,
    comparison: z.string(),
    threshold: num,
    holds: verdict,
    baseline: z.string(),
    secondary: z.object({ statistic: z.string(), value: nullableNum, holds: verdict }),
  })).length(3),
});

/** The summary's type as the schema sees it. */
export type AttributionStudyDocument = z.infer<typeof attributionStudySchema>;
