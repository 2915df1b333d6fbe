/**
 * Output schema of `study attribution --json` (instance attribution against neuron attribution, Yu et
 * al. 2024's comparison).
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";

const mean = z.number().nullable().describe("mean over the tests (null: none had it)");
const neuron = z.strictObject({ layer: z.int(), neuron: z.int(), score: z.number() });

/** `study attribution --json`. */
export const studyAttributionOutput = z.strictObject({
  schema: schemaField("study-attribution", 1),
  model: z.string(),
  method: z.enum(["grad-dot", "grad-cos"]),
  train_loss: z.enum(["answer", "all"]),
  k: z.int(),
  pool: z.int().describe("training instances in the candidate pool"),
  ig_steps: z.int(),
  neuron_attribution: z.strictObject({
    steps: z.int(),
    points: z.enum(["linspace", "left"]),
    activation: z.enum(["pre", "post"]),
    threshold: z.number(),
    strict: z.boolean(),
    top_neurons: z.int(),
    ia_neuron_cutoff: z.int(),
    z_score_ddof: z.union([z.literal(0), z.literal(1)]),
  }),
  finetune: z.strictObject({
    steps: z.int(),
    lr: z.number(),
    random_draws: z.int(),
    optimizer: z.string(),
    measure: z.string(),
  }),
  seconds: z.number(),
  summary: z.strictObject({
    ia_precision_at_k: mean,
    na_instances_precision_at_k: mean,
    instance_jaccard: mean,
    rank_correlation: mean,
    neuron_jaccard: mean,
    ia_neurons_pooled: z.strictObject({ na_unique: z.int(), ia_unique: z.int(), overlap: z.int() }),
    finetune_delta_top: mean,
    finetune_delta_random: mean,
  }),
  rows: z.array(z.strictObject({
    test: z.string(),
    ia_top: z.array(z.string()),
    na_instances_top: z.array(z.string()),
    ia_precision_at_k: z.number().nullable(),
    na_instances_precision_at_k: z.number().nullable(),
    instance_jaccard: z.number(),
    rank_correlation: z.number().nullable(),
    na_neurons: z.array(neuron),
    ia_neurons: z.array(neuron),
    neuron_jaccard: z.number(),
    finetune: z.strictObject({
      name: z.string(),
      logp_before: z.number(),
      delta_top: z.number(),
      delta_random: z.number(),
      top_ids: z.array(z.string()),
    }),
  })),
});
/** What `study attribution --json` prints. */
export type StudyAttributionOutput = z.infer<typeof studyAttributionOutput>;
