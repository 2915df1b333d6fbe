/**
 * Reading facts to trace: ROME's known_1000.json (a JSON array of {known_id, subject, attribute,
 * template, prediction, prompt, relation_id}) or the fixture world's prompt files (JSONL of
 * {id, prompt, subject, answer, ...}).
 */
import { InputError } from "../errors.ts";
import { kindOf } from "../io/excerpt.ts";
import { parseStrictJson } from "../io/strict_json.ts";

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
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** Deepest JSON nesting accepted in a facts file (records are flat; 32 leaves room for extra fields). */
const MAX_DEPTH = 32;

/** `o[key]` when `o` owns `key`: an inherited member ("toString", "constructor") is never a field. */
function get(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/**
 * An optional string field: absent or null gives undefined, a string is kept, any other type is an
 * {@link InputError} (never coerced).
 */
function optStr(o: Record<string, unknown>, key: string, i: number, file: string): string | undefined {
  const v = get(o, key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") {
    throw new InputError(`record ${i}: '${key}' must be a string, got ${kindOf(v)}`, {
      file,
      field: `[${i}].${key}`,
    });
  }
  return v;
}

/**
 * Parses facts from `text` (a JSON array, or JSON lines). The expected answer is `attribute`
 * (known_1000), else `answer` (world prompt files), else `target`. Throws {@link InputError} naming
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
    if (typeof r !== "object" || r === null || Array.isArray(r)) {
      throw new InputError(`record ${i} is not an object`, { file, field: `[${i}]` });
    }
    const o = r as Record<string, unknown>;
    const prompt = str(get(o, "prompt")), subject = str(get(o, "subject"));
    if (!prompt) throw new InputError(`record ${i} has no string 'prompt'`, { file, field: `[${i}].prompt` });
    if (!subject) {
      throw new InputError(`record ${i} has no string 'subject'`, { file, field: `[${i}].subject` });
    }
    const idKey = get(o, "known_id") !== undefined ? "known_id" : "id";
    const rawId = get(o, idKey);
    let id: string;
    if (rawId === undefined || rawId === null) id = String(i);
    else if (typeof rawId === "string") id = rawId;
    else if (typeof rawId === "number" && Number.isSafeInteger(rawId)) id = String(rawId);
    else {
      throw new InputError(`record ${i}: '${idKey}' must be a string or an integer, got ${kindOf(rawId)}`, {
        file,
        field: `[${i}].${idKey}`,
      });
    }
    let target: string | undefined, targetField: string | undefined;
    for (const k of ["attribute", "answer", "target"]) {
      const v = optStr(o, k, i, file);
      if (v !== undefined && targetField === undefined) [target, targetField] = [v, k];
    }
    const relation = optStr(o, "relation_id", i, file) ?? optStr(o, "relation", i, file);
    return { id, prompt, subject, target, targetField, relation };
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
