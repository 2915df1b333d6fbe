/**
 * The one encoding of prompts and facts used by every command and method:
 * - the BOS policy: the tokenizer's `bosId`, decided once at load (src/io/tokenizer.ts), or an explicit
 *   per-call override;
 * - the subject's token range from character spans (ROME's `find_token_range`: decode the tokens, find
 *   the subject by character offset, map its span back to the tokens it overlaps);
 * - one target-spacing rule (ROME's `execute_rome`: " " + target unless it already starts with " ");
 * - one check that the prompt (with the target tokens it feeds in) fits the model's context.
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { LoadedModel } from "../model/load.ts";
import {
  EmptyTargetError,
  FactError,
  type FactWhere,
  fieldNames,
  PromptTooLongError,
  SubjectNotInPromptError,
} from "./errors.ts";

/**
 * The BOS ids put before a prompt: `[tokenizer.bosId]` under the policy decided at load, or, with
 * `override` (an editor's explicit `prefix_eos` hparam), the tokenizer's BOS token (end-of-text for
 * GPT-2) when true and nothing when false.
 */
export function bosPrefix(tokenizer: Tokenizer, override?: boolean): number[] {
  if (override === undefined) return tokenizer.bosId === undefined ? [] : [tokenizer.bosId];
  if (!override) return [];
  const id = tokenizer.bosConvention?.id ?? tokenizer.eosId;
  if (id === undefined) {
    throw new InputError("prefix_eos: the tokenizer has no begin-of-sequence or end-of-text token", {
      field: "prefix_eos",
    });
  }
  return [id];
}

/** Options shared by the encoders. */
export interface EncodeOptions {
  /** The model's context (n_positions); longer inputs are a {@link PromptTooLongError}. */
  nPositions?: number;
  /** Explicit BOS override (see {@link bosPrefix}); default: the tokenizer's policy. */
  bos?: boolean;
  /** Where the text came from, for errors. */
  where?: FactWhere;
}

/** The continuation text of a target: ROME's rule, " " + target unless it starts with a space. */
export function spacedTarget(target: string): string {
  return target.startsWith(" ") ? target : " " + target;
}

/**
 * Token ids of `target` as it follows a prompt ({@link spacedTarget}, encoded as a continuation:
 * {@link continuationIds}; for byte-level BPE that is ROME's and EasyEdit's standalone encoding). An empty or all-whitespace target, or one that tokenizes to nothing, is an
 * {@link EmptyTargetError} naming the fact's target field.
 */
export function encodeTarget(tokenizer: Tokenizer, target: string, where?: FactWhere): number[] {
  const at = { file: where?.file, record: where?.record, field: fieldNames(where).target };
  if (typeof target !== "string" || target.trim() === "") throw new EmptyTargetError("empty target", at);
  const ids = continuationIds(tokenizer, spacedTarget(target));
  if (ids.length === 0) throw new EmptyTargetError(`target '${target}' tokenizes to no token`, at);
  return ids;
}

/** A neutral word the continuation is encoded after (see {@link continuationIds}). */
const CONTEXT_WORD = "x";

/**
 * Token ids of `text` as a continuation of earlier text: the tokens of `CONTEXT_WORD + text` after those
 * of `CONTEXT_WORD`. For byte-level BPE (GPT-2, NeoX, Llama 3, Qwen) this is `encode(text)` itself,
 * ROME's and EasyEdit's standalone encoding; for SentencePiece tokenizers (Llama 2, Mistral), which put a
 * word-boundary marker before the start of a text, the standalone " Paris" is ["▁", "▁Paris"] while
 * after a prompt the model sees ["▁Paris"]: the in-context tokens are what a target must be. When the
 * context's tokens are not a prefix (a merge across the boundary), or the probe cannot be encoded, the
 * standalone encoding is returned.
 */
export function continuationIds(tokenizer: Tokenizer, text: string): number[] {
  const alone = tokenizer.encode(text);
  let ctx: number[], joint: number[];
  try {
    ctx = tokenizer.encode(CONTEXT_WORD);
    joint = tokenizer.encode(CONTEXT_WORD + text);
  } catch {
    return alone; // a closed vocabulary without the probe word (test tokenizers): nothing to compare
  }
  if (joint.length <= ctx.length || !ctx.every((id, i) => joint[i] === id)) return alone;
  return joint.slice(ctx.length);
}

/**
 * `[BOS] + tokens of text` (see {@link bosPrefix}). An empty text is an {@link InputError}; more tokens
 * than `nPositions` a {@link PromptTooLongError}; both name the prompt field.
 */
export function encodeText(tokenizer: Tokenizer, text: string, opts: EncodeOptions = {}): number[] {
  const at = { file: opts.where?.file, record: opts.where?.record, field: fieldNames(opts.where).prompt };
  if (typeof text !== "string" || text.trim() === "") throw new FactError("empty prompt", at);
  const body = tokenizer.encode(text);
  if (body.length === 0) throw new FactError("the prompt has no tokens", at);
  const ids = [...bosPrefix(tokenizer, opts.bos), ...body];
  checkFits(ids.length, opts.nPositions, `the prompt '${text}'`, at);
  return ids;
}

function checkFits(
  need: number,
  nPositions: number | undefined,
  what: string,
  at: { file?: string; record?: number | string; field: string },
): void {
  if (nPositions !== undefined && need > nPositions) {
    throw new PromptTooLongError(
      `${what} needs ${need} tokens, longer than the model's context of ${nPositions}`,
      at,
    );
  }
}

/**
 * Character offsets [start, end) of each token of `ids` in `tokenizer.decode(ids)`, from the lengths of
 * decoded prefixes (as ROME's `find_token_range`, which joins the decoded tokens; a token that ends
 * inside a multi-byte character gets the offsets of the decoded replacement text).
 */
export function tokenOffsets(tokenizer: Tokenizer, ids: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let prev = 0;
  for (let i = 0; i < ids.length; i++) {
    const end = Math.max(prev, tokenizer.decode(ids.slice(0, i + 1)).length);
    out.push([prev, end]);
    prev = end;
  }
  return out;
}

/** Tokens [a, b) of `offsets` that overlap the character span [cs, ce), or undefined when none does. */
export function spanTokens(
  offsets: Array<[number, number]>,
  cs: number,
  ce: number,
): [number, number] | undefined {
  let a = -1, b = -1;
  offsets.forEach(([s, e], i) => {
    if (s < ce && e > cs) {
      if (a < 0) a = i;
      b = i + 1;
    }
  });
  return a < 0 ? undefined : [a, b];
}

/**
 * ROME's `find_token_range`: the tokens [a, b) of `ids` overlapping the first occurrence of `subject` in
 * their decoded text. A subject that does not occur is a {@link SubjectNotInPromptError}.
 */
export function findTokenRange(
  tokenizer: Tokenizer,
  ids: number[],
  subject: string,
  where?: FactWhere,
): [number, number] {
  const at = { file: where?.file, record: where?.record, field: fieldNames(where).subject };
  const text = tokenizer.decode(ids);
  const cs = subject === "" ? -1 : text.indexOf(subject);
  if (cs < 0) {
    throw new SubjectNotInPromptError(`subject '${subject}' does not occur in the prompt '${text}'`, at);
  }
  const r = spanTokens(tokenOffsets(tokenizer, ids), cs, cs + subject.length);
  if (!r) throw new SubjectNotInPromptError(`subject '${subject}' maps to no token of the prompt`, at);
  return r;
}

/** A fact to encode: a prompt holding the subject literally or as one "{}", and optionally a target. */
export interface FactInput {
  /** The prompt with the subject literal. */
  prompt: string;
  /** The subject, a substring of the prompt. */
  subject: string;
  /** The expected answer, when known. */
  target?: string;
}

/** Options of {@link encodeFact}. */
export interface EncodeFactOptions extends EncodeOptions {
  /**
   * A context template with one "{}" for the prompt (ROME's `context_templates`, e.g. "Text. {}"). When
   * the input does not fit, leading template tokens are dropped (never prompt tokens).
   */
  template?: string;
  /** Append all but the last target token (teacher forcing, as ROME's rewriting prompts); they count toward the fit. */
  appendTarget?: boolean;
  /** Positions to keep free after the prompt for tokens the caller appends (e.g. target ids it holds). */
  reserve?: number;
  /**
   * Check that prompt + spaced target tokenizes as the prompt's tokens followed by the target's (default
   * true when a target is given): otherwise the target tokens are not what the model reads after the prompt.
   */
  checkBoundary?: boolean;
}

/** An encoded fact. */
export interface EncodedFact {
  /** [BOS] + the (template-filled) prompt's tokens, + target[:-1] with `appendTarget`. */
  ids: number[];
  /** Number of BOS tokens at the front (0 or 1). */
  prefix: number;
  /** The subject's tokens [a, b), indices into `ids`. */
  subjectRange: [number, number];
  /** Length of the prompt part of `ids` (BOS included); the prompt's last token is `promptLength - 1`. */
  promptLength: number;
  /** The target's tokens (when the fact has a target). */
  target?: number[];
  /** The prompt text with the subject filled in (and the template around it). */
  text: string;
}

/** Whether `ids` are the first tokens of `body`. */
function isPrefixOf(ids: number[], body: number[]): boolean {
  return ids.length <= body.length && ids.every((id, i) => body[i] === id);
}

/**
 * The subject's tokens when the tokenizer is lossy (decoding does not give the text back: a normalizer,
 * unknown characters). First as the reference counts them: the tokens of the text before the subject and
 * of the text through it (ROME's `len(tok(prefix + subject))`), when both are prefixes of the prompt's
 * tokens; else the subject's first occurrence in the decoded text at or after where it can have moved to
 * (ROME's `find_token_range`), preferring one that ends on a token's end.
 */
function lossySubjectRange(
  tokenizer: Tokenizer,
  body: number[],
  decoded: string,
  offsets: Array<[number, number]>,
  text: string,
  cs: number,
  subject: string,
  where: { file?: string; record?: number | string; field: string },
): [number, number] | undefined {
  const before = tokenizer.encode(text.slice(0, cs)),
    through = tokenizer.encode(text.slice(0, cs + subject.length));
  if (through.length > before.length && isPrefixOf(before, body) && isPrefixOf(through, body)) {
    return [before.length, through.length];
  }
  // Dropped characters can move the subject earlier by at most the shortfall; added ones only later.
  const from = Math.max(0, Math.min(cs, decoded.length) - Math.max(0, text.length - decoded.length));
  const ends = new Set(offsets.map(([, e]) => e));
  let first = -1;
  for (let at = decoded.indexOf(subject, from); at >= 0; at = decoded.indexOf(subject, at + 1)) {
    if (ends.has(at + subject.length)) return spanTokens(offsets, at, at + subject.length);
    if (first < 0) first = at;
  }
  if (first < 0) first = decoded.indexOf(subject);
  if (first < 0) {
    throw new SubjectNotInPromptError(
      `subject '${subject}' does not occur in the decoded prompt '${decoded}'`,
      where,
    );
  }
  return spanTokens(offsets, first, first + subject.length);
}

/**
 * Encodes a fact: the prompt (filled into `template`), with the BOS policy, the subject's token range
 * from its character span, the target by {@link encodeTarget}, and the context check. A prompt with a
 * "{}" places the subject there; otherwise the subject's first occurrence is used (ROME's
 * `find_token_range`). Errors are {@link FactError}s naming file, record and field: an empty prompt,
 * more than one "{}", a subject not in its prompt ({@link SubjectNotInPromptError}), an empty target
 * ({@link EmptyTargetError}), a prompt that does not fit ({@link PromptTooLongError}).
 */
export function encodeFact(tokenizer: Tokenizer, fact: FactInput, opts: EncodeFactOptions = {}): EncodedFact {
  const names = fieldNames(opts.where);
  const at = (field: string) => ({ file: opts.where?.file, record: opts.where?.record, field });
  const { prompt, subject } = fact;
  if (typeof prompt !== "string" || prompt.trim() === "") {
    throw new FactError("empty prompt", at(names.prompt));
  }
  if (typeof subject !== "string" || subject === "") {
    throw new SubjectNotInPromptError("empty subject", at(names.subject));
  }
  const holes = prompt.split("{}").length - 1;
  if (holes > 1) throw new FactError(`prompt has ${holes} "{}" placeholders, expected one`, at(names.prompt));
  const template = opts.template ?? "{}";
  const tAt = template.indexOf("{}");
  if (tAt < 0 || template.indexOf("{}", tAt + 2) >= 0) {
    throw new InputError(`context template '${template}' must hold exactly one "{}"`, { field: "template" });
  }
  const head = template.slice(0, tAt); // the template text before the prompt
  let text: string, cs: number;
  if (holes === 1) {
    const p = prompt.indexOf("{}");
    text = head + prompt.slice(0, p) + subject + prompt.slice(p + 2) + template.slice(tAt + 2);
    cs = head.length + p;
  } else {
    text = head + prompt + template.slice(tAt + 2);
    cs = prompt.indexOf(subject);
    if (cs < 0) {
      throw new SubjectNotInPromptError(
        `subject '${subject}' does not occur in the prompt '${prompt}'`,
        at(names.subject),
      );
    }
    cs += head.length;
  }
  let body = tokenizer.encode(text);
  if (body.length === 0) throw new FactError("the prompt has no tokens", at(names.prompt));
  const offsets = tokenOffsets(tokenizer, body);
  const decoded = tokenizer.decode(body);
  const lossless = decoded === text;
  let range = lossless
    ? spanTokens(offsets, cs, cs + subject.length)
    : lossySubjectRange(tokenizer, body, decoded, offsets, text, cs, subject, at(names.subject));
  if (!range) {
    throw new SubjectNotInPromptError(
      `subject '${subject}' maps to no token of the prompt`,
      at(names.subject),
    );
  }

  const target = fact.target !== undefined ? encodeTarget(tokenizer, fact.target, opts.where) : undefined;
  if (target && (opts.checkBoundary ?? true)) {
    const joint = tokenizer.encode(text + spacedTarget(fact.target!));
    const ok = joint.length === body.length + target.length &&
      body.every((id, i) => joint[i] === id) && target.every((id, j) => joint[body.length + j] === id);
    if (!ok) {
      throw new FactError(
        `target '${fact.target}' is not a continuation the tokenizer forms after the prompt: ` +
          `'${text}${spacedTarget(fact.target!)}' does not tokenize as the prompt's tokens followed by the ` +
          `target's (the tokenizer merges across the boundary)`,
        at(names.target),
      );
    }
  }

  const pre = bosPrefix(tokenizer, opts.bos);
  const extra = opts.appendTarget && target ? target.length - 1 : 0;
  const need = pre.length + body.length + extra + (opts.reserve ?? 0);
  if (opts.nPositions !== undefined && need > opts.nPositions) {
    // Drop leading template tokens: those wholly inside the template's text before the prompt.
    // (A lossy tokenizer's offsets are in decoded characters: its template tokens are counted by encoding.)
    const headIds = head === "" || lossless ? [] : tokenizer.encode(head);
    const templateTokens = head === ""
      ? 0
      : headIds.length > 0 && isPrefixOf(headIds, body)
      ? headIds.length
      : offsets.filter(([, e]) => e <= head.length).length;
    const drop = need - opts.nPositions;
    if (drop > Math.min(templateTokens, range[0])) {
      checkFits(
        need,
        opts.nPositions,
        `the prompt '${text}'${extra || opts.reserve ? " plus its target" : ""}`,
        at(names.prompt),
      );
    }
    body = body.slice(drop);
    range = [range[0] - drop, range[1] - drop];
  }
  const ids = [...pre, ...body];
  const promptLength = ids.length;
  if (extra > 0) ids.push(...target!.slice(0, -1));
  return {
    ids,
    prefix: pre.length,
    subjectRange: [range[0] + pre.length, range[1] + pre.length],
    promptLength,
    target,
    text,
  };
}

/**
 * The ids a command runs on: explicit `ids` as given (no BOS added), or `text` encoded by
 * {@link encodeText}; validated against the model. Errors name the fact fields "text" / "ids".
 */
export function promptIds(lm: LoadedModel, text: string | undefined, ids: number[] | undefined): number[] {
  let out: number[];
  if (ids !== undefined) out = ids;
  else {
    if (text === undefined) throw new FactError("give a prompt as text or as ids", { field: "text" });
    if (!lm.tokenizer) {
      throw new FactError(
        `${lm.dir} has no tokenizer files (tokenizer.json or vocab.json + merges.txt); give ids`,
        { field: "text" },
      );
    }
    out = encodeText(lm.tokenizer, text, {
      nPositions: lm.model.config.nPositions,
      where: { fields: { prompt: "text" } },
    });
  }
  lm.model.checkBatch([out]);
  return out;
}
