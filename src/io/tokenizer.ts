/**
 * GPT-2 style byte-level BPE tokenizers, backed by Hugging Face's `@huggingface/tokenizers` (pure JS).
 *
 * A model folder may hold `tokenizer.json` (preferred) or the older `vocab.json` + `merges.txt` pair.
 * For the latter an equivalent `tokenizer.json` (BPE model, ByteLevel pre-tokenizer without prefix space,
 * ByteLevel decoder — what `transformers`' GPT2Converter produces) is built in memory and handed to the
 * same library, so both paths share one BPE implementation.
 */
import { Tokenizer as HFTokenizer } from "npm:@huggingface/tokenizers@0.2.0";
import { join } from "node:path";
import { EngramError, InputError } from "../errors.ts";
import { excerpt, kindOf } from "./excerpt.ts";

/** A text <-> token-id codec. */
export interface Tokenizer {
  /** Token ids of `text` (no BOS/EOS added). Special tokens written literally, e.g. `<|endoftext|>`, map to their id. */
  encode(text: string): number[];
  /** Text of `ids` (lossless for ids from {@link encode}; `[]` gives ""). Throws InputError for ids out of range. */
  decode(ids: number[]): string;
  /** Decoded text of the single token `id` (may contain U+FFFD for a token that is part of a UTF-8 sequence). */
  tokenString(id: number): string;
  /** Number of token ids (largest id + 1). */
  vocabSize: number;
  /** End-of-text token id, if the tokenizer has one. */
  eosId?: number;
  /** File(s) the tokenizer was built from. */
  source: string;
  /**
   * The token engram puts before every prompt it encodes (src/prompt), decided once at load from the
   * {@link BosMode} and the tokenizer's own convention ({@link bosConvention}); undefined: none.
   */
  bosId?: number;
  /** What the tokenizer files say about a begin-of-sequence token (absent: no BOS, as GPT-2). */
  bosConvention?: BosConvention;
}

/**
 * Whether prompts start with a begin-of-sequence token: `auto` does what the model's tokenizer does
 * (HF GPT-2 adds none; Llama-family tokenizers add `<s>`), `on` always prepends the tokenizer's BOS
 * token, `off` never does.
 */
export type BosMode = "auto" | "on" | "off";

/** The BOS modes, for flag parsing. */
export const BOS_MODES: readonly BosMode[] = ["auto", "on", "off"];

/** A tokenizer's own begin-of-sequence convention, read from its files. */
export interface BosConvention {
  /** True when the tokenizer prepends a BOS token to every text (HF `add_special_tokens`). */
  adds: boolean;
  /** Id of the tokenizer's BOS token (declared `bos_token`, the template's special token, or end-of-text). */
  id?: number;
  /** Where the convention was read: "tokenizer_config.json add_bos_token", "tokenizer.json post_processor", or "default". */
  from: string;
}

/**
 * The BOS id `mode` gives for a tokenizer with `convention` (undefined: no BOS). `on` without any BOS
 * or end-of-text token is an {@link InputError} naming `field`.
 */
export function resolveBos(
  convention: BosConvention | undefined,
  mode: BosMode,
  field = "bos",
): number | undefined {
  if (mode === "off") return undefined;
  if (mode === "auto") return convention?.adds ? convention.id : undefined;
  if (convention?.id === undefined) {
    throw new InputError("bos on: the tokenizer has no begin-of-sequence or end-of-text token", { field });
  }
  return convention.id;
}

/** A copy of `tokenizer` whose prompts get the BOS that `mode` gives (see {@link resolveBos}). */
export function withBos(tokenizer: Tokenizer, mode: BosMode, field = "bos"): Tokenizer {
  return { ...tokenizer, bosId: resolveBos(tokenizer.bosConvention, mode, field) };
}

/** Options of the tokenizer loaders. */
export interface LoadTokenizerOptions {
  /** BOS policy of the prompts engram encodes (default "auto": the tokenizer's own convention). */
  bos?: BosMode;
}

/** Tokenizer file names looked for in a model folder. */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "vocab.json",
  "merges.txt",
  "tokenizer_config.json",
  "special_tokens_map.json",
];

function tokError(
  message: string,
  file: string,
  opts: { field?: string; cause?: unknown } = {},
): EngramError {
  return new EngramError("tokenizer", message, { file, ...opts });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw tokError(`cannot access: ${(e as Error).message}`, path, { cause: e });
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw tokError("file not found", path, { cause: e });
    throw tokError(`cannot read file: ${(e as Error).message}`, path, { cause: e });
  }
}

async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  const text = await readText(path);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw tokError(`not valid JSON: ${(e as Error).message}`, path, { cause: e });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw tokError("must hold a JSON object", path);
  }
  return v as Record<string, unknown>;
}

/** Content of a special-token entry: a string or `{content: string}`. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return undefined;
}

/**
 * The BOS convention of a tokenizer: tokenizer_config.json's `add_bos_token` when it is a boolean (HF
 * applies it over the post-processor), else a `post_processor` whose single-sequence template starts
 * with a special token (TemplateProcessing, alone or inside a Sequence: Llama-family tokenizer.json),
 * else none (GPT-2: ByteLevel post-processor, `add_bos_token` false by default). The BOS token is the
 * declared `bos_token`, else the template's special token, else end-of-text.
 */
export function bosConvention(
  json: Record<string, unknown> | undefined,
  config: Record<string, unknown>,
  tokenToId: (token: string) => number | undefined,
  eosId: number | undefined,
): BosConvention {
  let templateToken: string | undefined;
  const visit = (pp: unknown): void => {
    if (typeof pp !== "object" || pp === null || templateToken !== undefined) return;
    const o = pp as Record<string, unknown>;
    if (o.type === "Sequence" && Array.isArray(o.processors)) o.processors.forEach(visit);
    if (o.type === "TemplateProcessing" && Array.isArray(o.single) && o.single.length > 0) {
      const first = o.single[0] as { SpecialToken?: { id?: unknown } } | undefined;
      if (typeof first?.SpecialToken?.id === "string") templateToken = first.SpecialToken.id;
    }
  };
  visit(json?.post_processor);
  const declared = tokenContent(config.bos_token);
  const idOf = (t: string | undefined) => (t === undefined ? undefined : tokenToId(t) ?? undefined);
  const id = idOf(declared) ?? idOf(templateToken) ?? eosId;
  if (typeof config.add_bos_token === "boolean") {
    return {
      adds: config.add_bos_token && id !== undefined,
      id,
      from: "tokenizer_config.json add_bos_token",
    };
  }
  if (templateToken !== undefined) {
    const tid = idOf(templateToken);
    return { adds: tid !== undefined, id: tid ?? id, from: "tokenizer.json post_processor" };
  }
  return { adds: false, id, from: "default" };
}

/** Wraps a library tokenizer in the {@link Tokenizer} interface. */
function wrap(
  hf: HFTokenizer,
  config: Record<string, unknown>,
  source: string,
  json: Record<string, unknown> | undefined,
  bos: BosMode,
): Tokenizer {
  const vocab = hf.get_vocab(true);
  let maxId = -1;
  for (const id of vocab.values()) if (id > maxId) maxId = id;
  const vocabSize = maxId + 1;
  const eosName = tokenContent(config.eos_token) ?? "<|endoftext|>";
  const eosId = hf.token_to_id(eosName);
  const decode = (ids: number[]): string => {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize || hf.id_to_token(id) === undefined) {
        throw new InputError(`token id ${id} out of range for a vocabulary of ${vocabSize}`, {
          file: source,
          field: "ids",
        });
      }
    }
    if (ids.length === 0) return "";
    return hf.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  };
  const convention = bosConvention(json, config, (t) => hf.token_to_id(t), eosId);
  return {
    encode: (text: string) => hf.encode(text, { add_special_tokens: false }).ids,
    decode,
    tokenString: (id: number) => decode([id]),
    vocabSize,
    eosId,
    source,
    bosConvention: convention,
    bosId: resolveBos(convention, bos),
  };
}

function construct(
  json: Record<string, unknown>,
  config: Record<string, unknown>,
  file: string,
): HFTokenizer {
  let hf: HFTokenizer;
  try {
    // Keep decode lossless: the GPT-2 configs ask for clean_up_tokenization_spaces, which turns " ," into ",".
    hf = new HFTokenizer(json, { ...config, clean_up_tokenization_spaces: false });
  } catch (e) {
    throw tokError(`cannot build tokenizer: ${libraryMessage(e)}`, file, { cause: e });
  }
  // The library checks few field types when it builds (an object as `end_of_word_suffix` fails only in
  // encode): one short probe turns such a failure into a typed error at load, naming the file.
  try {
    const ids = hf.encode(PROBE, { add_special_tokens: false }).ids;
    hf.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  } catch (e) {
    throw tokError(`the tokenizer fails on a test sentence: ${libraryMessage(e)}`, file, { cause: e });
  }
  return hf;
}

/** Text encoded once at load to catch a malformed tokenizer before it is used. */
const PROBE = "The Eiffel Tower is in Paris, 1889. <|endoftext|>";

/** A library error's message, cut short: it may quote a long value from the file. */
function libraryMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : excerpt(e, 60);
  return m.length > 120 ? m.slice(0, 120) + "…" : m;
}

/**
 * Checks vocab.json: an object of token -> id whose ids are exactly 0..n-1 for its n tokens (unique, no
 * hole), as GPT-2's are. Checked before the library sees the vocabulary, which is walked up to the
 * largest id: one id near 2^31 made each load take 70-88 s.
 */
function checkVocab(v: Record<string, unknown>, file: string): Record<string, number> {
  const tokens = Object.keys(v);
  const seen = new Map<number, string>();
  for (const tok of tokens) {
    const id = v[tok];
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      throw tokError(
        `id of token ${excerpt(tok, 40)} must be a non-negative integer, got ${excerpt(id, 40)}`,
        file,
        {
          field: cut(tok),
        },
      );
    }
    checkId(id, tok, tokens.length, seen, file, "vocab.json");
  }
  return v as Record<string, number>;
}

function cut(s: string): string {
  return s.length > 40 ? s.slice(0, 40) + "…" : s;
}

/** One vocabulary id: below `n` (the number of tokens) and not already given to another token. */
function checkId(id: number, tok: string, n: number, seen: Map<number, string>, file: string, what: string) {
  if (id >= n) {
    throw tokError(
      `token ${excerpt(tok, 40)} has id ${id}, out of range for the ${n} tokens of ${what} (ids must be 0..${
        n - 1
      })`,
      file,
      { field: cut(tok) },
    );
  }
  const other = seen.get(id);
  if (other !== undefined) {
    throw tokError(`tokens ${excerpt(other, 40)} and ${excerpt(tok, 40)} share id ${id}`, file, {
      field: cut(tok),
    });
  }
  seen.set(id, tok);
}

/**
 * Checks the ids of a tokenizer.json before the library builds anything from them: `model.vocab` (an
 * object of token -> id, as BPE and WordPiece write it) must give its n tokens ids 0..n-1, each once; each
 * `added_tokens` entry needs a string `content` and an integer `id` below n + the number of added tokens
 * (HF appends added tokens after the model's vocabulary). A Unigram vocabulary (a list) has implicit ids.
 */
function checkTokenizerJson(json: Record<string, unknown>, file: string): void {
  const model = json.model as Record<string, unknown>;
  const vocab = Object.hasOwn(model, "vocab") ? model.vocab : undefined;
  let n = 0;
  const seen = new Map<number, string>();
  if (typeof vocab === "object" && vocab !== null && !Array.isArray(vocab)) {
    const tokens = Object.keys(vocab);
    n = tokens.length;
    for (const tok of tokens) {
      const id = (vocab as Record<string, unknown>)[tok];
      if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
        throw tokError(
          `model.vocab: id of token ${excerpt(tok, 40)} must be a non-negative integer, got ${
            excerpt(id, 40)
          }`,
          file,
          { field: `model.vocab.${cut(tok)}` },
        );
      }
      checkId(id, tok, n, seen, file, "model.vocab");
    }
  } else if (Array.isArray(vocab)) n = vocab.length;
  else if (vocab !== undefined) {
    throw tokError(`model.vocab must be an object or a list, got ${kindOf(vocab)}`, file, {
      field: "model.vocab",
    });
  }
  for (const k of ["unk_token", "continuing_subword_prefix", "end_of_word_suffix"]) {
    const v = Object.hasOwn(model, k) ? model[k] : undefined;
    if (v !== undefined && v !== null && typeof v !== "string") {
      throw tokError(`model.${k} must be a string or null, got ${kindOf(v)}`, file, { field: `model.${k}` });
    }
  }
  const merges = Object.hasOwn(model, "merges") ? model.merges : undefined;
  if (merges !== undefined) {
    const ok = (m: unknown) =>
      typeof m === "string" || (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === "string"));
    const bad = Array.isArray(merges) ? merges.findIndex((m) => !ok(m)) : -2;
    if (bad !== -1) {
      throw tokError(
        bad === -2
          ? `model.merges must be a list, got ${kindOf(merges)}`
          : `model.merges[${bad}] must be "left right" or a pair of strings, got ${
            excerpt((merges as unknown[])[bad], 40)
          }`,
        file,
        { field: "model.merges" },
      );
    }
  }
  const added = Object.hasOwn(json, "added_tokens") ? json.added_tokens : undefined;
  if (added === undefined || added === null) return;
  if (!Array.isArray(added)) {
    throw tokError(`added_tokens must be a list, got ${kindOf(added)}`, file, { field: "added_tokens" });
  }
  const limit = n + added.length;
  added.forEach((a, i) => {
    const field = `added_tokens[${i}]`;
    if (typeof a !== "object" || a === null || Array.isArray(a)) {
      throw tokError(`must be an object, got ${kindOf(a)}`, file, { field });
    }
    const { id, content } = a as Record<string, unknown>;
    if (typeof content !== "string") {
      throw tokError(`'content' must be a string, got ${kindOf(content)}`, file, { field });
    }
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0 || id >= limit) {
      throw tokError(
        `'id' must be an integer in 0..${limit - 1} (the vocabulary and the added tokens), got ${
          excerpt(id, 40)
        }`,
        file,
        { field },
      );
    }
  });
}

/** Parses merges.txt: optional `#version` line, then one "left right" pair per line; both parts and the merge must be in the vocab. */
export function parseMerges(text: string, vocab: Record<string, number>, file: string): [string, string][] {
  const lines = text.split("\n");
  const merges: [string, string][] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    if (line === "" || (i === 0 && line.startsWith("#version"))) continue;
    const parts = line.split(" ");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
      throw tokError(
        `line ${i + 1} must be two tokens separated by one space, got ${excerpt(line, 60)}`,
        file,
        {
          field: `line ${i + 1}`,
        },
      );
    }
    for (const t of [parts[0], parts[1], parts[0] + parts[1]]) {
      if (!Object.hasOwn(vocab, t)) {
        throw tokError(`line ${i + 1}: token ${excerpt(t, 40)} is not in vocab.json`, file, {
          field: `line ${i + 1}`,
        });
      }
    }
    merges.push([parts[0], parts[1]]);
  }
  return merges;
}

/**
 * The `tokenizer.json` equivalent of a GPT-2 `vocab.json` + `merges.txt` pair. Special tokens named in
 * `config` (tokenizer_config.json merged with special_tokens_map.json: bos/eos/unk/pad tokens,
 * additional_special_tokens, added_tokens_decoder) and `<|endoftext|>` become added special tokens when
 * they are in the vocab. The declared unk token, if in the vocab, replaces characters the vocab lacks
 * (GPT-2's full byte vocab never needs it).
 */
export function tokenizerJsonFromVocabMerges(
  vocab: Record<string, number>,
  merges: [string, string][],
  config: Record<string, unknown> = {},
): Record<string, unknown> {
  const special = new Map<string, Record<string, unknown>>();
  const add = (name: string | undefined, flags: Record<string, unknown> = {}) => {
    if (name === undefined || !Object.hasOwn(vocab, name) || special.has(name)) return;
    special.set(name, {
      id: vocab[name],
      content: name,
      single_word: !!flags.single_word,
      lstrip: !!flags.lstrip,
      rstrip: !!flags.rstrip,
      normalized: flags.normalized === undefined ? true : !!flags.normalized,
      special: flags.special === undefined ? true : !!flags.special,
    });
  };
  const decoder = config.added_tokens_decoder;
  if (typeof decoder === "object" && decoder !== null) {
    for (const v of Object.values(decoder as Record<string, unknown>)) {
      if (typeof v === "object" && v !== null) add(tokenContent(v), v as Record<string, unknown>);
    }
  }
  for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"]) add(tokenContent(config[k]));
  if (Array.isArray(config.additional_special_tokens)) {
    for (const t of config.additional_special_tokens) add(tokenContent(t));
  }
  add("<|endoftext|>");
  const unk = tokenContent(config.unk_token);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [...special.values()].sort((a, b) => (a.id as number) - (b.id as number)),
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: unk !== undefined && Object.hasOwn(vocab, unk) ? unk : null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** tokenizer_config.json merged over special_tokens_map.json ({} when neither exists). */
async function readTokenizerConfig(dir: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const stm = join(dir, "special_tokens_map.json");
  if (await exists(stm)) Object.assign(out, await readJsonObject(stm));
  const tc = join(dir, "tokenizer_config.json");
  if (await exists(tc)) Object.assign(out, await readJsonObject(tc));
  return out;
}

/**
 * Loads the tokenizer in `dir`, or returns undefined when the folder has neither `tokenizer.json` nor
 * `vocab.json`/`merges.txt`. Malformed or partial tokenizer files throw (see {@link loadTokenizer}).
 */
export async function loadTokenizerIfPresent(
  dir: string,
  opts: LoadTokenizerOptions = {},
): Promise<Tokenizer | undefined> {
  for (const f of ["tokenizer.json", "vocab.json", "merges.txt"]) {
    if (await exists(join(dir, f))) return await loadTokenizer(dir, opts);
  }
  return undefined;
}

/**
 * Loads the tokenizer in model folder `dir`: `tokenizer.json` if present, else `vocab.json` + `merges.txt`
 * (with `tokenizer_config.json` / `special_tokens_map.json` for special tokens). Throws
 * {@link EngramError} (code "tokenizer") naming the file when files are missing, unreadable or malformed.
 * `opts.bos` sets the BOS policy of the prompts engram encodes ({@link Tokenizer.bosId}).
 */
export async function loadTokenizer(dir: string, opts: LoadTokenizerOptions = {}): Promise<Tokenizer> {
  const bos = opts.bos ?? "auto";
  const config = await readTokenizerConfig(dir);
  const tj = join(dir, "tokenizer.json");
  if (await exists(tj)) {
    const json = await readJsonObject(tj);
    const model = json.model;
    if (typeof model !== "object" || model === null) {
      throw tokError("has no 'model' object", tj, { field: "model" });
    }
    checkTokenizerJson(json, tj);
    return wrap(construct(json, config, tj), config, tj, json, bos);
  }
  const vj = join(dir, "vocab.json"), mt = join(dir, "merges.txt");
  const hasV = await exists(vj), hasM = await exists(mt);
  if (!hasV && !hasM) throw tokError("no tokenizer files (tokenizer.json, or vocab.json + merges.txt)", dir);
  if (!hasV) throw tokError("file not found (merges.txt needs vocab.json beside it)", vj);
  if (!hasM) throw tokError("file not found (vocab.json needs merges.txt beside it)", mt);
  const vocab = checkVocab(await readJsonObject(vj), vj);
  const merges = parseMerges(await readText(mt), vocab, mt);
  const json = tokenizerJsonFromVocabMerges(vocab, merges, config);
  const source = `${vj} + ${mt}`;
  return wrap(construct(json, config, source), config, source, json, bos);
}
