/**
 * Output schemas of `predict --json` and `generate --json`.
 *
 * @module
 */
import { z } from "./zod.ts";
import { schemaField } from "./common.ts";

/** `predict --json`: the prompt's ids, the top tokens and the full next-token log-probability vector. */
export const predictOutput = z.strictObject({
  schema: schemaField("predict", 1),
  prompt_ids: z.array(z.int()).describe(
    "token ids of the prompt run (with the BOS policy applied to --text)",
  ),
  top: z.array(z.strictObject({
    id: z.int(),
    token: z.string().nullable().describe("the token's string; null without a tokenizer"),
    logprob: z.number().describe("natural log-probability"),
  })).describe("the --top most likely next tokens, most likely first"),
  logprobs: z.array(z.number()).describe("log-probability of every vocabulary token after the last position"),
});
/** What `predict --json` prints. */
export type PredictOutput = z.infer<typeof predictOutput>;

/** `generate --json`: the prompt's ids, the generated ids and their text. */
export const generateOutput = z.strictObject({
  schema: schemaField("generate", 1),
  prompt_ids: z.array(z.int()).describe("token ids of the prompt"),
  generated_ids: z.array(z.int()).describe("the new tokens only, in order"),
  text: z.string().nullable().describe("the new tokens decoded; null without a tokenizer"),
  stopped_by: z.enum(["max_tokens", "eos", "context"]).describe("why generation stopped"),
  cached: z.boolean().describe("whether the KV cache was used"),
  token_logprobs: z.array(z.number()).optional().describe("each new token's log-probability (--logprobs)"),
});
/** What `generate --json` prints. */
export type GenerateOutput = z.infer<typeof generateOutput>;
