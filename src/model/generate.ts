/**
 * Text generation: greedy or sampled (temperature, top-k) decoding, one full forward per new token.
 * Without a KV cache this costs O(T^2) forwards' work, fine for the small models engram studies.
 */
import { InputError } from "../errors.ts";
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
}

/** Result of {@link generate}: the new ids and why generation stopped. */
export interface GenerateResult {
  /** The generated token ids (the prompt excluded). */
  ids: number[];
  /** Why generation stopped: the token budget, an end-of-sequence token, or the context length. */
  stoppedBy: "max_tokens" | "eos" | "context";
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

/** Continues `prompt` (token ids) with up to `maxTokens` new tokens. */
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
  const rand = mulberry32(opts.seed ?? 0);
  const seq = [...prompt];
  const out: number[] = [];
  for (let step = 0; step < maxTokens; step++) {
    if (seq.length >= model.config.nPositions) return { ids: out, stoppedBy: "context" };
    const { logprobs } = await model.forward([seq]);
    const id = pickToken(logprobs[0], temperature, opts.topK ?? 0, rand);
    out.push(id);
    seq.push(id);
    opts.onToken?.(id, step);
    if (opts.eosId !== undefined && id === opts.eosId) return { ids: out, stoppedBy: "eos" };
  }
  return { ids: out, stoppedBy: "max_tokens" };
}
