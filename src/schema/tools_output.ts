/**
 * Output schemas of `atp --json` (attribution patching), `logit-lens --json` and `recommend-layers`
 * (`--json` and `--out DIR/recommend.json`).
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";

const metric = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("prob"), answer: z.int() }),
  z.strictObject({ kind: z.literal("logprob"), answer: z.int() }),
  z.strictObject({ kind: z.literal("logit-diff"), answer: z.int(), counterfactual: z.int() }),
]).describe("the metric patched: its kind and token ids");

/** `atp --json`: estimated patching effects of every node, by site. */
export const atpOutput = z.strictObject({
  schema: schemaField("atp", 1),
  tokens: z.array(z.string()),
  subject_range: z.tuple([z.int(), z.int()]),
  metric,
  metric_clean: z.number(),
  metric_corrupt: z.number(),
  method: z.enum(["atp", "atp-gd", "patching"]),
  sites: z.array(z.strictObject({
    name: z.string(),
    kind: z.string().describe("site kind (embed, resid_pre, attn_out, mlp_post, ...)"),
    layer: z.int().describe("the layer (-1 for the embedding)"),
    units: z.int().describe("nodes per position (1, or the width per neuron / head)"),
    values: z.array(z.array(z.number())).describe("estimated effect [position][unit]"),
  })),
  comparison: z.strictObject({
    atp_seconds: z.number(),
    patching_seconds: z.number(),
    kinds: z.array(z.strictObject({
      kind: z.string(),
      nodes: z.int(),
      spearman: z.number().nullable().describe("Spearman(estimates, exact effects); null when constant"),
      k: z.int(),
      top_recall: z.number().describe("share of the k largest |exact effects| among the k largest estimates"),
    })),
    not_compared: z.array(z.string()).describe("kinds without a hook site to patch (q, k, v)"),
  }).optional().describe("--compare: agreement with full activation patching"),
});
/** What `atp --json` prints. */
export type AtpOutput = z.infer<typeof atpOutput>;

const perCell = z.array(z.array(z.number())).describe("[layer][position]");

/** `logit-lens --json`. */
export const logitLensOutput = z.strictObject({
  schema: schemaField("logit-lens", 1),
  prompt_ids: z.array(z.int()),
  tokens: z.array(z.string()),
  layers: z.array(z.string()).describe("row labels: embed, then the layer numbers"),
  sites: z.array(z.string()).describe("the hook site of each row"),
  shape: z.tuple([z.int(), z.int(), z.int()]).describe("[rows, positions, top_k]"),
  top_ids: z.array(z.array(z.array(z.int()))).describe("[row][position][rank]"),
  top_tokens: z.array(z.array(z.array(z.string()))),
  top_probs: z.array(z.array(z.array(z.number()))),
  target: z.strictObject({ id: z.int(), token: z.string(), rank: perCell, prob: perCell }).optional(),
});
/** What `logit-lens --json` prints. */
export type LogitLensOutput = z.infer<typeof logitLensOutput>;

const curve = { mean: z.array(z.number()), ci95: z.array(z.number()), count: z.int() };
const easyEditFiles = z.array(z.strictObject({
  file: z.string(),
  model: z.string(),
  layers: z.array(z.int()),
})).nullable();

/** `recommend-layers --json` and `--out DIR/recommend.json`. */
export const recommendLayersOutput = z.strictObject({
  schema: schemaField("recommend-layers", 1),
  model: z.string(),
  facts_file: z.string(),
  records: z.int(),
  traced: z.int(),
  unknown: z.int(),
  skipped_invalid: z.int(),
  layers: z.int(),
  fact_token: z.enum(["subject_last", "last"]),
  token_class: z.string(),
  trace_window: z.int(),
  samples: z.int(),
  noise_std: z.number(),
  seed: z.int(),
  noise_rng: z.enum(["numpy", "mulberry32"]),
  known_rule: z.enum(["whole", "greedy", "first"]),
  pool: z.enum(["token", "prompt"]),
  mean_p_clean: z.number(),
  mean_p_corrupt: z.number(),
  aie: z.strictObject({ kind: z.literal("mlp"), ...curve }).describe(
    "the MLP AIE by layer at the fact token",
  ),
  curves: z.record(z.string(), z.strictObject(curve)).describe("AIE by layer per traced kind"),
  recommendation: z.strictObject({
    rule: z.string(),
    peak: z.int(),
    peak_aie: z.number(),
    peak_ci95: z.number(),
    tied: z.array(z.int()),
    rome_layers: z.array(z.int()),
    memit_layers: z.array(z.int()),
    window: z.int(),
    clipped: z.boolean(),
    flat: z.boolean(),
    significant: z.boolean(),
  }),
  easyedit: z.strictObject({
    rome: easyEditFiles.describe("EasyEdit's hparams files for this model, if any"),
    memit: easyEditFiles,
    commit: z.string(),
  }),
  forwards: z.int(),
  seconds: z.number(),
});
/** What `recommend-layers --json` prints. */
export type RecommendLayersOutput = z.infer<typeof recommendLayersOutput>;
