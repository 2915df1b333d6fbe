/**
 * Tokenizers built from a GGUF file's own vocabulary (`tokenizer.ggml.*`), as the tokenizer.json that
 * Hugging Face's converters would write, run by the same `@huggingface/tokenizers` library as
 * src/io/tokenizer.ts:
 *
 * - "llama" (SentencePiece BPE with scores and byte fallback): what transformers' LlamaConverter
 *   (legacy) writes: normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, a BPE model with
 *   byte_fallback whose merges come from the scores (every split of a piece into two pieces, ranked by
 *   the merged piece's score, highest first, as SentencePieceExtractor ranks them), and the
 *   Replace/ByteFallback/Fuse/Strip decoder.
 * - "gpt2" (byte-level BPE with merges): the GPT-2 tokenizer.json (ByteLevel pre-tokenizer and decoder)
 *   of src/io/tokenizer.ts, with the file's control and user-defined tokens as added tokens, and NFC
 *   normalization for architecture "gptneox" (GPT-NeoX-20B's tokenizer.json normalizer).
 *
 * Pre-tokenizers other than GPT-2's (`tokenizer.ggml.pre` "llama-bpe", "qwen2", ...) are refused by name.
 */
import { Tokenizer as HFTokenizer } from "npm:@huggingface/tokenizers@0.2.0";
import { GgufError, InputError } from "../errors.ts";
import { ggufTokenizerMetadata, readGgufHeader } from "./gguf.ts";
import type { GgufFile, GgufTokenizerMetadata } from "./gguf.ts";
import { bosConvention, resolveBos, tokenizerJsonFromVocabMerges } from "./tokenizer.ts";
import type { LoadTokenizerOptions, Tokenizer } from "./tokenizer.ts";

/** GGUF token types (llama.cpp `llama_token_type`). */
export const GGUF_TOKEN_TYPE = Object.freeze({
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
});

/** Pre-tokenizer names that mean GPT-2's regex (absent: the files written before the key existed). */
const GPT2_PRE = new Set([undefined, "default", "gpt-2", "gpt2"]);

/** token -> first id holding it. */
function vocabOf(tokens: string[]): Record<string, number> {
  const vocab: Record<string, number> = Object.create(null);
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
  });
  return vocab;
}

/**
 * SentencePiece merges from piece scores, ranked as transformers' SentencePieceExtractor ranks them:
 * for every piece, each split into two pieces of the vocabulary (ordered by the ids of the left, then
 * the right part), then all of them stably sorted by the merged piece's score, highest first.
 */
export function sentencePieceMerges(tokens: string[], scores: number[]): [string, string][] {
  const vocab = vocabOf(tokens);
  const all: { l: string; r: string; score: number; order: number }[] = [];
  tokens.forEach((piece, id) => {
    if (vocab[piece] !== id) return;
    const chars = Array.from(piece);
    const local: { l: string; r: string }[] = [];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join(""), r = chars.slice(k).join("");
      if (l in vocab && r in vocab) local.push({ l, r });
    }
    local.sort((a, b) => vocab[a.l] - vocab[b.l] || vocab[a.r] - vocab[b.r]);
    for (const m of local) all.push({ ...m, score: scores[id], order: all.length });
  });
  all.sort((a, b) => b.score - a.score || a.order - b.order);
  return all.map((m) => [m.l, m.r]);
}

function addedToken(id: number, content: string, special: boolean) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

/** The tokenizer.json object equivalent to a GGUF vocabulary (see the module comment). */
export function tokenizerJsonFromGguf(
  t: GgufTokenizerMetadata,
  where: { file: string; architecture?: string },
): Record<string, unknown> {
  const types = t.tokenTypes ?? t.tokens.map(() => GGUF_TOKEN_TYPE.NORMAL);
  if (t.model === "llama") {
    if (!t.scores) {
      throw new GgufError("a SentencePiece vocabulary needs scores", {
        file: where.file,
        field: "tokenizer.ggml.scores",
      });
    }
    const added = t.tokens.flatMap((tok, id) =>
      types[id] === GGUF_TOKEN_TYPE.CONTROL || types[id] === GGUF_TOKEN_TYPE.UNKNOWN
        ? [addedToken(id, tok, true)]
        : types[id] === GGUF_TOKEN_TYPE.USER_DEFINED
        ? [{ ...addedToken(id, tok, false), normalized: false }]
        : []
    );
    const unk = t.unkId !== undefined ? t.tokens[t.unkId] : null;
    const bos = t.bosId !== undefined ? t.tokens[t.bosId] : undefined;
    const addBos = (t.addBos ?? true) && bos !== undefined;
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: {
        type: "Sequence",
        normalizers: [
          { type: "Prepend", prepend: "\u2581" },
          { type: "Replace", pattern: { String: " " }, content: "\u2581" },
        ],
      },
      pre_tokenizer: null,
      post_processor: addBos
        ? {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: "A", type_id: 0 } },
            { SpecialToken: { id: bos, type_id: 1 } },
            { Sequence: { id: "B", type_id: 1 } },
          ],
          special_tokens: { [bos!]: { id: bos, ids: [t.bosId], tokens: [bos] } },
        }
        : null,
      decoder: {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: "\u2581" }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          { type: "Strip", content: " ", start: 1, stop: 0 },
        ],
      },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: unk,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: types.includes(GGUF_TOKEN_TYPE.BYTE),
        vocab: vocabOf(t.tokens),
        merges: sentencePieceMerges(t.tokens, t.scores).map(([a, b]) => `${a} ${b}`),
      },
    };
  }
  if (t.model === "gpt2") {
    if (!GPT2_PRE.has(t.pre)) {
      throw new GgufError(`pre-tokenizer '${t.pre}' is not supported (GPT-2's: default, gpt-2)`, {
        file: where.file,
        field: "tokenizer.ggml.pre",
      });
    }
    if (!t.merges) {
      throw new GgufError("a byte-level BPE vocabulary needs merges", {
        file: where.file,
        field: "tokenizer.ggml.merges",
      });
    }
    const merges = t.merges.map((m, i): [string, string] => {
      const parts = m.split(" ");
      if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
        throw new GgufError(`merge ${i} must be two tokens separated by one space`, {
          file: where.file,
          field: "tokenizer.ggml.merges",
        });
      }
      return [parts[0], parts[1]];
    });
    const json = tokenizerJsonFromVocabMerges(vocabOf(t.tokens), merges, {});
    json.added_tokens = t.tokens.flatMap((tok, id) =>
      types[id] === GGUF_TOKEN_TYPE.CONTROL
        ? [addedToken(id, tok, true)]
        : types[id] === GGUF_TOKEN_TYPE.USER_DEFINED
        ? [addedToken(id, tok, false)]
        : []
    );
    if (where.architecture === "gptneox") json.normalizer = { type: "NFC" };
    return json;
  }
  throw new GgufError(`tokenizer model '${t.model}' is not supported (llama, gpt2)`, {
    file: where.file,
    field: "tokenizer.ggml.model",
  });
}

/**
 * The {@link Tokenizer} of a parsed GGUF file's vocabulary. BOS follows the file: llama.cpp's
 * `tokenizer.ggml.add_bos_token`, defaulting (as llama.cpp does) to true for SentencePiece and false for
 * byte-level BPE; `opts.bos` overrides as in {@link loadTokenizer}.
 */
export function ggufTokenizer(g: GgufFile, opts: LoadTokenizerOptions = {}): Tokenizer {
  const t = ggufTokenizerMetadata(g);
  if (!t) throw new GgufError("the file has no vocabulary", { file: g.path, field: "tokenizer.ggml.model" });
  const architecture = typeof g.metadata["general.architecture"] === "string"
    ? g.metadata["general.architecture"] as string
    : undefined;
  const json = tokenizerJsonFromGguf(t, { file: g.path, architecture });
  let hf: HFTokenizer;
  try {
    hf = new HFTokenizer(json, { clean_up_tokenization_spaces: false });
  } catch (e) {
    throw new GgufError(`cannot build a tokenizer from the vocabulary: ${(e as Error).message}`, {
      file: g.path,
      field: "tokenizer.ggml.tokens",
      cause: e,
    });
  }
  const vocabSize = t.tokens.length;
  const decode = (ids: number[]): string => {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new InputError(`token id ${id} out of range for a vocabulary of ${vocabSize}`, {
          file: g.path,
          field: "ids",
        });
      }
    }
    if (ids.length === 0) return "";
    return hf.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  };
  const config = {
    add_bos_token: t.addBos ?? t.model === "llama",
    bos_token: t.bosId !== undefined ? t.tokens[t.bosId] : undefined,
  };
  const convention = {
    ...bosConvention(json, config, (s) => hf.token_to_id(s), t.eosId),
    from: "gguf tokenizer.ggml.add_bos_token",
  };
  return {
    encode: (text: string) => hf.encode(text, { add_special_tokens: false }).ids,
    decode,
    tokenString: (id: number) => decode([id]),
    vocabSize,
    eosId: t.eosId,
    source: g.path,
    bosConvention: convention,
    bosId: resolveBos(convention, opts.bos ?? "auto"),
  };
}

/** Reads the GGUF file at `path` and returns the {@link Tokenizer} of its vocabulary. */
export async function loadGgufTokenizer(path: string, opts: LoadTokenizerOptions = {}): Promise<Tokenizer> {
  return ggufTokenizer(await readGgufHeader(path), opts);
}

/**
 * The Hugging Face tokenizer files standing for a GGUF file's vocabulary: `tokenizer.json` (the
 * {@link tokenizerJsonFromGguf} object) and a `tokenizer_config.json` carrying the file's BOS convention
 * (`add_bos_token`, `bos_token`, `eos_token`), so that a model saved from a GGUF file tokenizes as it did.
 */
export async function ggufTokenizerFiles(path: string): Promise<Record<string, string>> {
  const g = await readGgufHeader(path);
  const t = ggufTokenizerMetadata(g);
  if (!t) throw new GgufError("the file has no vocabulary", { file: g.path, field: "tokenizer.ggml.model" });
  const architecture = typeof g.metadata["general.architecture"] === "string"
    ? g.metadata["general.architecture"] as string
    : undefined;
  const json = tokenizerJsonFromGguf(t, { file: g.path, architecture });
  const config: Record<string, unknown> = { add_bos_token: t.addBos ?? t.model === "llama" };
  if (t.bosId !== undefined) config.bos_token = t.tokens[t.bosId];
  if (t.eosId !== undefined) config.eos_token = t.tokens[t.eosId];
  return {
    "tokenizer.json": JSON.stringify(json) + "\n",
    "tokenizer_config.json": JSON.stringify(config, null, 2) + "\n",
  };
}
