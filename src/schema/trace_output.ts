/**
 * Output schemas of `trace`: one prompt (`engram-trace/1`, stdout of --json and `--out DIR/trace.json`)
 * and many facts (`engram-trace-facts/1`, stdout of --facts --json and `--out DIR/average.json`).
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";

const grid = z.array(z.array(z.number())).describe("[token][layer]");
const kind = z.enum(["hidden", "mlp", "attn"]);
const metric = z.enum(["prob", "logprob", "logit-diff"]);

/** The corruption a trace used: noise (its distribution) or token replacement (the replacing subject). */
const corruption = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("noise"),
    dist: z.enum(["gaussian", "uniform", "mvn", "t"]),
    df: z.number().optional().describe("degrees of freedom of dist t"),
    replace: z.boolean().describe("noise replaces the subject's embeddings instead of being added"),
    noise_rng: z.enum(["numpy", "mulberry32"]),
  }),
  z.strictObject({
    kind: z.literal("tokens"),
    ids: z.array(z.int()).optional().describe("the replacement subject's token ids (one prompt)"),
    subject: z.string().nullable().describe("the replacing subject (null: drawn per fact)"),
    drawn: z.boolean().optional().describe("replacements drawn per fact from the other subjects (--facts)"),
  }),
]);

/** One traced kind of a one-prompt trace, with the run's settings. */
export const traceKindOutput = z.strictObject({
  kind,
  tokens: z.array(z.string()).describe("the prompt's token strings"),
  subject_range: z.tuple([z.int(), z.int()]).describe("subject tokens [a, b)"),
  layers: z.int(),
  p_clean: z.number(),
  p_corrupt: z.number(),
  effects: grid.describe("indirect effects [token][layer], in the metric's units"),
  total_effect: z.number(),
  scores: grid.describe("restored metric [token][layer]"),
  window: z.int().describe("effective restoration window (1 for hidden)"),
  answer_ids: z.array(z.int()),
  answer: z.string(),
  predicted: z.string().describe("the clean run's top-1 token"),
  known: z.boolean(),
  target_prob: z.enum(["first", "sequence"]),
  samples: z.int(),
  noise_std: z.number(),
  seed: z.int(),
  ids: z.array(z.int()).describe("the prompt's token ids"),
  prompt: z.string(),
  subject: z.string(),
  target: z.string().nullable(),
  known_rule: z.enum(["whole", "greedy", "first"]),
  noise_rng: z.enum(["numpy", "mulberry32"]),
  corruption,
  metric,
  counterfactual: z.string().nullable(),
  counterfactual_id: z.int().nullable(),
  metric_clean: z.number(),
  metric_corrupt: z.number(),
  bos: z.boolean(),
  batched: z.boolean(),
  forwards: z.int(),
  seconds: z.number(),
});
/** One kind of a one-prompt trace. */
export type TraceKindOutput = z.infer<typeof traceKindOutput>;

/** `trace --json` (one prompt): one entry per traced kind, in --kind order (hidden, mlp, attn for all). */
export const traceOutput = z.strictObject({
  schema: schemaField("trace", 1),
  traces: z.array(traceKindOutput),
});
/** What `trace --json` prints for one prompt. */
export type TraceOutput = z.infer<typeof traceOutput>;

/** Token-class averages of one kind. */
export const classAverageOutput = z.strictObject({
  classes: z.array(z.string()),
  pool: z.enum(["token", "prompt"]),
  mean: z.array(z.array(z.number())).describe("average indirect effect [class][layer]"),
  ci95: z.array(z.array(z.number())).describe("half-width of the 95% confidence interval [class][layer]"),
  count: z.array(z.int()).describe("samples of each class"),
  prompts: z.int(),
  low_score: z.number().describe("mean corrupted score over the prompts"),
});
/** Token-class averages of one kind, as written. */
export type ClassAverageOutput = z.infer<typeof classAverageOutput>;

/** One fact's row of a many-facts trace. */
export const traceFactRow = z.strictObject({
  id: z.union([z.string(), z.number()]),
  prompt: z.string(),
  subject: z.string(),
  target: z.string().nullable(),
  known: z.boolean().optional(),
  greedy: z.string().optional(),
  reason: z.string().optional().describe("why a known fact was not traced"),
  corrupt_subject: z.string().optional(),
  counterfactual: z.string().optional().describe("the counterfactual token of --metric logit-diff"),
  p_clean: z.number().optional(),
  p_corrupt: z.number().optional(),
  metric_clean: z.number().optional(),
  metric_corrupt: z.number().optional(),
  predicted: z.string().optional(),
  traced: z.boolean(),
  error: z.string().optional().describe("why the fact is invalid"),
  cases: z.array(z.string()).optional().describe("the fact's ROME .npz files (--out's average.json only)"),
});

/** `trace --facts --json` and `--out DIR/average.json`. */
export const traceFactsOutput = z.strictObject({
  schema: schemaField("trace-facts", 1),
  facts_file: z.string(),
  records: z.int(),
  traced: z.int(),
  known_rule: z.enum(["whole", "greedy", "first"]),
  include_unknown: z.boolean(),
  skipped_unknown: z.int(),
  unknown: z.int(),
  unknown_first_token_only: z.int(),
  skipped_invalid: z.int(),
  pool: z.enum(["token", "prompt"]),
  without_target: z.int(),
  layers: z.int(),
  mean_p_clean: z.number(),
  mean_p_corrupt: z.number(),
  mean_total_effect: z.number(),
  metric,
  counterfactual: z.string().nullable(),
  counterfactual_id: z.int().nullable(),
  mean_metric_clean: z.number(),
  mean_metric_corrupt: z.number(),
  corruption: corruption.optional(),
  skipped_no_replacement: z.int(),
  noise_std: z.number(),
  noise_basis: z.enum(["wte", "subjects", "absolute"]),
  samples: z.int(),
  window: z.int(),
  seed: z.int(),
  noise_rng: z.enum(["numpy", "mulberry32"]),
  target_prob: z.enum(["first", "sequence"]),
  bos: z.boolean(),
  forwards: z.int(),
  seconds: z.number(),
  kinds: z.record(z.string(), classAverageOutput).describe(
    "token-class averages per traced kind (hidden, mlp, attn)",
  ),
  facts: z.array(traceFactRow),
});
/** What `trace --facts --json` prints. */
export type TraceFactsOutput = z.infer<typeof traceFactsOutput>;
