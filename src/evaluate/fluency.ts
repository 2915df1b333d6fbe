/**
 * Fluency as ROME (`experiments/py/eval_utils_counterfact.py: test_generation`, `util/generate.py:
 * generate_fast`) and EasyEdit (`evaluate_utils.py: test_generation_quality`) measure it:
 *
 * - generate: sample from the 5 most likely tokens (probabilities renormalised over them) until the
 *   sequence, prompt included, has `max_out_len` = 100 tokens; no stop at end-of-text;
 * - text: the whole sequence decoded (prompt + continuation), NFKD-normalised, "\n\n" -> " ",
 *   "<|endoftext|>" removed;
 * - score: the n-gram entropy of the text in bits ({@link nGramEntropy}), over nltk `word_tokenize`
 *   tokens ({@link wordTokenize}).
 *
 * The unit is bits throughout (ROME's JSON has the same values; ROME's summary and KnowEdit's tables
 * print them ×100). The sampler is engram's seeded mulberry32, so a run is reproducible; it cannot
 * reproduce torch's random stream.
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { GPT2Model } from "../model/gpt2.ts";
import { generate } from "../model/generate.ts";
import { wordTokenize } from "./word_tokenize.ts";

/** Entropy in bits of the frequency distribution of the n-grams of `tokens` (0 when there are none). */
export function nGramEntropyOf(tokens: string[], n: number): number {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const k = tokens.slice(i, i + n).join("\u0000");
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  let total = 0;
  for (const c of counts.values()) total += c;
  let h = 0;
  for (const c of counts.values()) {
    const p = c / total;
    h -= p * Math.log2(p);
  }
  return h;
}

/**
 * ROME's `compute_n_gram_entropy` of one text: the bigram and trigram entropies (bits) of its
 * `word_tokenize` tokens, weighted 2/3 and 4/3, arithmetic mean.
 */
export function textEntropy(text: string, ns = [2, 3], weights = [2 / 3, 4 / 3]): number {
  if (ns.length !== weights.length) {
    throw new InputError("ns and weights differ in length", { field: "weights" });
  }
  const toks = wordTokenize(text);
  let s = 0;
  ns.forEach((n, i) => (s += weights[i] * nGramEntropyOf(toks, n)));
  return s / ns.length;
}

/** ROME's `n_gram_entropy`: the arithmetic mean of {@link textEntropy} over texts (bits). */
export function nGramEntropy(texts: string[], ns = [2, 3], weights = [2 / 3, 4 / 3]): number {
  if (texts.length === 0) throw new InputError("no texts for the n-gram entropy", { field: "texts" });
  return texts.reduce((a, t) => a + textEntropy(t, ns, weights), 0) / texts.length;
}

/** Options of {@link generateFast}. */
export interface GenerateFastOptions {
  /** Total length in tokens, prompt (and any prefix) included (ROME's max_out_len; default 100). */
  maxOutLen?: number;
  /** Sample among the k most likely tokens (default 5). */
  topK?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
}

/**
 * ROME's `generate_fast` for one prompt (token ids, prefix included): top-k sampling up to `maxOutLen`
 * tokens in all (capped by the context), and the decoded text of the whole sequence, cleaned as ROME does.
 */
export async function generateFast(
  model: GPT2Model,
  tokenizer: Tokenizer,
  promptIds: number[],
  opts: GenerateFastOptions = {},
): Promise<{ ids: number[]; text: string }> {
  const maxOutLen = Math.min(opts.maxOutLen ?? 100, model.config.nPositions);
  const n = Math.max(0, maxOutLen - promptIds.length);
  const g = n > 0
    ? await generate(model, promptIds, {
      maxTokens: n,
      temperature: 1,
      topK: opts.topK ?? 5,
      seed: opts.seed ?? 0,
    })
    : { ids: [] };
  const ids = [...promptIds, ...g.ids];
  return { ids, text: cleanGeneratedText(tokenizer.decode(ids), tokenizer) };
}

/** ROME's clean-up of a decoded generation: NFKD, "\n\n" -> " ", end-of-text strings removed. */
export function cleanGeneratedText(text: string, tokenizer?: Tokenizer): string {
  let t = text.normalize("NFKD").replaceAll("\n\n", " ").replaceAll("<|endoftext|>", "");
  // A tokenizer whose end-of-text token is spelled differently (the world model's) gets the same treatment.
  const eos = tokenizer?.eosId !== undefined ? tokenizer.decode([tokenizer.eosId]) : "";
  if (eos !== "" && eos.trim() !== "") t = t.replaceAll(eos, "");
  return t;
}

/** A 32-bit seed for one prompt: the base seed mixed with an FNV-1a hash of the text. */
export function promptSeed(base: number, text: string): number {
  let h = 0x811c9dc5 ^ (base >>> 0);
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}
