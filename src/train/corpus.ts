/**
 * Training corpora: JSONL files with one training instance per line, `{"id": "...", "text": "..."}`
 * (other fields are kept but unused). Instances are tokenized as [eos] + text + [eos] so that the
 * first word is predicted too and the model learns where a statement ends.
 */
import { EngramError, InputError } from "../errors.ts";
import { excerpt, kindOf } from "../io/excerpt.ts";
import { isJsonObject, parseStrictJson } from "../io/strict_json.ts";
import { CORPUS_RECORD } from "../schema/train.ts";
import { parseInput } from "../schema/validate.ts";
import type { Tokenizer } from "../io/tokenizer.ts";

/** One tokenized training instance. */
export interface TrainingInstance {
  /** The instance's id in the corpus (instance attribution names instances by it). */
  id: string;
  /** 0-based line number in the corpus file. */
  line: number;
  /** The instance's text. */
  text: string;
  /** Token ids including the leading and trailing eos. */
  ids: number[];
}

/** Reads and tokenizes a JSONL corpus; every line must fit the context `maxTokens`. */
export async function readCorpus(
  path: string,
  tokenizer: Tokenizer,
  maxTokens: number,
): Promise<TrainingInstance[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new EngramError("io", `cannot read the training corpus: ${(e as Error).message}`, { file: path });
  }
  return parseCorpus(text, path, tokenizer, maxTokens);
}

/** UTF-8 byte length of `s` without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

const TOKEN_BYTES = new WeakMap<Tokenizer, number>();

/**
 * The most UTF-8 bytes of text one token of `tokenizer` stands for: the longest decoded token (a byte
 * that is not valid UTF-8 on its own decodes to U+FFFD, 3 bytes, so this never under-counts). Walks the
 * vocabulary once (about a second for GPT-2's 50,257 tokens) and caches the result.
 */
export function maxTokenBytes(tokenizer: Tokenizer): number {
  let max = TOKEN_BYTES.get(tokenizer);
  if (max !== undefined) return max;
  max = 1;
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    let s: string;
    try {
      s = tokenizer.tokenString(id);
    } catch {
      continue; // a hole in the vocabulary
    }
    max = Math.max(max, utf8Length(s));
  }
  TOKEN_BYTES.set(tokenizer, max);
  return max;
}

/** Below this many bytes per token a line is tokenized without looking up the vocabulary's longest token. */
const CHEAP_TOKEN_BYTES = 16;

/**
 * Parses corpus text (see {@link readCorpus}); `path` is used in error messages. Each line is strict
 * JSON (duplicate keys, nesting deeper than 32 refused); `text` must be a string and `id` (optional) a
 * string or an integer, never coerced. A line whose text has more UTF-8 bytes than `maxTokens` - 2 tokens
 * can cover (see {@link maxTokenBytes}) is refused before it is tokenized, so a megabyte-long word costs
 * no tokenizer time.
 */
export function parseCorpus(
  text: string,
  path: string,
  tokenizer: Tokenizer,
  maxTokens: number,
): TrainingInstance[] {
  const eos = tokenizer.eosId;
  if (eos === undefined) {
    throw new InputError("the tokenizer has no end-of-text token to delimit instances", { file: path });
  }
  const out: TrainingInstance[] = [];
  const ids = new Set<string>();
  const lines = text.split("\n");
  const room = Math.max(0, maxTokens - 2);
  lines.forEach((raw, i) => {
    if (raw.trim() === "") return;
    const where = { file: path, field: `line ${i + 1}` };
    const rec = parseStrictJson(raw, {
      file: path,
      maxDepth: 32,
      error: (msg, field) =>
        new InputError(
          field ? `${msg} (at ${field.length > 60 ? field.slice(0, 60) + "…" : field})` : msg,
          where,
        ),
    });
    if (!isJsonObject(rec)) throw new InputError(`not a JSON object, got ${kindOf(rec)}`, where);
    const { text: t, id: rid } = parseInput(CORPUS_RECORD, rec, {}, (msg) => new InputError(msg, where));
    const id = rid === undefined ? `line${i + 1}` : String(rid);
    if (ids.has(id)) throw new InputError(`duplicate id '${excerpt(id, 60).slice(1, -1)}'`, where);
    ids.add(id);
    const bytes = utf8Length(t);
    if (bytes > room * CHEAP_TOKEN_BYTES || room === 0) {
      const per = maxTokenBytes(tokenizer);
      if (bytes > room * per) {
        throw new InputError(
          `'text' is ${bytes} bytes: more than the ${
            room * per
          } bytes that the ${room} tokens left by the model's ` +
            `context of ${maxTokens} (with the two end-of-text markers) can hold at ${per} bytes per token at most`,
          where,
        );
      }
    }
    const toks = [eos, ...tokenizer.encode(t), eos];
    if (toks.length > maxTokens) {
      throw new InputError(
        `${toks.length} tokens (with the two end-of-text markers) do not fit the model's context of ${maxTokens}`,
        where,
      );
    }
    out.push({ id, line: i, text: t, ids: toks });
  });
  if (out.length === 0) throw new InputError("the training corpus is empty", { file: path });
  return out;
}

/**
 * Pads instances to a common length with `pad` and builds next-token targets (-1 where there is no
 * next token of the instance), ready for {@link lossAndGradients}.
 */
export function makeBatch(
  instances: TrainingInstance[],
  pad: number,
): { batch: number[][]; targets: number[][] } {
  const T = Math.max(...instances.map((x) => x.ids.length)) - 1;
  const batch: number[][] = [];
  const targets: number[][] = [];
  for (const x of instances) {
    const inp = x.ids.slice(0, -1);
    const tgt = x.ids.slice(1);
    while (inp.length < T) {
      inp.push(pad);
      tgt.push(-1);
    }
    batch.push(inp);
    targets.push(tgt);
  }
  return { batch, targets };
}
