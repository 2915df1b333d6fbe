/**
 * Output schemas of `neurons --json` (knowledge neurons by integrated gradients, with their faithfulness)
 * and `attribute --json` (training instances by gradient similarity).
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";

const stat = z.number().nullable().describe("null when nothing was pooled (no runs)");

/** Blocking statistics of one set of neurons (src/attribute/neurons.ts BlockStats). */
export const blockStats = z.strictObject({
  retained_ratio: stat.describe("mean p_blocked(target) / p(target) (1 = unchanged)"),
  prob_drop: stat.describe("mean p(label) - p_blocked(label)"),
  flips: z.int().describe("runs whose blocked argmax differs from the unblocked one"),
  runs: z.int().describe("blocked forward passes pooled"),
});

/** Faithfulness at one k: the top-k neurons and random ones, kept alone or removed. */
export const faithfulnessRow = z.strictObject({
  k: z.int(),
  sufficiency: blockStats,
  comprehensiveness: blockStats,
  random_sufficiency: blockStats,
  random_comprehensiveness: blockStats,
});

/** How each faithfulness statistic is defined, by name. */
export const faithfulnessStatistics = z.strictObject({
  sufficiency: z.string(),
  comprehensiveness: z.string(),
  prob_drop: z.string(),
  flips: z.string(),
  retained_ratio: z.string(),
  runs: z.string(),
});

const neuronRef = { layer: z.int(), neuron: z.int() };

/** `neurons --json`. */
export const neuronsOutput = z.strictObject({
  schema: schemaField("neurons", 1),
  model: z.string(),
  target: z.string(),
  target_token: z.int(),
  attributed: z.string().describe("what f is and how IG is computed"),
  prefix: z.int().nullable().describe("the BOS id prompts start with, or null"),
  steps: z.int(),
  points: z.enum(["left", "linspace"]),
  activation: z.enum(["post", "pre"]),
  threshold: z.number(),
  threshold_rule: z.string(),
  prompts: z.array(z.strictObject({
    prompt: z.string(),
    prob: z.number(),
    completeness: z.array(z.strictObject({
      layer: z.int(),
      sum_scores: z.number(),
      prob_minus_baseline: z.number(),
    })).describe("IG completeness per layer: the scores' sum against f(x) - f(baseline)"),
    coarse: z.int().describe("coarse neurons of this prompt"),
    top: z.array(z.strictObject({ ...neuronRef, score: z.number() })),
  })),
  neurons: z.array(z.strictObject({ ...neuronRef, score: z.number(), share: z.number().optional() })),
  refined: z.boolean(),
  refine: z.strictObject({ share: z.number(), min_count: z.int(), rule: z.string() }).nullable(),
  suppress_amplify: z.strictObject({
    neurons: z.int(),
    prob: z.number(),
    suppressed: z.number(),
    amplified: z.number(),
    suppress_change: z.number(),
    amplify_change: z.number(),
  }),
  faithfulness: z.strictObject({
    statistics: faithfulnessStatistics,
    ks: z.array(z.int()),
    random_trials: z.int(),
    seed: z.int(),
    pooled: z.array(faithfulnessRow),
    per_prompt: z.array(z.strictObject({
      prompt: z.string(),
      target: z.int(),
      target_prob: z.number(),
      label: z.int(),
      label_prob: z.number(),
      rows: z.array(faithfulnessRow),
    })),
  }),
});
/** What `neurons --json` prints. */
export type NeuronsOutput = z.infer<typeof neuronsOutput>;

/** `attribute --json`. */
export const attributeOutput = z.strictObject({
  schema: schemaField("attribute", 1),
  model: z.string(),
  method: z.enum(["grad-dot", "grad-cos", "tracin"]),
  prompt: z.string(),
  target: z.string(),
  target_token: z.int(),
  params: z.array(z.string()).describe("the weights whose gradients are compared"),
  loss: z.string(),
  checkpoints: z.array(z.strictObject({ dir: z.string(), step: z.int(), lr: z.number() })).optional(),
  instances: z.int().describe("training instances scored"),
  seconds: z.number(),
  top: z.array(z.strictObject({
    id: z.string(),
    score: z.number(),
    text: z.string(),
    meta: z.record(z.string(), z.string()).describe("the record's other string fields, as in the file"),
  })),
});
/** What `attribute --json` prints. */
export type AttributeOutput = z.infer<typeof attributeOutput>;
