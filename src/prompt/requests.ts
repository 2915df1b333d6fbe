/**
 * Edit requests: what to rewrite, and the prompts that test it. Parses the formats of the reference
 * tools: EasyEdit's CounterFact layout (`prompt`, `subject`, `target_new`, `ground_truth`,
 * `rephrase_prompt`, `locality_prompt`, `locality_ground_truth`, `portability`), MEND's zsRE layout
 * (`src`, `subject`, `alt`, `answers`, `rephrase`, `loc`, `loc_ans`) and ROME's CounterFact layout
 * (`requested_rewrite` {prompt with "{}", subject, target_new.str, target_true.str},
 * `paraphrase_prompts`, `neighborhood_prompts`). Prompts may contain the subject literally (EasyEdit)
 * or a "{}" placeholder for it (ROME); both are normalised to the placeholder form.
 */
import { InputError } from "../errors.ts";
import { excerpt } from "../io/excerpt.ts";
import { parseStrictJson } from "../io/strict_json.ts";
import { EmptyTargetError, SubjectNotInPromptError } from "./errors.ts";
import {
  EASYEDIT_REQUEST,
  type EDIT_REQUEST,
  type PROMPT_ANSWER,
  type PROMPT_ANSWER_RECORD,
  type PROMPT_ANSWERS,
  ROME_REQUEST,
  ZSRE_REQUEST,
} from "../schema/requests.ts";
import { InputSchemaError, parseInput } from "../schema/validate.ts";
import type { z } from "../schema/zod.ts";
import { sameType } from "../schema/same_type.ts";

/** A prompt and the answer expected after it. */
export interface PromptAnswer {
  /** The prompt, with the subject literal. */
  prompt: string;
  /** The answer expected after it. */
  ground_truth: string;
  /** The KnowEdit sub-key the prompt came from (e.g. "Reasoning"); metrics average per sub-key first. */
  key?: string;
}
// The zod schema validates this type's files; the interface is what the public API shows (deno doc
// cannot document a z.infer alias): the two must stay the same type.
sameType<PromptAnswer, z.infer<typeof PROMPT_ANSWER>>(true);

/** One rewrite: make `prompt` (with the subject in place of "{}") continue with `target_new`. */
export interface EditRequest {
  /** The prompt with "{}" where the subject stands (exactly one placeholder). */
  prompt: string;
  /** The subject, substituted for "{}". */
  subject: string;
  /** The new answer the edit must produce. */
  target_new: string;
  /** The answer before the edit, when known. */
  ground_truth?: string;
  /** Paraphrases of the prompt (subject literal), for generalization. */
  rephrase?: string[];
  /** Unrelated prompts whose answers must not change. */
  locality?: PromptAnswer[];
  /** Prompts whose answers should follow from the edit (e.g. two-hop). */
  portability?: PromptAnswer[];
  /** The record's id in its data file. */
  case_id?: number | string;
  /** The relation of the fact (e.g. a Wikidata id or a world relation). */
  relation?: string;
}
// The zod schema validates this type's files; the interface is what the public API shows (deno doc
// cannot document a z.infer alias): the two must stay the same type.
sameType<EditRequest, z.infer<typeof EDIT_REQUEST>>(true);

/** The prompt of `req` with the subject filled in. */
export function filledPrompt(req: EditRequest): string {
  return fillSubject(req.prompt, req.subject);
}

/**
 * `template` with its first "{}" replaced by `subject`, literally: `String.replace` with a string would
 * read `$&`, `$'` or `$$` in the subject as replacement patterns.
 */
export function fillSubject(template: string, subject: string): string {
  const at = template.indexOf("{}");
  return at < 0 ? template : template.slice(0, at) + subject + template.slice(at + 2);
}

type Rec = Record<string, unknown>;

function isObj(v: unknown): v is Rec {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `s` in single quotes, cut to `max` characters. */
function quote(s: string, max: number): string {
  return `'${s.length > max ? s.slice(0, max) + "…" : s}'`;
}

/** `r[key]` when `r` owns `key`: an inherited member ("toString", "constructor") is never a field. */
function get(r: Rec, key: string): unknown {
  return Object.hasOwn(r, key) ? r[key] : undefined;
}

/** The first string of a ground-truth list (EasyEdit nests them up to 3 deep), checked, never coerced. */
function firstString(v: unknown[], what: string, file: string | undefined, field: string): string {
  let x: unknown = v;
  for (let d = 0; d < 3 && Array.isArray(x); d++) x = x[0];
  if (x === undefined) return "";
  if (typeof x !== "string") {
    throw new InputError(`${what} must hold strings, got ${excerpt(x, 60)}`, { file, field });
  }
  return x;
}

/**
 * Validates one request and puts its prompt in placeholder form. `where` names the record in errors
 * (e.g. `requests.json record 3`). Errors: empty subject or target, subject absent from the prompt,
 * more than one "{}".
 */
export function normalizeRequest(req: EditRequest, where = "request", file?: string): EditRequest {
  const err = (field: string, msg: string) => new InputError(`${where}: ${msg}`, { file, field });
  if (typeof req.subject !== "string" || req.subject.trim() === "") {
    throw new SubjectNotInPromptError(`${where}: empty subject`, { file, field: "subject" });
  }
  if (typeof req.target_new !== "string" || req.target_new.trim() === "") {
    throw new EmptyTargetError(`${where}: empty target_new`, { file, field: "target_new" });
  }
  if (typeof req.prompt !== "string" || req.prompt.trim() === "") throw err("prompt", "empty prompt");
  let prompt = req.prompt;
  const holes = prompt.split("{}").length - 1;
  if (holes > 1) throw err("prompt", `prompt has ${holes} "{}" placeholders, expected one`);
  if (holes === 0) {
    const at = prompt.indexOf(req.subject);
    if (at < 0) {
      throw new SubjectNotInPromptError(
        `${where}: subject ${quote(req.subject, 60)} does not occur in the prompt ${quote(prompt, 100)}`,
        { file, field: "subject" },
      );
    }
    prompt = prompt.slice(0, at) + "{}" + prompt.slice(at + req.subject.length);
  }
  return { ...req, prompt, subject: req.subject, target_new: req.target_new.trim() };
}

/** A string-or-list field as a list. */
function list(v: string | string[] | null | undefined): string[] | undefined {
  return v === undefined || v === null ? undefined : typeof v === "string" ? [v] : v;
}

type Answers = z.infer<typeof PROMPT_ANSWERS>;

/** A locality / portability field (validated) as entries; KnowEdit's sub-keys are kept as `key`. */
function answers(
  v: Answers | null | undefined,
  where: string,
  file: string | undefined,
  field: string,
): PromptAnswer[] | undefined {
  if (v === undefined || v === null) return undefined;
  const one = (x: z.infer<typeof PROMPT_ANSWER_RECORD>, i: number): PromptAnswer => ({
    prompt: x.prompt,
    ground_truth: typeof x.ground_truth === "string"
      ? x.ground_truth
      : firstString(x.ground_truth, `${where}: ${field} entry ${i} ground_truth`, file, field),
  });
  if (Array.isArray(v)) return v.map(one);
  if (Object.hasOwn(v, "prompt") && typeof v.prompt === "string") {
    return [one(v as z.infer<typeof PROMPT_ANSWER_RECORD>, 0)];
  }
  const groups = v as Record<
    string,
    z.infer<typeof PROMPT_ANSWER_RECORD> | z.infer<typeof PROMPT_ANSWER_RECORD>[]
  >;
  return Object.keys(groups).flatMap((key) =>
    (Array.isArray(groups[key]) ? groups[key] : [groups[key]]).map((e, i) => ({ ...one(e, i), key }))
  );
}

/**
 * Parses one record in any supported layout (see the module comment): the layout is picked by its keys
 * (`requested_rewrite`: ROME; `src` or `alt`: zsRE; else EasyEdit) and validated by its schema
 * (src/schema/requests.ts), so a bad field is named by its JSON path.
 */
export function parseRequestRecord(r: unknown, index: number, file?: string): EditRequest {
  const where = `record ${index}`;
  const at = { file, record: index };
  if (!isObj(r)) {
    throw new InputSchemaError(`${where}: $: expected an object, got ${excerpt(r, 60)}`, "$", at);
  }
  let req: EditRequest;
  if (isObj(get(r, "requested_rewrite"))) {
    const rec = parseInput(ROME_REQUEST, r, at);
    const rw = rec.requested_rewrite;
    const truth = rw.target_true?.str;
    req = {
      prompt: rw.prompt,
      subject: rw.subject,
      target_new: rw.target_new.str,
      ground_truth: truth,
      rephrase: list(rec.paraphrase_prompts),
      locality: truth === undefined
        ? undefined
        : list(rec.neighborhood_prompts)?.map((p) => ({ prompt: p, ground_truth: truth })),
    };
  } else if (Object.hasOwn(r, "src") || Object.hasOwn(r, "alt")) {
    const rec = parseInput(ZSRE_REQUEST, r, at);
    const loc = rec.loc ?? undefined, locAns = rec.loc_ans ?? undefined;
    req = {
      prompt: rec.src,
      subject: rec.subject,
      target_new: rec.alt,
      ground_truth: list(rec.answers)?.[0] ?? rec.pred ?? undefined,
      rephrase: list(rec.rephrase),
      locality: loc !== undefined && locAns !== undefined
        ? [{ prompt: loc, ground_truth: locAns }]
        : undefined,
    };
  } else {
    const rec = parseInput(EASYEDIT_REQUEST, r, at);
    let locality: PromptAnswer[] | undefined;
    const locP = rec.locality_prompt, locA = rec.locality_ground_truth;
    if (typeof locP === "string" && locA !== undefined && locA !== null) {
      const gt = Array.isArray(locA)
        ? firstString(locA, `${where}: locality_ground_truth`, file, "locality_ground_truth")
        : locA;
      locality = [{ prompt: locP, ground_truth: gt }];
    } else locality = answers(rec.locality, where, file, "locality");
    const truth = rec.ground_truth;
    req = {
      prompt: rec.prompt,
      subject: rec.subject,
      target_new: typeof rec.target_new === "string" ? rec.target_new : rec.target_new.str,
      ground_truth: typeof truth === "string"
        ? truth
        : Array.isArray(truth) && typeof truth[0] === "string"
        ? truth[0]
        : undefined,
      rephrase: list(rec.rephrase_prompt ?? rec.rephrase),
      locality,
      portability: answers(rec.portability, where, file, "portability"),
    };
  }
  const caseId = get(r, "case_id"), relation = get(r, "relation");
  if (typeof caseId === "number" || typeof caseId === "string") req.case_id = caseId;
  if (typeof relation === "string") req.relation = relation;
  return normalizeRequest(req, where, file);
}

/** Deepest JSON nesting accepted in a requests file (KnowEdit's portability lists are 4 deep). */
const MAX_DEPTH = 32;

function parseJson(text: string, file: string | undefined, line?: number): unknown {
  return parseStrictJson(text, {
    file,
    maxDepth: MAX_DEPTH,
    error: (message, field) =>
      new InputError(line === undefined ? message : `line ${line}: ${message}`, { file, field }),
  });
}

/** Parses requests from JSON text (an array, one object, or JSON lines). */
export function parseRequests(text: string, file?: string): EditRequest[] {
  let data: unknown;
  const trimmed = text.trim();
  if (trimmed === "") throw new InputError("requests file is empty", { file });
  // One JSON value when the text starts as one ("[", or "{" with a single line); else JSON lines.
  const lines = trimmed.split("\n").filter((l) => l.trim() !== "");
  if (trimmed.startsWith("[") || lines.length === 1) data = parseJson(trimmed, file);
  else {
    let whole: unknown, wholeErr: unknown;
    try {
      whole = parseJson(trimmed, file);
    } catch (e) {
      wholeErr = e;
    }
    if (wholeErr === undefined) data = whole;
    else {
      // Not one document: JSON lines, unless the first line is not JSON either (then the document's
      // own error, e.g. for a pretty-printed object, says more).
      try {
        parseJson(lines[0], file, 1);
      } catch {
        throw wholeErr;
      }
      data = lines.map((l, i) => parseJson(l, file, i + 1));
    }
  }
  const list = Array.isArray(data) ? data : [data];
  if (list.length === 0) throw new InputError("requests file holds no records", { file });
  return list.map((r, i) => parseRequestRecord(r, i, file));
}

/** Reads a requests file (EasyEdit CounterFact / zsRE JSON, ROME CounterFact, or JSON lines). */
export async function readRequests(file: string): Promise<EditRequest[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new InputError(`cannot read requests: ${(e as Error).message}`, { file });
  }
  return parseRequests(text, file);
}
