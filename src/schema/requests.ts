/**
 * Edit request files as zod schemas: the three record layouts engram reads (EasyEdit's CounterFact /
 * KnowEdit layout, MEND's zsRE layout, ROME's CounterFact layout), and the normalised request
 * (`EditRequest`, `PromptAnswer`) every editor takes. src/prompt/requests.ts picks a record's layout by
 * its keys, validates it here, and normalises it. Records are loose objects: data sets carry fields engram
 * does not read (`pred`, `cond`, `attribute_prompts`, ...), which are kept out of the result.
 *
 * @module
 */
import { z } from "./zod.ts";

/** A string, or a list of strings (a single string is a list of one). */
const STR_LIST = z.union([z.string(), z.array(z.string())], { error: "a string or a list of strings" })
  .nullish();

/** A ground truth: a string, or EasyEdit's nested lists whose first leaf is the answer. */
const TRUTH = z.union([z.string(), z.array(z.unknown())], { error: "a string or a list of strings" });

/** A `{prompt, ground_truth}` entry of a locality or portability field. */
export const PROMPT_ANSWER_RECORD = z.looseObject({ prompt: z.string(), ground_truth: TRUTH });

/**
 * A locality / portability field: one entry, a list of entries, or KnowEdit's object of sub-keys
 * (`{Reasoning: [...], Subject_Aliasing: [...]}`), each an entry or a list of them.
 */
export const PROMPT_ANSWERS = z.union([
  z.array(PROMPT_ANSWER_RECORD),
  PROMPT_ANSWER_RECORD,
  z.record(z.string(), z.union([PROMPT_ANSWER_RECORD, z.array(PROMPT_ANSWER_RECORD)])),
], { error: "an entry {prompt, ground_truth}, a list of entries, or an object of lists" });

const CASE_ID = z.union([z.number(), z.string()], { error: "a number or a string" }).nullish();

/** EasyEdit's CounterFact / KnowEdit record (the subject literal in `prompt`, or a "{}" placeholder). */
export const EASYEDIT_REQUEST = z.looseObject({
  prompt: z.string(),
  subject: z.string(),
  /** The new answer (ROME-style `{str}` accepted too). */
  target_new: z.union([z.string(), z.looseObject({ str: z.string() })], {
    error: 'a string (or {"str": string})',
  }),
  ground_truth: TRUTH.nullish(),
  rephrase_prompt: STR_LIST,
  rephrase: STR_LIST,
  locality_prompt: z.string().nullish(),
  locality_ground_truth: TRUTH.nullish(),
  locality: PROMPT_ANSWERS.nullish(),
  portability: PROMPT_ANSWERS.nullish(),
  case_id: CASE_ID,
  relation: z.string().nullish(),
});

/** MEND's zsRE record. */
export const ZSRE_REQUEST = z.looseObject({
  src: z.string(),
  subject: z.string(),
  alt: z.string(),
  answers: STR_LIST,
  pred: z.string().nullish(),
  rephrase: STR_LIST,
  loc: z.string().nullish(),
  loc_ans: z.string().nullish(),
  case_id: CASE_ID,
  relation: z.string().nullish(),
});

/** ROME's CounterFact record (`requested_rewrite` with a "{}" prompt). */
export const ROME_REQUEST = z.looseObject({
  case_id: CASE_ID,
  requested_rewrite: z.looseObject({
    prompt: z.string(),
    subject: z.string(),
    target_new: z.looseObject({ str: z.string() }),
    target_true: z.looseObject({ str: z.string() }).nullish(),
    relation_id: z.string().nullish(),
  }),
  paraphrase_prompts: STR_LIST,
  neighborhood_prompts: STR_LIST,
  relation: z.string().nullish(),
});

/** One record of a requests file, in any layout. */
export const REQUEST_RECORD = z.union([ROME_REQUEST, ZSRE_REQUEST, EASYEDIT_REQUEST]);

/** A requests file: one record or a JSON array of records (JSON lines: one record per line). */
export const REQUESTS_FILE = z.union([z.array(REQUEST_RECORD).min(1), REQUEST_RECORD]);

/** A prompt and the answer expected after it. */
export const PROMPT_ANSWER = z.object({
  /** The prompt, with the subject literal. */
  prompt: z.string(),
  /** The answer expected after it. */
  ground_truth: z.string(),
  /** The KnowEdit sub-key the prompt came from (e.g. "Reasoning"); metrics average per sub-key first. */
  key: z.string().optional(),
});

/** One normalised rewrite: make `prompt` (with the subject in place of "{}") continue with `target_new`. */
export const EDIT_REQUEST = z.object({
  /** The prompt with "{}" where the subject stands (exactly one placeholder). */
  prompt: z.string(),
  /** The subject, substituted for "{}". */
  subject: z.string(),
  /** The new answer the edit must produce. */
  target_new: z.string(),
  /** The answer before the edit, when known. */
  ground_truth: z.string().optional(),
  /** Paraphrases of the prompt (subject literal), for generalization. */
  rephrase: z.array(z.string()).optional(),
  /** Unrelated prompts whose answers must not change. */
  locality: z.array(PROMPT_ANSWER).optional(),
  /** Prompts whose answers should follow from the edit (e.g. two-hop). */
  portability: z.array(PROMPT_ANSWER).optional(),
  /** The record's id in its data file. */
  case_id: z.union([z.number(), z.string()]).optional(),
  /** The relation of the fact (e.g. a Wikidata id or a world relation). */
  relation: z.string().optional(),
});
