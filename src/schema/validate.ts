/**
 * One way from a zod failure to a typed error: {@link parseInput} validates a JSON input against its
 * schema and, on failure, throws an {@link InputSchemaError} naming the file, the record (for JSON lines
 * and arrays) and the JSON path of the first problem, e.g.
 * `requests.json: record 3: $.target_new: expected a string, got 3`.
 *
 * Default zod messages ("Invalid input: expected string, received number") are replaced by the noun
 * phrase of what was expected ({@link wantOf}); a schema may set its own with `{ error: "a positive
 * integer" }`, which is kept.
 *
 * @module
 */
import { type EngramError, InputError } from "../errors.ts";
import { excerpt } from "../io/excerpt.ts";
import type { z } from "./zod.ts";

/** Where an input came from, for messages. */
export interface InputWhere {
  /** The file (or flag, for inline JSON) the value was read from. */
  file?: string;
  /** The record index or line of a JSON-lines / array input. */
  record?: number | string;
  /** What the record is called in the message (default "record"; e.g. "line" for JSON lines). */
  recordName?: string;
}

/** A schema-invalid input: the file, the record, and the JSON path (`field`) of the first problem. */
export class InputSchemaError extends InputError {
  /** The record index or line, when the input is a list of records. */
  readonly record?: number | string;
  /** The JSON path of the first problem, e.g. `$.requested_rewrite.target_new.str`. */
  readonly path: string;
  /** The error for `message` at `path` in `where`. */
  constructor(message: string, path: string, where: InputWhere) {
    super(message, { file: where.file });
    this.record = where.record;
    this.path = path;
    // `field` names the path too, without the base class repeating it in the message.
    Object.defineProperty(this, "field", { value: path, enumerable: true });
  }
}

/** `$`, `$.a`, `$.a[3]`, `$["odd key"]`: the JSON path of a zod issue path. */
export function jsonPath(path: ReadonlyArray<PropertyKey>): string {
  let s = "$";
  for (const p of path) {
    if (typeof p === "number") s += `[${p}]`;
    else if (typeof p === "string" && /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) s += `.${p}`;
    else {
      const k = String(p);
      s += `[${JSON.stringify(k.length > 40 ? k.slice(0, 40) + "…" : k)}]`;
    }
  }
  return s;
}

const ARTICLE: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
  object: "an object",
  array: "a list",
  null: "null",
  bigint: "an integer",
};

/** The noun phrase of what a zod issue expected (its message when the schema set one). */
// deno-lint-ignore no-explicit-any
export function wantOf(iss: any): string | undefined {
  switch (iss.code) {
    case "invalid_type":
      return ARTICLE[iss.expected] ?? `a ${iss.expected}`;
    case "too_small":
      if (iss.origin === "array") {
        return iss.minimum === 1 ? "a non-empty list" : `a list of >= ${iss.minimum}`;
      }
      if (iss.origin === "string") return iss.minimum === 1 ? "a non-empty string" : `a longer string`;
      return `a number ${iss.inclusive ? ">=" : ">"} ${iss.minimum}`;
    case "too_big":
      if (iss.origin === "array") return `a list of <= ${iss.maximum}`;
      return `a number ${iss.inclusive ? "<=" : "<"} ${iss.maximum}`;
    case "invalid_value":
      return (iss.values as unknown[]).map((v) => JSON.stringify(v)).join(" or ");
    case "invalid_union":
      return "a value of one of the accepted forms";
    case "not_multiple_of":
      return `a multiple of ${iss.divisor}`;
    case "invalid_format":
      return `a ${iss.format} string`;
    default:
      return undefined;
  }
}

/** Per-parse error map: the noun phrase for each default message (schema-set messages win). */
// deno-lint-ignore no-explicit-any
const nounPhrases = (iss: any) => wantOf(iss);

/** The value at `path` in `v` (own keys only), or undefined. */
function at(v: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let x = v;
  for (const p of path) {
    if (typeof x !== "object" || x === null || !Object.hasOwn(x, p)) return undefined;
    x = (x as Record<PropertyKey, unknown>)[p];
  }
  return x;
}

/**
 * The issue to report: the first one, or, for a union none of whose forms matched, the issue of the
 * form that got furthest into the value (the longest path), so that a bad field deep inside a list of
 * entries is named rather than the whole union. Paths are made absolute.
 */
// deno-lint-ignore no-explicit-any
function deepest(iss: any, base: PropertyKey[], value: unknown): { iss: any; path: PropertyKey[] } {
  const path = [...base, ...iss.path];
  if (iss.code !== "invalid_union" || !Array.isArray(iss.errors)) return { iss, path };
  // deno-lint-ignore no-explicit-any
  let best: { iss: any; path: PropertyKey[] } | undefined;
  // A form whose first problem is a present but wrong value got further than one missing a key.
  const score = (d: { path: PropertyKey[] }) => d.path.length + (at(value, d.path) === undefined ? 0 : 0.5);
  let bestScore = -1;
  for (const branch of iss.errors) {
    if (!branch.length) continue;
    const d = deepest(branch[0], path, value);
    if (d.path.length > path.length && score(d) > bestScore) [best, bestScore] = [d, score(d)];
  }
  return best ?? { iss, path };
}

/** A default zod message ("Invalid input: ...") replaced by the noun phrase; a schema-set one kept. */
// deno-lint-ignore no-explicit-any
function messageOf(iss: any): string {
  const m: string = iss.message ?? "";
  return /^(Invalid|Too (small|big)|Unrecognized)/.test(m) ? wantOf(iss) ?? m : m;
}

/** The first issue of a zod error as a path and a sentence, e.g. `$.layers[1]`, `expected ..., got ...`. */
export function firstProblem(error: z.ZodError, value: unknown): { path: string; message: string } {
  const { iss, path } = deepest(error.issues[0], [], value);
  if (iss.code === "unrecognized_keys") {
    const keys = (iss.keys as string[]).map((k) => `'${k.length > 40 ? k.slice(0, 40) + "…" : k}'`).join(
      ", ",
    );
    return { path: jsonPath([...path, iss.keys[0]]), message: `unknown key ${keys}` };
  }
  const got = at(value, path);
  // A refinement's message is a noun phrase too (engram's convention), so it reads like any other.
  if (got === undefined && path.length > 0) {
    return { path: jsonPath(path), message: `missing, expected ${messageOf(iss)}` };
  }
  return { path: jsonPath(path), message: `expected ${messageOf(iss)}, got ${excerpt(got, 60)}` };
}

/** Runs `schema` on `value` with engram's noun-phrase messages; the zod result. */
export function safeParseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
): z.ZodSafeParseResult<z.output<S>> {
  return schema.safeParse(value, { error: nounPhrases }) as z.ZodSafeParseResult<z.output<S>>;
}

/**
 * Validates `value` (read from `where.file`) against `schema` and returns the parsed value; on failure
 * throws the error `make` builds (default {@link InputSchemaError}) with the message
 * `[record N: ]$.path: expected X, got Y`.
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: InputWhere = {},
  make?: (message: string, path: string) => EngramError,
): z.output<S> {
  const r = safeParseInput(schema, value);
  if (r.success) return r.data;
  const { path, message } = firstProblem(r.error, value);
  const rec = where.record === undefined ? "" : `${where.recordName ?? "record"} ${where.record}: `;
  const text = `${rec}${path}: ${message}`;
  throw make ? make(text, path) : new InputSchemaError(text, path, where);
}
