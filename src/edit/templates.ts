/**
 * Context templates: the prefixes ROME and MEMIT put before an edit prompt so that keys and target values
 * are averaged over contexts. Both sample them from the model with `generate_fast` (kmeng01/rome
 * `util/generate.py`): top-k 5 of the softmax, `max_out_len` counting the prompt's own tokens, the text
 * being the decoded prompt plus continuation with end-of-text removed (NFKD-normalised, "\n\n" → " ").
 *
 * - ROME (`rome_main.get_context_templates`): "{}" plus, for each [length, count] pair, `count` texts
 *   sampled from `<|endoftext|>`, each turned into "<text>. {}". The reference does not escape braces;
 *   engram removes them (as EasyEdit's ROME does) so a generated "{" cannot break the template.
 * - MEMIT (`memit_main.get_context_templates`): the groups [["{}"], [...]]: for each [length, count]
 *   pair (the reference fixes [[10, 5]]), `count / 5` texts (integer division) from each of the seeds
 *   "The", "Therefore", "Because", "I", "You", in that order, braces replaced by spaces, each "<text>. {}".
 *   So every template of the second group starts with its seed word.
 *
 * Sampling is seeded (the reference's is not); sample k of a call uses the generator seed `seed·1000 + k`.
 * All samples of a call decode as one batch per prompt length over a KV cache (src/model/generate_batch.ts),
 * each with its own generator, so the texts are those of sampling them one by one.
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import { type BatchSample, generateFastBatch } from "../model/generate_batch.ts";
import type { TransformerModel } from "../model/transformer.ts";

/** The seed prompts of MEMIT's context templates, in the reference's order. */
export const MEMIT_TEMPLATE_SEEDS: readonly string[] = ["The", "Therefore", "Because", "I", "You"];

/** ROME's templates as groups: [["{}"], one group per [length, count] pair] (ROME uses them flattened). */
export async function romeContextTemplates(
  model: TransformerModel,
  tokenizer: Tokenizer,
  lengthParams: [number, number][],
  seed: number,
): Promise<string[][]> {
  const start = tokenizer.eosId !== undefined ? [tokenizer.eosId] : tokenizer.encode("The");
  const samples: BatchSample[] = [];
  for (const [len, n] of lengthParams) {
    for (let i = 0; i < n; i++) {
      samples.push({ ids: start, maxOutLen: len, seed: seed * 1000 + samples.length });
    }
  }
  const texts = await generateFastBatch(model, tokenizer, samples);
  const groups: string[][] = [["{}"]];
  let k = 0;
  for (const [, n] of lengthParams) {
    groups.push(
      texts.slice(k, k + n).map(({ text }) => `${text.replaceAll("{", "").replaceAll("}", "")}. {}`),
    );
    k += n;
  }
  return groups;
}

/** MEMIT's template groups: [["{}"], per [length, count] pair: count / 5 texts from each seed word]. */
export async function memitContextTemplates(
  model: TransformerModel,
  tokenizer: Tokenizer,
  lengthParams: [number, number][],
  seed: number,
): Promise<string[][]> {
  const samples: BatchSample[] = [];
  const sizes: number[] = [];
  for (const [len, n] of lengthParams) {
    const before = samples.length;
    for (const word of MEMIT_TEMPLATE_SEEDS) {
      const start = tokenizer.encode(word);
      for (let i = 0; i < Math.floor(n / MEMIT_TEMPLATE_SEEDS.length); i++) {
        samples.push({ ids: start, maxOutLen: len, seed: seed * 1000 + samples.length });
      }
    }
    sizes.push(samples.length - before);
  }
  const texts = await generateFastBatch(model, tokenizer, samples);
  const groups: string[][] = [["{}"]];
  let k = 0;
  for (const n of sizes) {
    groups.push(
      texts.slice(k, k + n).map(({ text }) => `${text.replaceAll("{", " ").replaceAll("}", " ")}. {}`),
    );
    k += n;
  }
  return groups;
}
