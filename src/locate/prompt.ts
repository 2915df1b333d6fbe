/**
 * Preparing a causal-tracing input: the prompt's token ids (optionally after an end-of-text "BOS"
 * token), the subject's token range found by character offsets (as ROME's `find_token_range` does),
 * and the target continuation's token ids.
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";

/** A tokenised tracing input. */
export interface TraceInput {
  /** Input ids: [BOS] (when prefixed) + the prompt's tokens. */
  ids: number[];
  /** Decoded text of each id, for labels. */
  tokens: string[];
  /** Subject tokens [start, end) as indices into `ids`. */
  subjectRange: [number, number];
  /** Number of prefix tokens (0 or 1). */
  prefix: number;
  /** The prompt text. */
  prompt: string;
  /** The subject text. */
  subject: string;
}

/** Options of {@link prepareTraceInput}. */
export interface PrepareOptions {
  /** Prepend the tokenizer's end-of-text token (default false). */
  prefixEos?: boolean;
  /** Name used in error messages for the subject (default "--subject"). */
  subjectField?: string;
  /** Name used in error messages for the prompt (default "--prompt"). */
  promptField?: string;
  /** File named in errors (for facts files). */
  file?: string;
}

/**
 * Character offsets [start, end) of each token of `ids` in `tokenizer.decode(ids)`, from the lengths of
 * decoded prefixes (a token that ends inside a multi-byte character gets the offsets of the decoded
 * replacement text; boundaries at whole characters are exact).
 */
export function tokenOffsets(tokenizer: Tokenizer, ids: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let prev = 0;
  for (let i = 0; i < ids.length; i++) {
    const end = tokenizer.decode(ids.slice(0, i + 1)).length;
    out.push([prev, Math.max(prev, end)]);
    prev = Math.max(prev, end);
  }
  return out;
}

/**
 * Token range [a, b) of the first occurrence of `subject` in the text of `ids`: the tokens whose
 * character spans overlap the subject's span. Throws {@link InputError} naming `field` when the subject
 * does not occur.
 */
export function findTokenRange(
  tokenizer: Tokenizer,
  ids: number[],
  subject: string,
  field = "--subject",
  file?: string,
): [number, number] {
  const text = tokenizer.decode(ids);
  const cs = subject === "" ? -1 : text.indexOf(subject);
  if (cs < 0) {
    throw new InputError(`subject '${subject}' does not occur in the prompt '${text}'`, { field, file });
  }
  const ce = cs + subject.length;
  const offs = tokenOffsets(tokenizer, ids);
  let a = -1, b = -1;
  offs.forEach(([s, e], i) => {
    if (s < ce && e > cs) {
      if (a < 0) a = i;
      b = i + 1;
    }
  });
  if (a < 0) throw new InputError(`subject '${subject}' maps to no token of the prompt`, { field, file });
  return [a, b];
}

/** Tokenises `prompt`, optionally after the end-of-text token, and locates `subject` in it. */
export function prepareTraceInput(
  tokenizer: Tokenizer,
  prompt: string,
  subject: string,
  opts: PrepareOptions = {},
): TraceInput {
  const promptField = opts.promptField ?? "--prompt";
  if (prompt.length === 0) throw new InputError("empty prompt", { field: promptField, file: opts.file });
  const body = tokenizer.encode(prompt);
  if (body.length === 0) {
    throw new InputError("the prompt has no tokens", { field: promptField, file: opts.file });
  }
  const [a, b] = findTokenRange(tokenizer, body, subject, opts.subjectField ?? "--subject", opts.file);
  let pre: number[] = [];
  if (opts.prefixEos) {
    if (tokenizer.eosId === undefined) {
      throw new InputError("the tokenizer has no end-of-text token to prepend", { field: "--prefix-eos" });
    }
    pre = [tokenizer.eosId];
  }
  const ids = [...pre, ...body];
  return {
    ids,
    tokens: ids.map((id) => tokenizer.tokenString(id)),
    subjectRange: [a + pre.length, b + pre.length],
    prefix: pre.length,
    prompt,
    subject,
  };
}

/**
 * Token ids of `target` as the model would read it right after `prompt`: the continuation is `target`
 * itself when it starts with whitespace, else " " + target. Throws {@link InputError} naming `field`
 * when the target is empty or when the tokenizer merges the prompt's last token with the target (then
 * the target is not a continuation of the prompt's tokens).
 */
export function targetContinuation(
  tokenizer: Tokenizer,
  prompt: string,
  target: string,
  field = "--target",
  file?: string,
): number[] {
  if (target.trim() === "") throw new InputError("empty target", { field, file });
  const cont = /^\s/.test(target) ? target : " " + target;
  const p = tokenizer.encode(prompt);
  const full = tokenizer.encode(prompt + cont);
  if (full.length <= p.length || p.some((id, i) => full[i] !== id)) {
    throw new InputError(
      `target '${target}' is not a continuation the tokenizer can form after the prompt: ` +
        `'${prompt}${cont}' does not tokenize as the prompt's tokens followed by the target's ` +
        `(the tokenizer merges across the boundary)`,
      { field, file },
    );
  }
  return full.slice(p.length);
}
