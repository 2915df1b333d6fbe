/**
 * A small GPT-2-style byte-level BPE tokenizer for the fixture world (see `world.ts`): every world word
 * is ONE token, and any other text still tokenizes through the 256 byte-level symbols.
 *
 * Layout: ids 0..255 are GPT-2's byte symbols in GPT-2's order (so "Ġ", the space, is id 220 as in GPT-2),
 * then the tokens made by the merges, in merge order, then `<|endoftext|>`.
 *
 * Merges, in rank order:
 * 1. capitalised words (first letter A-Z, no other A-Z): a left-to-right chain building the word without a
 *    space ("V" + "a" -> "Va", "Va" + "r" -> "Var", ...). Left operands start with a capital letter, which such
 *    a word has only at its first letter, so only the token holding that letter can grow: the chain fires
 *    step by step and ends with the whole word, alone ("Varnel was born in") or after a space.
 * 2. lowercase words and punctuation: a left-to-right chain from the space ("Ġ" + "b" -> "Ġb", ...). "Ġ"
 *    is only ever the first symbol of a pre-token, so again only the leftmost token can grow.
 *    Capitalised words get the single merge "Ġ" + "Varnel" -> "ĠVarnel", which applies once step 1 is done.
 * So " w" is one token for every world word w, and w is one token when capitalised (lowercase words never
 * start a world text; their no-space chains would collide with the interiors of other words).
 */
import { InputError } from "../errors.ts";
import { tokenizerJsonFromVocabMerges } from "./tokenizer.ts";

/** The end-of-text token of world tokenizers. */
export const WORLD_EOS = "<|endoftext|>";

/**
 * The world tokenizer's `tokenizer_config.json`: its convention is to start every text with the
 * end-of-text token (`add_bos_token`), as the world's training instances are (src/train/corpus.ts), so
 * engram's `--bos auto` prepends it for models trained on the world (src/prompt).
 */
export function worldTokenizerConfig(): Record<string, unknown> {
  return {
    add_bos_token: true,
    bos_token: WORLD_EOS,
    eos_token: WORLD_EOS,
    clean_up_tokenization_spaces: false,
    tokenizer_class: "GPT2Tokenizer",
  };
}

/** GPT-2's bytes_to_unicode: `symbols[i]` is the vocab symbol with id i, `byteToSymbol[b]` the symbol of byte b. */
function byteLevel(): { symbols: string[]; byteToSymbol: string[] } {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const byteToSymbol = new Array<string>(256);
  bs.forEach((b, i) => (byteToSymbol[b] = String.fromCodePoint(cs[i])));
  return { symbols: cs.map((c) => String.fromCodePoint(c)), byteToSymbol };
}

/** Byte-level symbols of `text` (its UTF-8 bytes mapped through bytes_to_unicode). */
function symbolsOf(text: string, byteToSymbol: string[]): string[] {
  return Array.from(new TextEncoder().encode(text), (b) => byteToSymbol[b]);
}

/**
 * True when `word` is one GPT-2 pre-token (letters only, digits only, or other non-space symbols only),
 * so that " word" can become a single token.
 */
export function isWorldWord(word: string): boolean {
  return /^(\p{L}+|\p{N}+|[^\s\p{L}\p{N}']+)$/u.test(word);
}

/** True when `word` also gets a no-space token (a capitalised word: A-Z, then letters without A-Z). */
export function hasBareToken(word: string): boolean {
  return /^[A-Z][^A-Z]*$/.test(word) && /^\p{L}+$/u.test(word);
}

/**
 * Builds the `tokenizer.json` object (HF tokenizers format: BPE model, ByteLevel pre-tokenizer without
 * prefix space, ByteLevel decoder, `<|endoftext|>` as special token) in which " " + w is one token for
 * every w of `words`, and w alone is one token for capitalised w (see the module comment). Duplicates are
 * ignored and the result does not depend on the order of `words`. Throws {@link InputError} for a word
 * that is not one pre-token (contains spaces, or mixes letters with digits or punctuation).
 */
export function buildWorldTokenizer(words: string[]): Record<string, unknown> {
  const uniq = [...new Set(words)].sort();
  for (const w of uniq) {
    if (!isWorldWord(w)) {
      throw new InputError(
        `${JSON.stringify(w)} is not one word (letters only, digits only, or punctuation only)`,
        { field: "words" },
      );
    }
  }
  const { symbols, byteToSymbol } = byteLevel();
  const vocab: Record<string, number> = {};
  symbols.forEach((s, i) => (vocab[s] = i));
  let next = symbols.length;
  const merges: [string, string][] = [];
  const merge = (a: string, b: string): string => {
    const m = a + b;
    if (!(m in vocab)) {
      vocab[m] = next++;
      merges.push([a, b]);
    }
    return m;
  };
  const chain = (syms: string[]): string => syms.reduce((cur, s) => merge(cur, s));
  const space = byteToSymbol[0x20];
  const capitalised = uniq.filter(hasBareToken);
  for (const w of capitalised) chain(symbolsOf(w, byteToSymbol));
  for (const w of uniq) {
    if (hasBareToken(w)) merge(space, symbolsOf(w, byteToSymbol).join(""));
    else chain(symbolsOf(" " + w, byteToSymbol));
  }
  vocab[WORLD_EOS] = next;
  return tokenizerJsonFromVocabMerges(vocab, merges, { eos_token: WORLD_EOS, bos_token: WORLD_EOS });
}
