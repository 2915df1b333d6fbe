/**
 * Output schema of `eval --json` and `eval --out FILE` (engram format): always
 * `{"schema": "engram-eval/1", "results": [...]}`, one result per method, also for one method.
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";

const score = z.number().nullable();

/** One request's (or the mean's) CounterFact / KnowEdit scores; null where the request has no data. */
const caseScores = {
  reliability: z.number().describe("token accuracy of target_new after the rewrite prompt"),
  generalization: score,
  locality: score,
  portability: score,
  fluency: score.describe("n-gram entropy in bits"),
  efficacy_score: score,
  efficacy_magnitude: score,
  paraphrase_score: score,
  paraphrase_magnitude: score,
  neighborhood_score: score,
  neighborhood_magnitude: score,
};

/** The wild (greedy generation) scores, with `--wild`. */
const wildScores = {
  wild_exact: score.optional(),
  wild_contains: score.optional(),
  wild_generalization_exact: score.optional(),
  wild_generalization_contains: score.optional(),
};

/** Means over requests: the case scores (reliability may be null without requests), then S. */
export const evalMetrics = z.strictObject({
  ...caseScores,
  reliability: score,
  score: score.describe("harmonic mean of ES, PS and NS"),
  ...wildScores,
});

/** One method's evaluation. */
export const evalMethodResult = z.strictObject({
  method: z.string().describe("the method as given to --method (a +nas suffix included)"),
  mode: z.enum(["single", "sequential", "batch"]),
  n: z.int().describe("requests evaluated"),
  metrics: evalMetrics.describe("post-edit means"),
  units: z.record(z.string(), z.string()).describe("the unit of each metric"),
  pre_metrics: evalMetrics.describe("the same measures on the unedited model (locality, fluency: null)"),
  timing: z.strictObject({ edit_s: z.number(), eval_s: z.number(), edit_s_per_request: z.number() }),
  hparams: z.record(z.string(), z.unknown()).describe("hyper-parameters the editor reported"),
  warnings: z.array(z.string()),
  per_case: z.array(z.strictObject({
    case_id: z.union([z.int(), z.string()]).optional(),
    subject: z.string(),
    target_new: z.string(),
    ...caseScores,
    ...wildScores,
    pre: z.strictObject(caseScores),
  })).optional().describe("each request's scores (--per-case)"),
  // The run's settings: `engram eval` always writes them; a library caller of resultsJson may not have them.
  data: z.string().optional().describe("the --data file"),
  model: z.string().optional().describe("the --model folder"),
  bos: z.boolean().optional().describe("whether prompts got the tokenizer's BOS prefix"),
  hparams_file: z.string().optional().describe("the hparams file of this method, if one was given"),
  fluency_settings: z.strictObject({
    max_out_len: z.int(),
    new_tokens: z.int().optional(),
    top_k: z.int(),
    seed: z.int(),
  }).optional(),
});
/** One method's evaluation, as written. */
export type EvalMethodResult = z.infer<typeof evalMethodResult>;

/** `eval --json` / `eval --out`: every method's result, in --method order. */
export const evalOutput = z.strictObject({
  schema: schemaField("eval", 1),
  results: z.array(evalMethodResult),
});
/** What `eval --json` prints and `eval --out` writes. */
export type EvalOutput = z.infer<typeof evalOutput>;
