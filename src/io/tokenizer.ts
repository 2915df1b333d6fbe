/**
 * GPT-2 style byte-level BPE tokenizers, backed by Hugging Face's `@huggingface/tokenizers` (pure JS).
 *
 * A model folder may hold `tokenizer.json` (preferred) or the older `vocab.json` + `merges.txt` pair.
 * For the latter an equivalent `tokenizer.json` (BPE model, ByteLevel pre-tokenizer without prefix space,
 * ByteLevel decoder — what `transformers`' GPT2Converter produces) is built in memory and handed to the
 * same library, so both paths share one BPE implementation.
 */
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import { join } from "node:path";
import { EngramError, InputError } from "../errors.ts";

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

/** Wraps a library tokenizer in the {@link Tokenizer} interface. */
function wrap(hf: HFTokenizer, config: Record<string, unknown>, source: string): Tokenizer {
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
  return {
    encode: (text: string) => hf.encode(text, { add_special_tokens: false }).ids,
    decode,
    tokenString: (id: number) => decode([id]),
    vocabSize,
    eosId,
    source,
  };
}

function construct(
  json: Record<string, unknown>,
  config: Record<string, unknown>,
  file: string,
): HFTokenizer {
  try {
    // Keep decode lossless: the GPT-2 configs ask for clean_up_tokenization_spaces, which turns " ," into ",".
    return new HFTokenizer(json, { ...config, clean_up_tokenization_spaces: false });
  } catch (e) {
    throw tokError(`cannot build tokenizer: ${(e as Error).message}`, file, { cause: e });
  }
}

/** Parses vocab.json: an object of token -> non-negative integer id. */
function checkVocab(v: Record<string, unknown>, file: string): Record<string, number> {
  for (const [tok, id] of Object.entries(v)) {
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      throw tokError(
        `id of token ${JSON.stringify(tok)} must be a non-negative integer, got ${JSON.stringify(id)}`,
        file,
        {
          field: tok,
        },
      );
    }
  }
  return v as Record<string, number>;
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
        `line ${i + 1} must be two tokens separated by one space, got ${JSON.stringify(line)}`,
        file,
        {
          field: `line ${i + 1}`,
        },
      );
    }
    for (const t of [parts[0], parts[1], parts[0] + parts[1]]) {
      if (!(t in vocab)) {
        throw tokError(`line ${i + 1}: token ${JSON.stringify(t)} is not in vocab.json`, file, {
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
    if (name === undefined || !(name in vocab) || special.has(name)) return;
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
      unk_token: unk !== undefined && unk in vocab ? unk : null,
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
export async function loadTokenizerIfPresent(dir: string): Promise<Tokenizer | undefined> {
  for (const f of ["tokenizer.json", "vocab.json", "merges.txt"]) {
    if (await exists(join(dir, f))) return await loadTokenizer(dir);
  }
  return undefined;
}

/**
 * Loads the tokenizer in model folder `dir`: `tokenizer.json` if present, else `vocab.json` + `merges.txt`
 * (with `tokenizer_config.json` / `special_tokens_map.json` for special tokens). Throws
 * {@link EngramError} (code "tokenizer") naming the file when files are missing, unreadable or malformed.
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const config = await readTokenizerConfig(dir);
  const tj = join(dir, "tokenizer.json");
  if (await exists(tj)) {
    const json = await readJsonObject(tj);
    const model = json.model;
    if (typeof model !== "object" || model === null) {
      throw tokError("has no 'model' object", tj, { field: "model" });
    }
    return wrap(construct(json, config, tj), config, tj);
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
  return wrap(construct(json, config, source), config, source);
}
