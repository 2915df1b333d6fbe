/**
 * Second-moment statistics of MLP keys: C = E[k kᵀ] over the tokens of a text corpus, where k is the
 * input of `mlp.c_proj` (the post-GELU activations, hook site `mlp_post.L`, width nInner). This is
 * ROME's `layer_stats` (uncentered second moment, `SecondMoment`): every token of every record counts.
 *
 * kᵀk is accumulated on the GPU (matmul with transA + accumulate) and divided by the token count. The
 * result is cached as safetensors (tensor "mom2" [nInner, nInner] F32, metadata "count" = tokens) under
 * a key made of a hash of the weights the keys depend on (embeddings and blocks 0..L), the layer, and a
 * hash of the corpus bytes and sample limit.
 */
import { join } from "node:path";
import { InputError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import { matmul } from "../gpu/matmul.ts";
import { createTensor, type GpuTensor, readTensor, writeTensor } from "../gpu/tensor.ts";
import { fill } from "../gpu/reduce.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { GPT2Model } from "../model/gpt2.ts";

/** Default corpus: the fixture world's training text. */
export const DEFAULT_STATS_CORPUS = new URL("../../fixtures/world/train.jsonl", import.meta.url).pathname;

/** Second moment of one layer's keys. */
export interface LayerStats {
  layer: number;
  /** E[k kᵀ], row-major [nInner, nInner], float64. */
  mom2: Float64Array;
  /** Number of tokens averaged. */
  count: number;
  /** Cache file it was read from or written to. */
  file: string;
  /** True when read from the cache. */
  cached: boolean;
}

/** Options of {@link layerStats}. */
export interface StatsOptions {
  /** Corpus file (JSONL with "text" fields, or plain text); default {@link DEFAULT_STATS_CORPUS}. */
  corpus?: string;
  /** Maximum number of records (JSONL lines or context-sized text chunks). */
  maxSamples?: number;
  /** Cache folder (default $ENGRAM_CACHE/stats, or ~/.cache/engram/stats). */
  cacheDir?: string;
  /** Prepend and append the end-of-text token to JSONL records, as training does (default true). */
  eosDelimit?: boolean;
  /** Tokens per forward pass (default 4096). */
  batchTokens?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The default cache folder for statistics. */
export function defaultStatsDir(): string {
  const env = Deno.env.get("ENGRAM_CACHE");
  if (env) return join(env, "stats");
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME") ?? ".";
  return join(xdg ?? join(home, ".cache"), "engram", "stats");
}

async function sha256Hex(parts: Uint8Array[]): Promise<string> {
  let len = 0;
  for (const p of parts) len += p.length;
  const all = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Hash of the weights that keys at `layer` depend on (embeddings and blocks 0..layer) plus the config. */
export function modelKeyHash(model: GPT2Model, layer: number): Promise<string> {
  const names = model.weightNames().filter((n) => {
    const m = /^h\.(\d+)\./.exec(n);
    return m ? Number(m[1]) <= layer : n === "wte.weight" || n === "wpe.weight";
  }).sort();
  const parts: Uint8Array[] = [new TextEncoder().encode(JSON.stringify(model.config) + names.join(","))];
  for (const n of names) {
    const d = model.weights.get(n)!.data;
    parts.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return sha256Hex(parts);
}

/** Tokenized corpus records: JSONL "text" lines ([eos] text [eos]) or context-sized chunks of plain text. */
export async function readStatsCorpus(
  file: string,
  tokenizer: Tokenizer,
  nPositions: number,
  maxSamples: number,
  eosDelimit = true,
): Promise<{ seqs: number[][]; hash: string }> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (e) {
    throw new InputError(`cannot read statistics corpus: ${(e as Error).message}`, { file });
  }
  const hash = await sha256Hex([
    bytes,
    new TextEncoder().encode(`|${maxSamples}|${eosDelimit}|${nPositions}`),
  ]);
  const text = new TextDecoder().decode(bytes);
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const eos = tokenizer.eosId;
  const seqs: number[][] = [];
  const isJsonl = lines.length > 0 && lines[0].trim().startsWith("{");
  if (isJsonl) {
    for (let i = 0; i < lines.length && seqs.length < maxSamples; i++) {
      let rec: unknown;
      try {
        rec = JSON.parse(lines[i]);
      } catch {
        throw new InputError(`line ${i + 1} is not JSON (a .jsonl corpus needs {"text": ...} per line)`, {
          file,
          field: "text",
        });
      }
      const t = (rec as { text?: unknown })?.text;
      if (typeof t !== "string") {
        throw new InputError(`line ${i + 1} has no string "text" field`, { file, field: "text" });
      }
      let ids = tokenizer.encode(t);
      if (eosDelimit && eos !== undefined) ids = [eos, ...ids, eos];
      if (ids.length === 0) continue;
      seqs.push(ids.slice(0, nPositions));
    }
  } else {
    const ids = tokenizer.encode(text);
    for (let i = 0; i < ids.length && seqs.length < maxSamples; i += nPositions) {
      seqs.push(ids.slice(i, i + nPositions));
    }
  }
  if (seqs.length === 0) throw new InputError("statistics corpus has no text", { file });
  return { seqs, hash };
}

/**
 * C = E[k kᵀ] of `mlp_post.L` for each layer in `layers`, from the cache when present, otherwise
 * computed in one pass over the corpus (all layers at once) and cached.
 */
export async function layerStats(
  model: GPT2Model,
  tokenizer: Tokenizer,
  layers: number[],
  opts: StatsOptions = {},
): Promise<Map<number, LayerStats>> {
  const corpus = opts.corpus ?? DEFAULT_STATS_CORPUS;
  const maxSamples = opts.maxSamples ?? 100000;
  const dir = opts.cacheDir ?? defaultStatsDir();
  const I = model.config.nInner;
  const { seqs, hash: corpusHash } = await readStatsCorpus(
    corpus,
    tokenizer,
    model.config.nPositions,
    maxSamples,
    opts.eosDelimit ?? true,
  );
  const out = new Map<number, LayerStats>();
  const todo: Array<{ layer: number; file: string }> = [];
  for (const layer of layers) {
    const mh = await modelKeyHash(model, layer);
    const file = join(dir, `mom2_${mh.slice(0, 16)}_L${layer}_${corpusHash.slice(0, 16)}.safetensors`);
    try {
      const st = await readSafetensors(file);
      const t = st.tensors.get("mom2");
      const count = Number(st.metadata.count);
      if (t && t.shape.length === 2 && t.shape[0] === I && t.shape[1] === I && count > 0) {
        out.set(layer, { layer, mom2: Float64Array.from(t.data), count, file, cached: true });
        continue;
      }
    } catch {
      // Not cached (or unreadable): recompute.
    }
    todo.push({ layer, file });
  }
  if (todo.length === 0) return out;

  const gpu: Gpu = model.gpu;
  const acc = new Map<number, GpuTensor>();
  for (const { layer } of todo) {
    const t = createTensor(gpu, [I, I], { name: `mom2.${layer}` });
    await fill(gpu, t, 0);
    acc.set(layer, t);
  }
  const byLen = new Map<number, number[][]>();
  for (const s of seqs) {
    const list = byLen.get(s.length) ?? [];
    list.push(s);
    byLen.set(s.length, list);
  }
  const batchTokens = opts.batchTokens ?? 4096;
  const sites = todo.map(({ layer }) => `mlp_post.${layer}`);
  let done = 0, count = 0;
  let keys: GpuTensor | undefined;
  try {
    for (const [T, list] of byLen) {
      const bs = Math.max(1, Math.floor(batchTokens / T));
      for (let i = 0; i < list.length; i += bs) {
        const chunk = list.slice(i, i + bs);
        const rows = chunk.length * T;
        const { captured } = await model.forward(chunk, { hooks: { capture: sites } });
        if (!keys || keys.numel < rows * I) {
          keys?.destroy();
          keys = createTensor(gpu, [Math.max(rows, batchTokens), I], { name: "keys" });
        }
        for (const { layer } of todo) {
          writeTensor(keys, captured.get(`mlp_post.${layer}`)!);
          await matmul(gpu, keys, keys, acc.get(layer)!, {
            M: I,
            N: I,
            K: rows,
            transA: true,
            accumulate: true,
          });
        }
        count += rows;
        done += chunk.length;
        opts.onProgress?.(done, seqs.length);
      }
    }
    await Deno.mkdir(dir, { recursive: true });
    for (const { layer, file } of todo) {
      const sum = await readTensor(acc.get(layer)!);
      const mom2 = new Float64Array(I * I);
      // Symmetrise (the GPU sum is symmetric up to rounding) and divide by the token count.
      for (let a = 0; a < I; a++) {
        for (let b = 0; b < I; b++) mom2[a * I + b] = 0.5 * (sum[a * I + b] + sum[b * I + a]) / count;
      }
      await writeSafetensors(file, { mom2: { shape: [I, I], data: Float32Array.from(mom2) } }, {
        count: String(count),
        layer: String(layer),
        corpus,
        corpus_sha256: corpusHash,
        samples: String(seqs.length),
      });
      // Use exactly what the cache holds, so a cached run gives the same edit.
      out.set(layer, { layer, mom2: Float64Array.from(Float32Array.from(mom2)), count, file, cached: false });
    }
  } finally {
    keys?.destroy();
    for (const t of acc.values()) t.destroy();
  }
  return out;
}
