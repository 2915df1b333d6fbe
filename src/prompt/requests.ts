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
import { EmptyTargetError, SubjectNotInPromptError } from "./errors.ts";

/** A prompt and the answer expected after it. */
export interface PromptAnswer {
  prompt: string;
  ground_truth: string;
  /** The KnowEdit sub-key the prompt came from (e.g. "Reasoning"); metrics average per sub-key first. */
  key?: string;
}

/** One rewrite: make `prompt` (with the subject in place of "{}") continue with `target_new`. */
export interface EditRequest {
  /** The prompt with "{}" where the subject stands (exactly one placeholder). */
  prompt: string;
  subject: string;
  target_new: string;
  /** The answer before the edit, when known. */
  ground_truth?: string;
  /** Paraphrases of the prompt (subject literal), for generalization. */
  rephrase?: string[];
  /** Unrelated prompts whose answers must not change. */
  locality?: PromptAnswer[];
  /** Prompts whose answers should follow from the edit (e.g. two-hop). */
  portability?: PromptAnswer[];
  case_id?: number | string;
  relation?: string;
}

/** The prompt of `req` with the subject filled in. */
export function filledPrompt(req: EditRequest): string {
  return req.prompt.replace("{}", req.subject);
}

type Rec = Record<string, unknown>;

function isObj(v: unknown): v is Rec {
  return typeof v === "object" && v !== null && !Array.isArray(v);
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
        `${where}: subject '${req.subject}' does not occur in the prompt '${prompt}'`,
        { file, field: "subject" },
      );
    }
    prompt = prompt.slice(0, at) + "{}" + prompt.slice(at + req.subject.length);
  }
  return { ...req, prompt, subject: req.subject, target_new: req.target_new.trim() };
}

function str(r: Rec, key: string, where: string, file: string | undefined): string {
  const v = r[key];
  if (typeof v !== "string") {
    throw new InputError(`${where}: missing or non-string field '${key}'`, { file, field: key });
  }
  return v;
}

function optStr(r: Rec, key: string, where: string, file: string | undefined): string | undefined {
  const v = r[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") {
    throw new InputError(`${where}: field '${key}' must be a string`, { file, field: key });
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
    if (
      !isObj(x) || typeof x.prompt !== "string" ||
      (typeof x.ground_truth !== "string" && !Array.isArray(x.ground_truth))
    ) {
      throw new InputError(`${where}: ${field} entry ${i} needs 'prompt' and 'ground_truth'`, {
        file,
        field,
      });
    }
    const gt = Array.isArray(x.ground_truth) ? String(x.ground_truth.flat(2)[0] ?? "") : x.ground_truth;
    return { prompt: x.prompt, ground_truth: gt };
  };
  if (Array.isArray(v)) return v.map(one);
  if (isObj(v) && "prompt" in v) return [one(v, 0)];
  if (isObj(v)) {
    // EasyEdit KnowEdit: {Reasoning: [...], Subject_Aliasing: [...], ...}; the sub-key is kept.
    return Object.entries(v).flatMap(([key, x]) =>
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
  if (isObj(r.requested_rewrite)) {
    // ROME CounterFact.
    const rw = r.requested_rewrite;
    const tn = rw.target_new, tt = rw.target_true;
    if (!isObj(tn) || typeof tn.str !== "string") {
      throw new InputError(`${where}: missing field 'requested_rewrite.target_new.str'`, {
        file,
        field: "target_new",
      });
    }
    req = {
      prompt: str(rw, "prompt", where, file),
      subject: str(rw, "subject", where, file),
      target_new: tn.str,
      ground_truth: isObj(tt) && typeof tt.str === "string" ? tt.str : undefined,
      rephrase: strList(r.paraphrase_prompts, "paraphrase_prompts", where, file),
      locality: isObj(tt) && typeof tt.str === "string"
        ? strList(r.neighborhood_prompts, "neighborhood_prompts", where, file)?.map((p) => ({
          prompt: p,
          ground_truth: tt.str as string,
        }))
        : undefined,
    };
  } else if ("src" in r || "alt" in r) {
    // MEND zsRE.
    const answers = strList(r.answers, "answers", where, file);
    const loc = optStr(r, "loc", where, file), locAns = optStr(r, "loc_ans", where, file);
    req = {
      prompt: str(r, "src", where, file),
      subject: str(r, "subject", where, file),
      target_new: str(r, "alt", where, file),
      ground_truth: answers?.[0] ?? optStr(r, "pred", where, file),
      rephrase: strList(r.rephrase, "rephrase", where, file),
      locality: loc !== undefined && locAns !== undefined
        ? [{ prompt: loc, ground_truth: locAns }]
        : undefined,
    };
  } else {
    // EasyEdit CounterFact / plain ROME-style request.
    const tn = r.target_new;
    const target = isObj(tn) && typeof tn.str === "string" ? tn.str : tn;
    if (typeof target !== "string") {
      throw new InputError(`${where}: missing or non-string field 'target_new'`, {
        file,
        field: "target_new",
      });
    }
    const locP = r.locality_prompt, locA = r.locality_ground_truth;
    let locality: PromptAnswer[] | undefined;
    if (typeof locP === "string" && (typeof locA === "string" || Array.isArray(locA))) {
      locality = [{ prompt: locP, ground_truth: Array.isArray(locA) ? String(locA.flat(2)[0] ?? "") : locA }];
    } else if (isObj(r.locality)) {
      locality = portability(r.locality, where, file, "locality");
    }
    req = {
      prompt: str(r, "prompt", where, file),
      subject: str(r, "subject", where, file),
      target_new: target,
      ground_truth: typeof r.ground_truth === "string"
        ? r.ground_truth
        : Array.isArray(r.ground_truth) && typeof r.ground_truth[0] === "string"
        ? r.ground_truth[0]
        : undefined,
      rephrase: strList(r.rephrase_prompt ?? r.rephrase, "rephrase_prompt", where, file),
      locality,
      portability: portability(r.portability, where, file),
    };
  }
  if (typeof r.case_id === "number" || typeof r.case_id === "string") req.case_id = r.case_id;
  if (typeof r.relation === "string") req.relation = r.relation;
  return normalizeRequest(req, where, file);
}

/** Parses requests from JSON text (an array, one object, or JSON lines). */
export function parseRequests(text: string, file?: string): EditRequest[] {
  let data: unknown;
  const trimmed = text.trim();
  if (trimmed === "") throw new InputError("requests file is empty", { file });
  try {
    data = JSON.parse(trimmed);
  } catch (e) {
    // JSON lines.
    const lines = trimmed.split("\n").filter((l) => l.trim() !== "");
    data = lines.map((l, i) => {
      try {
        return JSON.parse(l);
      } catch {
        throw new InputError(
          `not JSON (${(e as Error).message}); as JSON lines, line ${i + 1} does not parse`,
          { file },
        );
      }
    });
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
