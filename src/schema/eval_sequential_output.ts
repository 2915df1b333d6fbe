/**
 * Output schemas of `eval --mode sequential`: `--json` (every method's curve) and `--out DIR/summary.json`
 * (the curves' points). The per-method files (`DIR/<method>/curve.json`, `meta.json`, `records.jsonl`)
 * are the resumable run's own (src/evaluate/sequential.ts); `curve.json` is one `curves` entry.
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";
import { evalMetrics } from "./eval_output.ts";

const weightNorm = z.strictObject({
  name: z.string(),
  norm: z.number().describe("‖W‖_F now"),
  original_norm: z.number().describe("‖W₀‖_F of the unedited model"),
  delta_norm: z.number().describe("‖W − W₀‖_F"),
});

/** One method's sequential-editing curve. */
export const sequentialCurve = z.strictObject({
  label: z.string(),
  method: z.string(),
  n: z.int(),
  batch_size: z.int(),
  every: z.int(),
  nas: z.boolean(),
  nas_norm: z.number().optional(),
  fingerprint: z.string().describe("the unedited model's SHA-256"),
  baseline: z.strictObject({ perplexity: z.number().nullable(), ppl_tokens: z.int() }),
  records: z.array(z.strictObject({
    edits: z.int(),
    metrics: evalMetrics,
    perplexity: z.number().nullable(),
    weights: z.array(weightNorm),
    edit_s: z.number(),
    eval_s: z.number(),
    warnings: z.array(z.string()),
    nas_skipped: z.int().optional(),
  })),
  resumed_from: z.int(),
  // The rest of meta.json (the run's identity).
  hparams: z.record(z.string(), z.unknown()),
  layers: z.array(z.int()).optional(),
  nas_samples: z.int().optional(),
  request_hashes: z.array(z.string()),
  data: z.string().optional(),
  model: z.string().optional(),
  ppl_text: z.string().optional(),
});

/** `eval --mode sequential --json`. */
export const evalSequentialOutput = z.strictObject({
  schema: schemaField("eval-sequential", 1),
  curves: z.array(sequentialCurve),
});
/** What `eval --mode sequential --json` prints. */
export type EvalSequentialOutput = z.infer<typeof evalSequentialOutput>;

/** `eval --mode sequential --out DIR`: DIR/summary.json, the points of every curve. */
export const evalSequentialSummary = z.strictObject({
  schema: schemaField("eval-sequential-summary", 1),
  curves: z.array(z.strictObject({
    label: z.string(),
    method: z.string(),
    n: z.int(),
    batch_size: z.int(),
    every: z.int(),
    nas: z.boolean(),
    nas_norm: z.number().optional(),
    baseline: z.strictObject({ perplexity: z.number().nullable(), ppl_tokens: z.int() }),
    records: z.array(z.strictObject({
      edits: z.int(),
      reliability: z.number().nullable(),
      generalization: z.number().nullable(),
      locality: z.number().nullable(),
      wild_exact: z.number().nullable().optional(),
      wild_contains: z.number().nullable().optional(),
      perplexity: z.number().nullable(),
      weights: z.array(weightNorm),
      edit_s: z.number(),
      eval_s: z.number(),
      nas_skipped: z.int().optional(),
    })),
  })),
});
/** What DIR/summary.json holds. */
export type EvalSequentialSummary = z.infer<typeof evalSequentialSummary>;

/** `eval --mode sequential --out DIR`: DIR/<label>/curve.json, one method's curve (rewritten at every record). */
export const evalSequentialCurveFile = z.strictObject({
  schema: schemaField("eval-sequential-curve", 1),
  ...sequentialCurve.shape,
});

/** `eval --mode sequential --out DIR`: DIR/<label>/meta.json, what the run is (checked when it resumes). */
export const evalSequentialMeta = z.strictObject({
  schema: schemaField("eval-sequential-meta", 1),
  label: z.string(),
  method: z.string(),
  batch_size: z.int(),
  every: z.int(),
  nas: z.boolean(),
  fingerprint: z.string().describe("the unedited model's SHA-256"),
  hparams: z.record(z.string(), z.unknown()),
  layers: z.array(z.int()).optional(),
  nas_samples: z.int().optional(),
  request_hashes: z.array(z.string()).describe("a short hash of each request, in order"),
  data: z.string().optional(),
  model: z.string().optional(),
  ppl_text: z.string().optional(),
});
