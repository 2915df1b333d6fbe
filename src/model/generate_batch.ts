/**
 * ROME's `generate_fast` for many samples at once: every sample decodes in one batch over a KV cache
 * (one forward and one readback per new token for the whole batch, instead of one per token per sample),
 * as the reference's `generate_fast` batches its `n_gen_per_prompt` copies. Prompts of different lengths
 * join the batch when it reaches their length (their prompt runs in a cache of its own, appended to the
 * batch's). Each sample keeps its own seeded sampler (`mulberry32(seed)`, one draw per
 * token, the same top-k rule as {@link pickToken}), so a sample gets the tokens {@link generateFast} gives
 * it alone with the same seed — up to float rounding of the batched products, which can only matter when
 * a draw falls within rounding of a boundary between two tokens' cumulative weights.
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import { InputError } from "../errors.ts";
import { cleanGeneratedText, generateFast } from "./generate_fast.ts";
import { mulberry32, pickToken } from "./generate.ts";
import type { TransformerModel } from "./transformer.ts";
import type { KvCache } from "../gpu/kv_cache.ts";
import { copyTensor } from "../gpu/tensor.ts";

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
 * {@link generateFast} for every sample (top-k `topK`, default 5), in the order given; all samples decode
 * as one cached batch that the longer prompts join once it reaches their length ({@link decodeMerged}). Under dynamic NTK rope scaling (where the cached and recomputed
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
  samples.forEach((s, i) => {
    if (s.ids.length === 0) throw new InputError(`sample ${i} has an empty prompt`, { field: "ids" });
    model.checkBatch([s.ids]);
  });
  // Final length of each sample: up to max_out_len in all, capped by the context.
  const end = samples.map((s) => Math.max(s.ids.length, Math.min(s.maxOutLen, nPos)));
  const seqs = samples.map((s) => [...s.ids]);
  const rands = samples.map((s) => mulberry32(s.seed));
  // Samples that get new tokens, shortest prompt first, in chunks whose merged cache fits one binding.
  const active = samples.map((_, i) => i).filter((i) => end[i] > samples[i].ids.length)
    .sort((x, y) => samples[x].ids.length - samples[y].ids.length || x - y);
  const { nKvHead, headDim } = model.config;
  const rowBytes = nKvHead * Math.min(nPos, Math.max(0, ...end)) * headDim * 4;
  const chunk = Math.max(1, Math.floor(model.gpu.bindingLimit / Math.max(1, rowBytes)));
  for (let c = 0; c < active.length; c += chunk) {
    await decodeMerged(model, active.slice(c, c + chunk), seqs, end, rands, topK);
  }
  samples.forEach((_, i) => {
    out[i] = { ids: seqs[i], text: cleanGeneratedText(tokenizer.decode(seqs[i]), tokenizer) };
  });
  return out;
}

/**
 * Decodes samples `order` (shortest prompt first) as one batch that grows: the samples of the shortest
 * prompt length start; when the batch has reached the next prompt length, those samples' prompts run
 * in a cache of their own, which is appended to the batch's cache (same length, rows concatenated), and
 * all decode together from there. Each row's arithmetic is its own (every kernel is row-independent),
 * so a sample gets the tokens it gets alone. A row with all its tokens keeps feeding the batch (its extra
 * tokens are dropped, its sampler not drawn). `seqs` grow in place.
 */
async function decodeMerged(
  model: TransformerModel,
  order: number[],
  seqs: number[][],
  end: number[],
  rands: Array<() => number>,
  topK: number,
): Promise<void> {
  if (order.length === 0) return;
  const maxLen = Math.min(model.config.nPositions, Math.max(...order.map((i) => end[i])));
  const P = (i: number) => seqs[i].length;
  let next = 0; // first sample of `order` not yet in the batch
  let rows: number[] = [];
  let lp: Float32Array[] = [];
  let cache: KvCache | undefined;
  let len = 0;
  /** Runs the prompts of every waiting sample whose prompt length is `len` and joins them to the batch. */
  const join = async () => {
    const group: number[] = [];
    while (next < order.length && P(order[next]) === len) group.push(order[next++]);
    if (group.length === 0) return;
    const batch = group.map((i) => seqs[i]);
    model.checkBatch(batch);
    const fresh = model.createKvCache(group.length, maxLen);
    let merged: KvCache | undefined;
    try {
      const r = await model.forwardCached(batch, fresh);
      if (cache) {
        merged = model.createKvCache(rows.length + group.length, maxLen);
        appendCaches(merged, [cache, fresh]);
        merged.length = len;
        cache.destroy();
        fresh.destroy();
        cache = merged;
      } else cache = fresh;
      rows = [...rows, ...group];
      lp = [...lp, ...r.logprobs];
    } catch (e) {
      if (cache !== fresh) fresh.destroy();
      merged?.destroy();
      throw e;
    }
  };
  try {
    while (true) {
      if (!cache) {
        len = P(order[next]);
        await join();
      }
      // Every row samples its token at position `len` (rows with all their tokens only feed).
      rows.forEach((i, r) => {
        if (seqs[i].length < end[i]) seqs[i].push(pickToken(lp[r], 1, topK, rands[i]));
      });
      if (rows.some((i) => end[i] > len + 1)) {
        lp = (await model.forwardCached(rows.map((i) => [seqs[i][seqs[i].length - 1]]), cache!)).logprobs;
        len++;
        await join();
      } else {
        // The batch is done; the samples still waiting (longer prompts) start a new one.
        cache!.destroy();
        cache = undefined;
        rows = [];
        if (next >= order.length) break;
      }
    }
  } finally {
    cache?.destroy();
  }
}

/** Copies the caches' rows, in order, into `dst` (every layer's keys and values; same maxLen). */
function appendCaches(dst: KvCache, parts: KvCache[]): void {
  dst.layers.forEach((layer, l) => {
    let at = 0;
    for (const c of parts) {
      const n = c.layers[l].k.numel;
      copyTensor(c.layers[l].k, layer.k, n, 0, at);
      copyTensor(c.layers[l].v, layer.v, n, 0, at);
      at += n;
    }
  });
}
