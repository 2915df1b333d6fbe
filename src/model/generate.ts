/**
 * Text generation: greedy or sampled (temperature, top-k) decoding. By default the prompt runs once and
 * each new token is one cached step (src/gpu/kv_cache.ts: every layer's keys and values stay on the GPU);
 * `cache: false` recomputes the whole sequence for every token instead, the reference path.
 */
import { InputError } from "../errors.ts";
import type { KvCache } from "../gpu/kv_cache.ts";
import type { TransformerModel } from "./transformer.ts";
import { argmax, topK as numericTopK } from "../numeric/mod.ts";

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Number of new tokens (default 20). Generation also stops at `eosId` or the context limit. */
  maxTokens?: number;
  /** 0 (default) means greedy; otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Sample only among the k most likely tokens (default: all). */
  topK?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
  /** Token that ends generation. */
  eosId?: number;
  /** Called after each new token. */
  onToken?: (id: number, step: number) => void;
  /**
   * Decode with a KV cache (default true): the prompt once, then one token per step over the cached keys
   * and values. false: a full forward of the whole sequence per token. The default is false under dynamic
   * NTK rope scaling, whose frequencies change with the length: cached keys keep the frequencies they
   * were rotated with (as in Hugging Face's cache), so only the recompute path equals a forward of the
   * sequence; `cache: true` there gives Hugging Face's cached behaviour.
   */
  cache?: boolean;
  /** Keep each step's next-token log-probabilities in {@link GenerateResult.logprobs} (default false). */
  keepLogprobs?: boolean;
}

/** Result of {@link generate}: the new ids and why generation stopped. */
export interface GenerateResult {
  /** The generated token ids (the prompt excluded). */
  ids: number[];
  /** Why generation stopped: the token budget, an end-of-sequence token, or the context length. */
  stoppedBy: "max_tokens" | "eos" | "context";
  /** Log-probability of each generated token under the distribution it was picked from. */
  tokenLogprobs: number[];
  /** With `keepLogprobs`: each step's next-token log-probabilities [V]. */
  logprobs?: Float32Array[];
  /** Whether the KV cache was used. */
  cached: boolean;
}

/** Seeded PRNG (mulberry32) for reproducible sampling. */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Indices of the k largest values, largest first (ties to the lower index): src/numeric topK. */
export const topIndices: (x: ArrayLike<number>, k: number) => number[] = numericTopK;

/** Picks the next token from log-probabilities (greedy when temperature is 0). */
export function pickToken(
  logprobs: Float32Array,
  temperature: number,
  topK: number,
  rand: () => number,
): number {
  if (temperature <= 0) {
    return argmax(logprobs);
  }
  const top = topIndices(logprobs, topK > 0 ? topK : logprobs.length);
  const k = top.length;
  const m = logprobs[top[0]];
  const w = top.map((i) => Math.exp((logprobs[i] - m) / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let u = rand() * total;
  for (let i = 0; i < k; i++) {
    u -= w[i];
    if (u <= 0) return top[i];
  }
  return top[k - 1];
}

/**
 * Continues `prompt` (token ids) with up to `maxTokens` new tokens, with a KV cache unless
 * `opts.cache` is false (see {@link GenerateOptions.cache}).
 */
export async function generate(
  model: TransformerModel,
  prompt: number[],
  opts: GenerateOptions = {},
): Promise<GenerateResult> {
  const maxTokens = opts.maxTokens ?? 20;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new InputError(`max tokens must be a non-negative integer, got ${maxTokens}`, {
      field: "max-tokens",
    });
  }
  const temperature = opts.temperature ?? 0;
  if (!(temperature >= 0)) {
    throw new InputError(`temperature must be >= 0, got ${temperature}`, { field: "temperature" });
  }
  model.checkBatch([prompt]);
  const cached = opts.cache ?? model.config.rope?.scaling?.type !== "dynamic";
  const rand = mulberry32(opts.seed ?? 0);
  const seq = [...prompt];
  const out: number[] = [];
  const tokenLogprobs: number[] = [];
  const kept: Float32Array[] = [];
  const done = (stoppedBy: GenerateResult["stoppedBy"]): GenerateResult => ({
    ids: out,
    stoppedBy,
    tokenLogprobs,
    ...(opts.keepLogprobs ? { logprobs: kept } : {}),
    cached,
  });
  const nPos = model.config.nPositions;
  let cache: KvCache | undefined;
  try {
    for (let step = 0; step < maxTokens; step++) {
      if (seq.length >= nPos) return done("context");
      let lp: Float32Array;
      if (!cached) lp = (await model.forward([seq])).logprobs[0];
      else if (!cache) {
        cache = model.createKvCache(1, Math.min(nPos, prompt.length + maxTokens));
        lp = (await model.forwardCached([prompt], cache)).logprobs[0];
      } else lp = (await model.forwardCached([[seq[seq.length - 1]]], cache)).logprobs[0];
      const id = pickToken(lp, temperature, opts.topK ?? 0, rand);
      out.push(id);
      seq.push(id);
      tokenLogprobs.push(lp[id]);
      if (opts.keepLogprobs) kept.push(lp);
      opts.onToken?.(id, step);
      if (opts.eosId !== undefined && id === opts.eosId) return done("eos");
    }
    return done("max_tokens");
  } finally {
    cache?.destroy();
  }
}
