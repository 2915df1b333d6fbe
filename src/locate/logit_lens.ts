/**
 * The logit lens (nostalgebraist 2020): read every layer's residual stream as if it were the last, by
 * applying the model's final norm and unembedding to it. For each layer L (and the embedding, the row
 * "embed") and each position t, the top-k next tokens and their probabilities, and optionally the rank
 * and probability of one target token. At the last layer the lens is the model's own output.
 */
import { InputError } from "../errors.ts";
import { matmul } from "../gpu/matmul.ts";
import { logSoftmax } from "../gpu/softmax.ts";
import { createTensor, readTensor, writeTensor } from "../gpu/tensor.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { Hooks } from "../model/hooks.ts";
import { normForward, normStatsWidth } from "../model/layers.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { topK as topIndices } from "../numeric/mod.ts";

/** Options of {@link logitLens}. */
export interface LogitLensOptions {
  /** Tokens reported per cell (default 5). */
  topK?: number;
  /** A target token id: its rank (1 = most likely) and probability in every cell. */
  target?: number;
  /** Hooks of the forward pass read by the lens (e.g. a patch or an edit); its capture list is extended. */
  hooks?: Hooks;
}

/** Rank and probability of the target token, [layer][position]. */
export interface LensTarget {
  /** The target's id. */
  id: number;
  /** Its text (tokenizer.decode of the one id). */
  token: string;
  /** 1 + the number of tokens more likely than the target, [layer][position]. */
  rank: number[][];
  /** The target's probability, [layer][position]. */
  prob: number[][];
}

/**
 * What {@link logitLens} returns (plain arrays: `JSON.stringify` writes it whole). Rows are layers:
 * `layers[0]` is "embed" (the embedding, before any block), then "0" .. String(nLayer − 1)
 * (`resid_post.L`); `shape` = [layers, positions, topK].
 */
export interface LogitLensResult {
  /** The input ids [T]. */
  ids: number[];
  /** Each input token's text [T]. */
  tokens: string[];
  /** Row labels: "embed", "0", .., String(nLayer − 1). */
  layers: string[];
  /** The hook site each row reads: "embed", "resid_post.0", ... */
  sites: string[];
  /** [layers, positions, topK]. */
  shape: [number, number, number];
  /** Top-k token ids, [layer][position][k], most likely first. */
  topIds: number[][][];
  /** Their texts, as topIds. */
  topTokens: string[][][];
  /** Their probabilities, as topIds. */
  topProbs: number[][][];
  /** With `target`: its rank and probability in every cell. */
  target?: LensTarget;
}

/**
 * The logit lens of `ids` (one sequence): one forward pass capturing the embedding and every
 * `resid_post.L`, then on the GPU the final norm (`ln_f`), the unembedding (the head, with its bias) and
 * a log-softmax of each row. Probabilities are float32 softmaxes. Throws {@link InputError} for a bad
 * `topK` or target.
 */
export async function logitLens(
  model: TransformerModel,
  tokenizer: Pick<Tokenizer, "decode">,
  ids: number[],
  opts: LogitLensOptions = {},
): Promise<LogitLensResult> {
  const { nLayer: L, nEmbd: C, vocabSize: V } = model.config;
  const k = opts.topK ?? 5;
  if (!Number.isInteger(k) || k < 1 || k > V) {
    throw new InputError(`topK must be an integer in 1..${V}, got ${k}`, { field: "topK" });
  }
  const target = opts.target;
  if (target !== undefined && !(Number.isInteger(target) && target >= 0 && target < V)) {
    throw new InputError(`target token id ${target} out of range [0, ${V})`, { field: "target" });
  }
  const sites = ["embed", ...Array.from({ length: L }, (_, l) => `resid_post.${l}`)];
  const hooks = opts.hooks ?? {};
  const { captured } = await model.forward([ids], {
    hooks: { ...hooks, capture: [...new Set([...(hooks.capture ?? []), ...sites])] },
  });
  const T = ids.length;
  const gpu = model.gpu;
  const x = createTensor(gpu, [T, C], { name: "lens.resid" });
  const lnf = createTensor(gpu, [T, C], { name: "lens.ln_f" });
  const stats = createTensor(gpu, [T, normStatsWidth(model.config.norm)], { name: "lens.ln_f.stats" });
  const logits = createTensor(gpu, [T, V], { name: "lens.logits" });
  const lp = createTensor(gpu, [T, V], { name: "lens.logprobs" });
  const norm = model.finalNorm(), head = model.lmHead(), bias = model.headBias();
  const res: LogitLensResult = {
    ids: [...ids],
    tokens: ids.map((id) => tokenizer.decode([id])),
    layers: ["embed", ...Array.from({ length: L }, (_, l) => String(l))],
    sites,
    shape: [L + 1, T, k],
    topIds: [],
    topTokens: [],
    topProbs: [],
  };
  const tgt: LensTarget | undefined = target === undefined
    ? undefined
    : { id: target, token: tokenizer.decode([target]), rank: [], prob: [] };
  const names = new Map<number, string>();
  const name = (id: number) => names.get(id) ?? (names.set(id, tokenizer.decode([id])), names.get(id)!);
  try {
    for (const s of sites) {
      writeTensor(x, captured.get(s)!.data);
      await normForward(gpu, norm, x, lnf, stats, T, C);
      await matmul(gpu, lnf, head, logits, { M: T, N: V, K: C, transB: true, bias });
      await logSoftmax(gpu, logits, lp, { rows: T, cols: V });
      const all = await readTensor(lp);
      const ti: number[][] = [], tt: string[][] = [], tp: number[][] = [];
      const rk: number[] = [], pr: number[] = [];
      for (let t = 0; t < T; t++) {
        const row = all.subarray(t * V, (t + 1) * V);
        const top = topIndices(row, k);
        ti.push(top);
        tt.push(top.map(name));
        tp.push(top.map((i) => Math.exp(row[i])));
        if (tgt) {
          const v = row[target!];
          let above = 0;
          for (let i = 0; i < V; i++) if (row[i] > v) above++;
          rk.push(above + 1);
          pr.push(Math.exp(v));
        }
      }
      res.topIds.push(ti);
      res.topTokens.push(tt);
      res.topProbs.push(tp);
      if (tgt) {
        tgt.rank.push(rk);
        tgt.prob.push(pr);
      }
    }
  } finally {
    for (const t of [x, lnf, stats, logits, lp]) t.destroy();
  }
  if (tgt) res.target = tgt;
  return res;
}
