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
import { excerpt, kindOf } from "../io/excerpt.ts";
import { parseStrictJson } from "../io/strict_json.ts";
import { EmptyTargetError, SubjectNotInPromptError } from "./errors.ts";

/** A prompt and the answer expected after it. */
export interface PromptAnswer {
  /** The prompt, with the subject literal. */
  prompt: string;
  /** The answer expected after it. */
  ground_truth: string;
  /** The KnowEdit sub-key the prompt came from (e.g. "Reasoning"); metrics average per sub-key first. */
  key?: string;
}

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

function str(r: Rec, key: string, where: string, file: string | undefined): string {
  const v = get(r, key);
  if (typeof v !== "string") {
    throw new InputError(`${where}: missing or non-string field '${key}' (${kindOf(v)})`, {
      file,
      field: key,
    });
  }
  return v;
}

function optStr(r: Rec, key: string, where: string, file: string | undefined): string | undefined {
  const v = get(r, key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") {
    throw new InputError(`${where}: field '${key}' must be a string, got ${kindOf(v)}`, { file, field: key });
  }
  return v;
}

function strList(v: unknown, key: string, where: string, file: string | undefined): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  throw new InputError(`${where}: field '${key}' must be a string or a list of strings`, {
    file,
    field: key,
  });
}

function portability(
  v: unknown,
  where: string,
  file: string | undefined,
  field = "portability",
): PromptAnswer[] | undefined {
  if (v === undefined || v === null) return undefined;
  const one = (x: unknown, i: number): PromptAnswer => {
    const prompt = isObj(x) ? get(x, "prompt") : undefined;
    const truth = isObj(x) ? get(x, "ground_truth") : undefined;
    if (typeof prompt !== "string" || (typeof truth !== "string" && !Array.isArray(truth))) {
      throw new InputError(`${where}: ${field} entry ${i} needs 'prompt' and 'ground_truth'`, {
        file,
        field,
      });
    }
    const gt = Array.isArray(truth)
      ? firstString(truth, `${where}: ${field} entry ${i} ground_truth`, file, field)
      : truth;
    return { prompt, ground_truth: gt };
  };
  if (Array.isArray(v)) return v.map(one);
  if (isObj(v) && Object.hasOwn(v, "prompt")) return [one(v, 0)];
  if (isObj(v)) {
    // EasyEdit KnowEdit: {Reasoning: [...], Subject_Aliasing: [...], ...}; the sub-key is kept.
    return Object.keys(v).map((key) => [key, v[key]] as const).flatMap(([key, x]) =>
      (Array.isArray(x) ? x : [x]).map((e, i) => ({ ...one(e, i), key }))
    );
  }
  throw new InputError(`${where}: field '${field}' must be an object or a list`, {
    file,
    field,
  });
}

/** Parses one record in any supported layout (see the module comment). */
export function parseRequestRecord(r: unknown, index: number, file?: string): EditRequest {
  const where = `record ${index}`;
  if (!isObj(r)) throw new InputError(`${where}: expected an object`, { file, field: `[${index}]` });
  let req: EditRequest;
  const rewrite = get(r, "requested_rewrite");
  if (isObj(rewrite)) {
    // ROME CounterFact.
    const rw = rewrite;
    const tn = get(rw, "target_new"), tt = get(rw, "target_true");
    if (!isObj(tn) || typeof get(tn, "str") !== "string") {
      throw new InputError(`${where}: missing field 'requested_rewrite.target_new.str'`, {
        file,
        field: "target_new",
      });
    }
    req = {
      prompt: str(rw, "prompt", where, file),
      subject: str(rw, "subject", where, file),
      target_new: get(tn, "str") as string,
      ground_truth: isObj(tt) && typeof get(tt, "str") === "string" ? get(tt, "str") as string : undefined,
      rephrase: strList(get(r, "paraphrase_prompts"), "paraphrase_prompts", where, file),
      locality: isObj(tt) && typeof get(tt, "str") === "string"
        ? strList(get(r, "neighborhood_prompts"), "neighborhood_prompts", where, file)?.map((p) => ({
          prompt: p,
          ground_truth: get(tt, "str") as string,
        }))
        : undefined,
    };
  } else if (Object.hasOwn(r, "src") || Object.hasOwn(r, "alt")) {
    // MEND zsRE.
    const answers = strList(get(r, "answers"), "answers", where, file);
    const loc = optStr(r, "loc", where, file), locAns = optStr(r, "loc_ans", where, file);
    req = {
      prompt: str(r, "src", where, file),
      subject: str(r, "subject", where, file),
      target_new: str(r, "alt", where, file),
      ground_truth: answers?.[0] ?? optStr(r, "pred", where, file),
      rephrase: strList(get(r, "rephrase"), "rephrase", where, file),
      locality: loc !== undefined && locAns !== undefined
        ? [{ prompt: loc, ground_truth: locAns }]
        : undefined,
    };
  } else {
    // EasyEdit CounterFact / plain ROME-style request.
    const tn = get(r, "target_new");
    const target = isObj(tn) && typeof get(tn, "str") === "string" ? get(tn, "str") : tn;
    if (typeof target !== "string") {
      throw new InputError(`${where}: missing or non-string field 'target_new' (${kindOf(target)})`, {
        file,
        field: "target_new",
      });
    }
    const locP = get(r, "locality_prompt"), locA = get(r, "locality_ground_truth");
    let locality: PromptAnswer[] | undefined;
    if (typeof locP === "string" && (typeof locA === "string" || Array.isArray(locA))) {
      const gt = Array.isArray(locA)
        ? firstString(locA, `${where}: locality_ground_truth`, file, "locality_ground_truth")
        : locA;
      locality = [{ prompt: locP, ground_truth: gt }];
    } else if (isObj(get(r, "locality"))) {
      locality = portability(get(r, "locality"), where, file, "locality");
    }
    const truth = get(r, "ground_truth");
    req = {
      prompt: str(r, "prompt", where, file),
      subject: str(r, "subject", where, file),
      target_new: target,
      ground_truth: typeof truth === "string"
        ? truth
        : Array.isArray(truth) && typeof truth[0] === "string"
        ? truth[0]
        : undefined,
      rephrase: strList(get(r, "rephrase_prompt") ?? get(r, "rephrase"), "rephrase_prompt", where, file),
      locality,
      portability: portability(get(r, "portability"), where, file),
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
