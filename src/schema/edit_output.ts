/**
 * Output schemas of `edit --json` (the edit's summary: each request's standing before and after) and
 * `revert --check --json`.
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";

/** Where one answer stands after a prompt. */
const answerStanding = z.strictObject({
  answer: z.string(),
  p: z.number().describe("probability of the whole answer (product over its tokens)"),
  rank: z.int().describe("rank of its first token (1 = most likely)"),
  top: z.boolean().describe("whether greedy decoding produces the answer"),
  predicted: z.array(z.string()).describe("the greedy tokens, as many as the answer has"),
});

/** A request's standing: target_new, and the ground truth when the request has one. */
const requestStanding = z.strictObject({
  prompt: z.string(),
  target_new: answerStanding,
  ground_truth: answerStanding.nullable(),
});

/** `edit --json`. */
export const editOutput = z.strictObject({
  schema: schemaField("edit", 1),
  method: z.string(),
  model: z.string().describe("the input model folder"),
  out: z.string().describe("the edited model folder"),
  log: z.string().describe("the edit log folder"),
  requests: z.int(),
  weights: z.array(z.string()).describe("the weights the edit changed"),
  seconds: z.number(),
  warnings: z.array(z.string()),
  standing: z.array(z.strictObject({ prompt: z.string(), before: requestStanding, after: requestStanding })),
  info: z.record(z.string(), z.unknown()).describe("the editor's own report (losses, norms, ...)"),
});
/** What `edit --json` prints. */
export type EditOutput = z.infer<typeof editOutput>;

/** `revert --check --json`: the edited model has its log. */
export const revertCheckOutput = z.strictObject({
  schema: schemaField("revert-check", 1),
  model: z.string(),
  ok: z.literal(true),
  log: z.string(),
  method: z.string(),
  weights: z.array(z.string()),
});
/** What `revert --check --json` prints. */
export type RevertCheckOutput = z.infer<typeof revertCheckOutput>;

/** An edit log's `log.json` (`engram edit`; read back by `engram revert`). */
export const editLogOutput = z.strictObject({
  schema: schemaField("edit-log", 1),
  version: z.int().describe("the log format's version (1)"),
  method: z.string(),
  created: z.string().describe("when the edit was made (ISO 8601)"),
  source_model: z.string().optional().describe("the folder of the model that was edited"),
  edited_model: z.string().optional().describe("the folder the edited model was written to"),
  requests: z.array(z.record(z.string(), z.unknown())).describe("the requests edited, as given"),
  hparams: z.record(z.string(), z.unknown()).describe("the hyper-parameters used, after defaults"),
  info: z.record(z.string(), z.unknown()).describe("the editor's own report (layers, losses, statistics)"),
  warnings: z.array(z.string()),
  weights: z.array(z.strictObject({
    name: z.string(),
    shape: z.array(z.int()),
    original_sha256: z.string().regex(/^[0-9a-f]{64}$/),
    edited_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })).describe("each changed weight with the SHA-256 of its float32 bytes before and after"),
});

/** An edited model's link to its log (`engram_edit.json` in the model folder). */
export const editLinkOutput = z.strictObject({
  schema: schemaField("edit-link", 1),
  comment: z.string(),
  log: z.string().describe("the log folder, relative to the model folder"),
  log_json_sha256: z.string().regex(/^[0-9a-f]{64}$/).describe("SHA-256 of the log's log.json"),
  method: z.string(),
});
