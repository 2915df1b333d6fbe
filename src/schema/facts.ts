/**
 * Fact files for `trace --facts`: ROME's known_1000.json records ({known_id, subject, attribute,
 * template, prediction, prompt, relation_id}) or the fixture world's prompt files ({id, prompt, subject,
 * answer, ...}), one record per array entry or JSON line. Records are loose: other fields are kept out.
 *
 * @module
 */
import { z } from "./zod.ts";

const ID = z.union([z.string(), z.int()], { error: "a string or an integer" }).nullish();
const OPT = z.string().nullish();

/** One fact record. The expected answer is `attribute`, else `answer`, else `target`. */
export const FACT_RECORD = z.looseObject({
  /** The prompt with the subject literal. */
  prompt: z.string().min(1, { error: "a non-empty string" }),
  /** The subject, a substring of the prompt. */
  subject: z.string().min(1, { error: "a non-empty string" }),
  /** known_1000's id (preferred over `id`). */
  known_id: ID,
  /** The world prompt files' id. */
  id: ID,
  /** known_1000's expected answer. */
  attribute: OPT,
  /** The world prompt files' expected answer. */
  answer: OPT,
  /** Any other file's expected answer. */
  target: OPT,
  /** known_1000's relation. */
  relation_id: OPT,
  /** The relation, elsewhere. */
  relation: OPT,
  /** This fact's counterfactual answer for the logit-difference metric (else the one given for all). */
  counterfactual: OPT,
});

/** A facts file: a JSON array of records (JSON lines: one record per line). */
export const FACTS_FILE = z.array(FACT_RECORD).min(1);
