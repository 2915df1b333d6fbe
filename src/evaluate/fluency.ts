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

/** A 32-bit seed for one prompt: the base seed mixed with an FNV-1a hash of the text. */
export function promptSeed(base: number, text: string): number {
  let h = 0x811c9dc5 ^ (base >>> 0);
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}
