/**
 * Typed errors about facts and prompts. Each is an {@link InputError} that names the file, the record
 * and the fact's field ("prompt", "subject", "target_new", ...); the CLI maps fact fields to its flags
 * ({@link withFieldNames}) when the fact came from flags rather than a file.
 */
import { InputError } from "../errors.ts";

/** Where a fact came from, for error messages. */
export interface FactWhere {
  /** The file the fact was read from. */
  file?: string;
  /** The record: an index (printed "record N") or a label (printed as is, e.g. "request 3"). */
  record?: number | string;
  /** Names of the fact's fields in that record (defaults: "prompt", "subject", "target"). */
  fields?: { prompt?: string; subject?: string; target?: string };
}

/** Options of a {@link FactError}. */
export interface FactErrorOptions {
  file?: string;
  record?: number | string;
  field?: string;
  cause?: unknown;
}

/** A fact or prompt that cannot be encoded; names the file, record and field. */
export class FactError extends InputError {
  /** The record (index or id) in `file`, when known. */
  readonly record?: number | string;
  /** The message without the location. */
  readonly detail: string;

  /** An error about a fact, `detail` prefixed with where it was read (file, record, field). */
  constructor(detail: string, opts: FactErrorOptions = {}) {
    const rec = typeof opts.record === "number" ? `record ${opts.record}` : opts.record;
    super(rec !== undefined ? `${rec}: ${detail}` : detail, {
      file: opts.file,
      field: opts.field,
      cause: opts.cause,
    });
    this.record = opts.record;
    this.detail = detail;
  }

  /** The same error naming `field` instead (used by the CLI to name flags). */
  renamed(field: string): FactError {
    const Ctor = this.constructor as new (detail: string, opts: FactErrorOptions) => FactError;
    return new Ctor(this.detail, { file: this.file, record: this.record, field, cause: this.cause });
  }
}

/** The fact's subject does not occur in its prompt (or covers no token of it). */
export class SubjectNotInPromptError extends FactError {}

/** The target is empty, or tokenizes to no token. */
export class EmptyTargetError extends FactError {}

/** The prompt (with its BOS, and the target tokens where they are fed in) does not fit the model's context. */
export class PromptTooLongError extends FactError {}

/**
 * Runs `fn`; a {@link FactError} about a fact that came from no file is rethrown naming `names[field]`
 * instead of the fact field (e.g. "subject" -> "--subject").
 */
export function withFieldNames<T>(names: Record<string, string>, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FactError && e.file === undefined && e.field !== undefined && e.field in names) {
      throw e.renamed(names[e.field]);
    }
    throw e;
  }
}

/** Names of a fact's fields in errors, with defaults. */
export function fieldNames(
  where: FactWhere | undefined,
): { prompt: string; subject: string; target: string } {
  return {
    prompt: where?.fields?.prompt ?? "prompt",
    subject: where?.fields?.subject ?? "subject",
    target: where?.fields?.target ?? "target",
  };
}
