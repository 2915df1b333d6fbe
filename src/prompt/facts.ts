/**
 * Reading facts to trace: ROME's known_1000.json (a JSON array of {known_id, subject, attribute,
 * template, prediction, prompt, relation_id}) or the fixture world's prompt files (JSONL of
 * {id, prompt, subject, answer, ...}).
 */
import { InputError } from "../errors.ts";

/** One fact to trace: the prompt, its subject and the expected answer (may be absent). */
export interface TraceFact {
  id: string;
  prompt: string;
  subject: string;
  target?: string;
  /** The record's field that gave `target` ("attribute", "answer" or "target"), for errors. */
  targetField?: string;
  relation?: string;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/**
 * Parses facts from `text` (a JSON array, or JSON lines). The expected answer is `attribute`
 * (known_1000), else `answer` (world prompt files), else `target`. Throws {@link InputError} naming
 * `file` and the record's field when `prompt` or `subject` is missing.
 */
export function parseTraceFacts(text: string, file: string): TraceFact[] {
  let records: unknown[];
  const trimmed = text.trimStart();
  if (trimmed.startsWith("[")) {
    try {
      records = JSON.parse(text);
    } catch (e) {
      throw new InputError(`not valid JSON: ${(e as Error).message}`, { file });
    }
  } else {
    records = [];
    text.split("\n").forEach((line, i) => {
      if (line.trim() === "") return;
      try {
        records.push(JSON.parse(line));
      } catch (e) {
        throw new InputError(`line ${i + 1} is not valid JSON: ${(e as Error).message}`, { file });
      }
    });
  }
  if (records.length === 0) throw new InputError("no facts in the file", { file });
  return records.map((r, i) => {
    if (typeof r !== "object" || r === null || Array.isArray(r)) {
      throw new InputError(`record ${i} is not an object`, { file, field: `[${i}]` });
    }
    const o = r as Record<string, unknown>;
    const prompt = str(o.prompt), subject = str(o.subject);
    if (!prompt) throw new InputError(`record ${i} has no string 'prompt'`, { file, field: `[${i}].prompt` });
    if (!subject) {
      throw new InputError(`record ${i} has no string 'subject'`, { file, field: `[${i}].subject` });
    }
    const id = o.known_id ?? o.id ?? i;
    const targetField = ["attribute", "answer", "target"].find((k) => str(o[k]) !== undefined);
    return {
      id: String(id),
      prompt,
      subject,
      target: targetField !== undefined ? str(o[targetField]) : undefined,
      targetField,
      relation: str(o.relation_id) ?? str(o.relation),
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
