/**
 * Typed errors for engram. Every error a user can cause (bad file, bad flag, bad prompt) is an
 * {@link EngramError}: the CLI prints its message and exits non-zero without a stack trace.
 * Anything else is a bug and keeps its stack.
 */

/** Base class of all user-facing errors. `file` and `field` name where the problem is, when known. */
export class EngramError extends Error {
  /** Machine-readable category, e.g. "safetensors", "config", "input", "gpu". */
  readonly code: string;
  /** Path of the offending file, if the error is about a file. */
  readonly file?: string;
  /** Offending field, tensor name, flag or key, if any. */
  readonly field?: string;

  /** An error of category `code`; `opts.file` and `opts.field` are prefixed to the message. */
  constructor(code: string, message: string, opts: { file?: string; field?: string; cause?: unknown } = {}) {
    // A field read from a file (a tensor or key name) may be megabytes long: the message quotes its start.
    const field = opts.field && opts.field.length > 80 ? `${opts.field.slice(0, 80)}…` : opts.field;
    const where = [opts.file, field ? `field '${field}'` : undefined].filter(Boolean).join(", ");
    super(
      where ? `${where}: ${message}` : message,
      opts.cause !== undefined ? { cause: opts.cause } : undefined,
    );
    this.name = new.target.name;
    this.code = code;
    this.file = opts.file;
    this.field = opts.field;
  }
}

/** A safetensors file is truncated, corrupt, or inconsistent with what was asked of it. */
export class SafetensorsError extends EngramError {
  /** A safetensors error about `opts.file` / `opts.field`. */
  constructor(message: string, opts: { file?: string; field?: string; cause?: unknown } = {}) {
    super("safetensors", message, opts);
  }
}

/** A model folder's config is missing, malformed, contradicts the weights, or names an unknown architecture. */
export class ConfigError extends EngramError {
  /** A config error about `opts.file` / `opts.field`. */
  constructor(message: string, opts: { file?: string; field?: string; cause?: unknown } = {}) {
    super("config", message, opts);
  }
}

/** A tensor has the wrong shape or size for where it is used. */
export class ShapeError extends EngramError {
  /** A shape error about `opts.file` / `opts.field`. */
  constructor(message: string, opts: { file?: string; field?: string; cause?: unknown } = {}) {
    super("shape", message, opts);
  }
}

/** A user-supplied value is invalid: empty prompt, ids out of range, prompt too long, bad flag. */
export class InputError extends EngramError {
  /** An input error about `opts.file` / `opts.field`. */
  constructor(message: string, opts: { file?: string; field?: string; cause?: unknown } = {}) {
    super("input", message, opts);
  }
}

/** No usable GPU, a buffer over the adapter's limits, a lost device, or a WGSL validation error. */
export class GpuError extends EngramError {
  /** A GPU error about `opts.file` / `opts.field`. */
  constructor(message: string, opts: { file?: string; field?: string; cause?: unknown } = {}) {
    super("gpu", message, opts);
  }
}

/**
 * A GGUF file (llama.cpp's format) is truncated or corrupt, holds a tensor type engram cannot read, or
 * describes an architecture or tokenizer engram does not load.
 */
export class GgufError extends EngramError {
  /** A GGUF error about `opts.file` / `opts.field`. */
  constructor(message: string, opts: { file?: string; field?: string; cause?: unknown } = {}) {
    super("gguf", message, opts);
  }
}

/**
 * A model or an analysis needs more GPU memory than the adapter allows (see src/model/memory.ts), or one
 * of its tensors exceeds the adapter's largest buffer. Raised before anything is allocated.
 */
export class OutOfMemoryError extends GpuError {
  /** Bytes the model or analysis needs (the whole estimate, or the one tensor's size). */
  readonly neededBytes: number;
  /** Bytes the adapter allows (the free memory budget, or maxBufferSize for one tensor). */
  readonly allowedBytes: number;
  /** An out-of-memory error with the bytes needed and allowed. */
  constructor(
    message: string,
    opts: { neededBytes: number; allowedBytes: number; file?: string; field?: string; cause?: unknown },
  ) {
    super(message, opts);
    this.neededBytes = opts.neededBytes;
    this.allowedBytes = opts.allowedBytes;
  }
}
