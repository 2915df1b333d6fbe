/**
 * Reading facts to trace: ROME's known_1000.json (a JSON array of {known_id, subject, attribute,
 * template, prediction, prompt, relation_id}) or the fixture world's prompt files (JSONL of
 * {id, prompt, subject, answer, ...}).
 */
import { InputError } from "../errors.ts";
import { parseStrictJson } from "../io/strict_json.ts";
import { FACT_RECORD } from "../schema/facts.ts";
import { parseInput } from "../schema/validate.ts";

/** One fact to trace: the prompt, its subject and the expected answer (may be absent). */
export interface TraceFact {
  /** The fact's id (the record's case id, known id, or line). */
  id: string;
  /** The prompt with the subject literal. */
  prompt: string;
  /** The subject, a substring of the prompt. */
  subject: string;
  /** The expected answer, when the record has one. */
  target?: string;
  /** The record's field that gave `target` ("attribute", "answer" or "target"), for errors. */
  targetField?: string;
  /** The relation, when the record has one. */
  relation?: string;
  /** The fact's own counterfactual answer (the logit-difference metric), when the record has one. */
  counterfactual?: string;
}

/** Deepest JSON nesting accepted in a facts file (records are flat; 32 leaves room for extra fields). */
const MAX_DEPTH = 32;

/**
 * Parses facts from `text` (a JSON array, or JSON lines). The expected answer is `attribute`
 * (known_1000), else `answer` (world prompt files), else `target`; an optional `counterfactual` is the
 * fact's own counterfactual answer for the logit-difference metric. Throws {@link InputError} naming
 * `file` and the record's field when `prompt` or `subject` is missing, or a field has the wrong type
 * (ids must be strings or integers; answers and relations strings).
 */
export function parseTraceFacts(text: string, file: string): TraceFact[] {
  let records: unknown[];
  const json = (t: string, line?: number) =>
    parseStrictJson(t, {
      file,
      maxDepth: MAX_DEPTH,
      error: (message, field) =>
        new InputError(line === undefined ? message : `line ${line}: ${message}`, { file, field }),
    });
  const trimmed = text.trimStart();
  if (trimmed.startsWith("[")) {
    const v = json(text);
    if (!Array.isArray(v)) throw new InputError("not a JSON array of facts", { file });
    records = v;
  } else {
    records = [];
    text.split("\n").forEach((line, i) => {
      if (line.trim() === "") return;
      records.push(json(line, i + 1));
    });
  }
  if (records.length === 0) throw new InputError("no facts in the file", { file });
  return records.map((r, i) => {
    const o = parseInput(FACT_RECORD, r, { file, record: i });
    const rawId = o.known_id !== undefined ? o.known_id : o.id;
    const id = rawId === undefined || rawId === null ? String(i) : String(rawId);
    let target: string | undefined, targetField: string | undefined;
    for (const k of ["attribute", "answer", "target"] as const) {
      const v = o[k];
      if (typeof v === "string" && targetField === undefined) [target, targetField] = [v, k];
    }
    const relation = o.relation_id ?? o.relation ?? undefined;
    const counterfactual = o.counterfactual ?? undefined;
    return {
      id,
      prompt: o.prompt,
      subject: o.subject,
      target,
      targetField,
      relation,
      ...(counterfactual !== undefined ? { counterfactual } : {}),
    };
  });
}

/** Reads and parses a facts file (see {@link parseTraceFacts}). */
export async function readTraceFacts(file: string): Promise<TraceFact[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new InputError(`cannot read facts file: ${(e as Error).message}`, { file });
  }
  return parseTraceFacts(text, file);
}
