/**
 * Output schemas of `study localization` (Hase et al.'s "does localization inform editing?"): the
 * folder's `study.json` header, each `cases/case_<i>.json` (read back when a run resumes) and
 * `summary.json`, which `--json` prints too.
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";

const method = z.enum(["rome", "memit", "ft-1", "ft-5"]);
const objective = z.enum([
  "error_injection",
  "tracing_reversal",
  "fact_erasure",
  "fact_amplification",
  "fact_forcing",
]);
const kind = z.enum(["hidden", "mlp", "attn"]);
const num = z.number().nullable();

/** The study's settings (every case uses them). */
export const studySettings = z.strictObject({
  methods: z.array(method),
  objectives: z.array(objective),
  layers: z.array(z.int()),
  trace_window: z.int(),
  edit_window: z.int(),
  samples: z.int(),
  noise_std: z.number(),
  seed: z.int(),
  noise_rng: z.enum(["numpy", "mulberry32"]),
  target_prob: z.enum(["first", "sequence"]),
  known_only: z.boolean(),
  min_pred_prob: z.number(),
  forcing_eval: z.enum(["noised", "clean"]).optional().describe("how fact_forcing edits are measured"),
  score_prob: z.enum(["sequence", "mean"]).optional().describe(
    "P of an answer in the scores: product of token probabilities, or exp(-mean token NLL)",
  ),
});

/** `study.json`: the model's fingerprint and the settings a resumed run must match. */
export const studyLocalizationHeader = z.strictObject({
  schema: schemaField("study-localization-header", 1),
  kind: z.literal("engram localization study"),
  fingerprint: z.string().describe("SHA-256 of the model's config and weights"),
  model: z.string(),
  data: z.string(),
  settings: z.strictObject({
    ...studySettings.shape,
    hparams: z.record(z.string(), z.record(z.string(), z.unknown())).describe("per method (keys: methods)"),
    cases: z.int(),
  }),
});
/** What `study.json` holds. */
export type StudyLocalizationHeader = z.infer<typeof studyLocalizationHeader>;

const promptProbs = z.strictObject({
  rewrite: z.array(z.number()),
  paraphrase: z.array(z.number()),
  neighborhood: z.array(z.number()),
});
const targetBaseline = z.strictObject({ target: promptProbs, baseline: promptProbs.nullable() });

/** One case's tracing summary per kind. */
const kindSummary = z.strictObject({
  kind,
  window: z.int(),
  subject_last_effect: z.array(z.number()).describe("by layer, at the subject's last token"),
  subject_last_fraction: z.array(z.number()),
  max_token_fraction: z.array(z.number()).describe("by layer, the largest fraction over the tokens"),
  peak: z.strictObject({ fraction: z.number(), effect: z.number(), token: z.int(), layer: z.int() }),
});

/** A case studied: its trace, the objectives' pre-edit probabilities and every edit's scores. */
export const studyCaseResult = z.strictObject({
  schema: schemaField("study-localization-case", 1),
  index: z.int(),
  case_id: z.union([z.int(), z.string()]).optional(),
  prompt: z.string(),
  subject: z.string(),
  target_true: z.string(),
  target_new: z.string(),
  trace: z.strictObject({
    ids: z.array(z.int()),
    subject_range: z.tuple([z.int(), z.int()]),
    answer: z.array(z.int()),
    predicted: z.int(),
    known: z.boolean(),
    p_clean: z.number(),
    p_corrupt: z.number(),
    kinds: z.array(kindSummary),
  }),
  objectives: z.array(z.strictObject({
    objective,
    target: z.string(),
    baseline: z.string().nullable(),
    noised: z.strictObject({ id: z.int(), prob: z.number() }).optional(),
    pre: targetBaseline,
  })),
  edits: z.array(z.strictObject({
    method,
    objective,
    layer: z.int(),
    edited_layers: z.array(z.int()),
    target: z.string(),
    baseline: z.string().nullable(),
    post: targetBaseline,
    scores: z.strictObject({
      rewrite: z.number(),
      paraphrase: num,
      neighborhood: num,
      target: z.number(),
    }),
    success: z.strictObject({ efficacy: num, paraphrase: num, neighborhood: num }),
    seconds: z.number(),
    warnings: z.array(z.string()),
  })),
  seconds: z.number(),
});

/** A case the study dropped (the model does not know the fact, ...). */
export const studyCaseDropped = z.strictObject({
  schema: schemaField("study-localization-case", 1),
  index: z.int(),
  case_id: z.union([z.int(), z.string()]).optional(),
  dropped: z.string().describe("why"),
});

/** `cases/case_<i>.json`: a studied or a dropped case. */
export const studyLocalizationCase = z.union([studyCaseResult, studyCaseDropped]);
/** What `cases/case_<i>.json` holds. */
export type StudyLocalizationCase = z.infer<typeof studyLocalizationCase>;

/** `summary.json` (and `study localization --json`). */
export const studyLocalizationOutput = z.strictObject({
  schema: schemaField("study-localization", 1),
  model: z.string(),
  data: z.string(),
  settings: studySettings,
  cases: z.int(),
  dropped: z.array(z.strictObject({
    index: z.int(),
    case_id: z.union([z.int(), z.string()]).optional(),
    dropped: z.string(),
  })),
  edits: z.int(),
  n_layer: z.int(),
  tracing_by_layer: z.record(kind, z.strictObject({ subject_last: z.array(num), max_token: z.array(num) })),
  peak_layer_counts: z.record(kind, z.array(z.int())),
  mean_peak_fraction: z.record(kind, num),
  scores_by_layer: z.array(z.strictObject({
    method,
    objective,
    layers: z.array(z.int()),
    mean: z.record(z.enum(["rewrite", "paraphrase", "neighborhood", "target", "efficacy"]), z.array(num)),
    n: z.array(z.int()),
  })),
  regressions: z.array(z.strictObject({
    method,
    objective,
    metric: z.enum(["rewrite", "paraphrase", "neighborhood", "target"]),
    regressor: z.enum(["max_token", "subject_last"]),
    n: z.int(),
    layers: z.int(),
    r2_layer: num,
    r2_trace: num,
    r2_both: num,
    r2_added: num,
    f_test: z.strictObject({ f: num, df1: z.number(), df2: z.number(), p: num }),
  })),
  unsupported: z.array(z.strictObject({ method, objective })),
});
/** What `summary.json` holds. */
export type StudyLocalizationOutput = z.infer<typeof studyLocalizationOutput>;
