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
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import { generateFast } from "../model/generate_fast.ts";
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
  const groups: string[][] = [["{}"]];
  let k = 0;
  for (const [len, n] of lengthParams) {
    const g: string[] = [];
    for (let i = 0; i < n; i++) {
      const { text } = await generateFast(model, tokenizer, start, {
        maxOutLen: len,
        seed: seed * 1000 + k++,
      });
      g.push(`${text.replaceAll("{", "").replaceAll("}", "")}. {}`);
    }
    groups.push(g);
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
  const groups: string[][] = [["{}"]];
  let k = 0;
  for (const [len, n] of lengthParams) {
    const g: string[] = [];
    for (const word of MEMIT_TEMPLATE_SEEDS) {
      const start = tokenizer.encode(word);
      for (let i = 0; i < Math.floor(n / MEMIT_TEMPLATE_SEEDS.length); i++) {
        const { text } = await generateFast(model, tokenizer, start, {
          maxOutLen: len,
          seed: seed * 1000 + k++,
        });
        g.push(`${text.replaceAll("{", " ").replaceAll("}", " ")}. {}`);
      }
    }
    groups.push(g);
  }
  return groups;
}
