/**
 * ROME's `generate_fast` for many samples at once: the samples whose prompts have the same token count
 * decode together as one batch over a KV cache (one forward and one readback per new token for the whole
 * batch, instead of one per token per sample), as the reference's `generate_fast` batches its
 * `n_gen_per_prompt` copies. Each sample keeps its own seeded sampler (`mulberry32(seed)`, one draw per
 * token, the same top-k rule as {@link pickToken}), so a sample gets the tokens {@link generateFast} gives
 * it alone with the same seed — up to float rounding of the batched products, which can only matter when
 * a draw falls within rounding of a boundary between two tokens' cumulative weights.
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import { InputError } from "../errors.ts";
import { cleanGeneratedText, generateFast } from "./generate_fast.ts";
import { mulberry32, pickToken } from "./generate.ts";
import type { TransformerModel } from "./transformer.ts";

/** One sample of {@link generateFastBatch}. */
export interface BatchSample {
  /** Prompt token ids (prefix included). */
  ids: number[];
  /** Total length in tokens, prompt included (ROME's max_out_len). */
  maxOutLen: number;
  /** Seed of this sample's sampler. */
  seed: number;
}

/**
 * {@link generateFast} for every sample (top-k `topK`, default 5), in the order given; samples with equal
 * prompt lengths share one cached batch. Under dynamic NTK rope scaling (where the cached and recomputed
 * paths differ) every sample runs alone through {@link generateFast}.
 */
export async function generateFastBatch(
  model: TransformerModel,
  tokenizer: Tokenizer,
  samples: BatchSample[],
  opts: { topK?: number } = {},
): Promise<Array<{ ids: number[]; text: string }>> {
  const topK = opts.topK ?? 5;
  const nPos = model.config.nPositions;
  const out: Array<{ ids: number[]; text: string }> = new Array(samples.length);
  if (model.config.rope?.scaling?.type === "dynamic") {
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i];
      out[i] = await generateFast(model, tokenizer, s.ids, { maxOutLen: s.maxOutLen, seed: s.seed, topK });
    }
    return out;
  }
  const groups = new Map<number, number[]>();
  samples.forEach((s, i) => {
    if (s.ids.length === 0) throw new InputError(`sample ${i} has an empty prompt`, { field: "ids" });
    const g = groups.get(s.ids.length) ?? [];
    g.push(i);
    groups.set(s.ids.length, g);
  });
  for (const [P, members] of groups) {
    model.checkBatch(members.map((i) => samples[i].ids));
    // New tokens per sample: up to max_out_len in all, capped by the context.
    const want = members.map((i) => Math.max(0, Math.min(samples[i].maxOutLen, nPos) - P));
    const steps = Math.max(...want);
    const seqs = members.map((i) => [...samples[i].ids]);
    if (steps > 0) {
      const rands = members.map((i) => mulberry32(samples[i].seed));
      const cache = model.createKvCache(members.length, Math.min(nPos, P + steps));
      try {
        let feed = seqs.map((s) => [...s]);
        for (let step = 0; step < steps; step++) {
          const { logprobs } = await model.forwardCached(feed, cache);
          // A sample that has all its tokens only feeds the batch (its draws stop, its tokens are dropped).
          feed = seqs.map((s, b) => {
            if (step < want[b]) s.push(pickToken(logprobs[b], 1, topK, rands[b]));
            return [s[s.length - 1]];
          });
        }
      } finally {
        cache.destroy();
      }
    }
    members.forEach((
      i,
      b,
    ) => (out[i] = { ids: seqs[b], text: cleanGeneratedText(tokenizer.decode(seqs[b]), tokenizer) }));
  }
  return out;
}
