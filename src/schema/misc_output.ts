/**
 * Output schemas of the smaller commands: `accuracy --json`, `info` (and `info --adapters`),
 * `version --json`, `demo --json` and `train --json` (and `train --clean --json`).
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";

/** Top-1 recall of one file. */
const accuracyResult = z.strictObject({
  n: z.int(),
  correct: z.int(),
  accuracy: z.number(),
  by_group: z.record(z.string(), z.strictObject({ n: z.int(), correct: z.int(), accuracy: z.number() }))
    .describe("by relation (keys are the records' relation values)"),
  multi_token_answers: z.int().describe("answers of several tokens (scored by their first token)"),
  mean_answer_prob: z.number(),
});

/** `accuracy --json`: one result per file (--world: train, heldout, twohop; --prompts: prompts). */
export const accuracyOutput = z.strictObject({
  schema: schemaField("accuracy", 1),
  train: accuracyResult.optional(),
  heldout: accuracyResult.optional(),
  twohop: accuracyResult.optional(),
  prompts: accuracyResult.optional(),
});
/** What `accuracy --json` prints. */
export type AccuracyOutput = z.infer<typeof accuracyOutput>;

/** One WebGPU adapter's description (the limits that bound tensor sizes, its features, the backend). */
const adapterDescription = z.strictObject({
  vendor: z.string(),
  architecture: z.string(),
  device: z.string(),
  description: z.string(),
  is_fallback_adapter: z.boolean(),
  max_storage_buffer_binding_size: z.number(),
  max_buffer_size: z.number(),
  max_compute_workgroup_storage_size: z.number(),
  max_compute_invocations_per_workgroup: z.number(),
  backend: z.string(),
  backend_source: z.enum(["DENO_WEBGPU_BACKEND", "inferred"]),
  driver: z.string(),
  subgroup_min_size: z.number(),
  subgroup_max_size: z.number(),
  features: z.array(z.string()),
});

/** `info` (`--json` is the default): the adapter engram runs on. */
export const infoOutput = z.strictObject({ schema: schemaField("info", 1), ...adapterDescription.shape });
/** What `info` prints. */
export type InfoOutput = z.infer<typeof infoOutput>;

/** `info --adapters`: the adapter each request returns, without creating a device. */
export const infoAdaptersOutput = z.strictObject({
  schema: schemaField("info-adapters", 1),
  adapters: z.array(z.strictObject({
    choice: z.string(),
    request: z.strictObject({
      power_preference: z.enum(["high-performance", "low-power"]).optional(),
      force_fallback_adapter: z.boolean().optional(),
    }),
    adapter: adapterDescription.nullable().describe("null: no adapter for this request"),
  })),
});
/** What `info --adapters` prints. */
export type InfoAdaptersOutput = z.infer<typeof infoAdaptersOutput>;

/** `version --json`. */
export const versionOutput = z.strictObject({
  schema: schemaField("version", 1),
  engram: z.string(),
  deno: z.string(),
  v8: z.string(),
  typescript: z.string(),
  os: z.string(),
  arch: z.string(),
});
/** What `version --json` prints. */
export type VersionOutput = z.infer<typeof versionOutput>;

/** `demo --json`. */
export const demoOutput = z.strictObject({
  schema: schemaField("demo", 1),
  adapter: z.string(),
  model: z.string(),
  config: z.strictObject({ layers: z.int(), heads: z.int(), width: z.int(), vocab: z.int() }),
  asks: z.array(z.strictObject({
    kind: z.string(),
    prompt: z.string(),
    answer: z.string().optional(),
    top: z.array(z.strictObject({ token: z.string(), p: z.number() })),
    continuation: z.string(),
  })),
  sample_accuracy: z.strictObject({ train: z.number(), heldout: z.number() }).optional()
    .describe("top-1 recall on a fixed sample (the bundled world model only)"),
  max_abs_logprob_error_vs_float64: z.number(),
  seconds: z.number(),
});
/** What `demo --json` prints. */
export type DemoOutput = z.infer<typeof demoOutput>;

/** `train --json`. */
export const trainOutput = z.strictObject({
  schema: schemaField("train", 1),
  out: z.string(),
  steps: z.int(),
  final_loss: z.number(),
  seconds: z.number(),
  checkpoints: z.array(z.string()),
});
/** What `train --json` prints. */
export type TrainOutput = z.infer<typeof trainOutput>;

/** `train --clean --json`: the work folders of interrupted runs removed. */
export const trainCleanOutput = z.strictObject({
  schema: schemaField("train-clean", 1),
  out: z.string(),
  removed: z.array(z.string()),
});
/** What `train --clean --json` prints. */
export type TrainCleanOutput = z.infer<typeof trainCleanOutput>;
