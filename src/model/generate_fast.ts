/**
 * ROME's `generate_fast` (kmeng01/rome `util/generate.py`), the one sampler behind both context templates
 * (src/edit/templates.ts) and fluency (src/evaluate/fluency.ts): top-k 5 sampling until the sequence,
 * prompt included, has `max_out_len` tokens, and the decoded text of the whole sequence cleaned as ROME
 * does (NFKD, "\n\n" -> " ", end-of-text strings removed). No stop at end-of-text, as the reference.
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import { generate } from "./generate.ts";
import type { TransformerModel } from "./transformer.ts";

/** Options of {@link generateFast}. */
export interface GenerateFastOptions {
  /** Total length in tokens, prompt (and any prefix) included (ROME's max_out_len; default 100). */
  maxOutLen?: number;
  /** Sample among the k most likely tokens (default 5). */
  topK?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
  /** Decode with a KV cache (default: as {@link generate}); false recomputes the sequence per token. */
  cache?: boolean;
}

/**
 * ROME's `generate_fast` for one prompt (token ids, prefix included): top-k sampling up to `maxOutLen`
 * tokens in all (capped by the context), and the decoded text of the whole sequence, cleaned as ROME does.
 */
export async function generateFast(
  model: TransformerModel,
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
      cache: opts.cache,
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
