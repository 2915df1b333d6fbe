/**
 * Float64 CPU twin of causal tracing ({@link causalTrace}): the same definition, computed one corrupted
 * sequence at a time with `gpt2ForwardRef` and its patch hooks, from the same noise values. Slow; for
 * checking the batched GPU trace on tiny models. It implements the corruptions and metrics on its own:
 * noise added to the subject's embeddings or replacing its token embeddings (wpe read here), a corrupted
 * prompt run as it is (token replacement), and the metrics from the float64 logits (the logit difference
 * from raw logits, not log-probabilities).
 */
import { InputError } from "../errors.ts";
import type { ModelConfig, WeightMap } from "../model/config.ts";
import { gpt2ForwardRef, type RefPatchFn } from "../reference/gpt2.ts";
import { kindSite, type TargetProb, type TraceKind, windowLayers } from "./trace.ts";

/** Result of {@link causalTraceRef}: restored metric values per kind, [token][layer]. */
export interface TraceRefResult {
  /** Answer probabilities, clean and corrupted. */
  pClean: number;
  /** Corrupted answer probability (mean over the samples). */
  pCorrupt: number;
  /** The metric, clean and corrupted. */
  metricClean: number;
  /** Corrupted metric (mean over the samples). */
  metricCorrupt: number;
  /** Restored metric per kind name, [token][layer] (mean over the samples). */
  scores: Record<string, number[][]>;
}

/** Options of {@link causalTraceRef}. */
export interface TraceRefOptions {
  /** Kinds to trace. */
  kinds: TraceKind[];
  /** Window of restored MLP / attention layers (clipped to the model). */
  window: number;
  /** Score the answer's first token (default) or the product over its tokens ("sequence"). */
  targetProb?: TargetProb;
  /** Noise replaces the subject's token embeddings (positions kept) instead of being added. */
  replace?: boolean;
  /** A corrupted prompt (same length) run instead of the noise; `noise` is then ignored (one sample). */
  corruptIds?: number[];
  /** "prob" (default), "logprob" or "logit-diff" (with `counterfactual`). */
  metric?: "prob" | "logprob" | "logit-diff";
  /** Token id of the counterfactual answer, for "logit-diff". */
  counterfactual?: number;
}

function logSoftmaxAt(logits: Float64Array, row: number, V: number, id: number): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, logits[row * V + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(logits[row * V + v] - m);
  return logits[row * V + id] - m - Math.log(s);
}

/**
 * Reference trace of prompt `ids` with subject tokens `subjectRange`, scoring `answer` ("first": its
 * first token after the prompt; "sequence": the product over its tokens, the input extended by all but
 * the last). `noise` is [samples][b - a][C] as from `subjectNoise`.
 */
export function causalTraceRef(
  config: ModelConfig,
  weights: WeightMap,
  ids: number[],
  subjectRange: [number, number],
  answer: number[],
  noise: Float64Array,
  opts: TraceRefOptions,
): TraceRefResult {
  const { nEmbd: C, nLayer: L, vocabSize: V } = config;
  const [a, b] = subjectRange;
  const n = b - a;
  const samples = opts.corruptIds ? 1 : noise.length / (n * C);
  if (!Number.isInteger(samples) || samples < 1) {
    throw new InputError("noise length does not match the subject", { field: "noise" });
  }
  if (opts.corruptIds && opts.corruptIds.length !== ids.length) {
    throw new InputError("the corrupted prompt must be as long as the prompt", { field: "corruptIds" });
  }
  const useSeq = opts.targetProb === "sequence" && answer.length > 1;
  const seq = useSeq ? [...ids, ...answer.slice(0, -1)] : ids;
  const corruptSeq = opts.corruptIds ? [...opts.corruptIds, ...seq.slice(ids.length)] : seq;
  const T0 = ids.length, k = useSeq ? answer.length : 1;
  const logp = (logits: Float64Array): number => {
    let s = 0;
    for (let j = 0; j < k; j++) s += logSoftmaxAt(logits, T0 - 1 + j, V, answer[j]);
    return s;
  };
  const metric = opts.metric ?? "prob";
  const score = (logits: Float64Array): { p: number; m: number } => {
    const lp = logp(logits);
    if (metric === "prob") return { p: Math.exp(lp), m: Math.exp(lp) };
    if (metric === "logprob") return { p: Math.exp(lp), m: lp };
    const row = (T0 - 1) * V;
    return { p: Math.exp(lp), m: logits[row + answer[0]] - logits[row + opts.counterfactual!] };
  };
  const wpe = weights.get("wpe.weight")!.data;
  const sites = new Set<string>();
  for (const kind of opts.kinds) for (let l = 0; l < L; l++) sites.add(kindSite(kind, l));
  const clean = gpt2ForwardRef(config, weights, seq, { hooks: { capture: sites } });
  const cleanScore = score(clean.logits);
  const corruptedRun = (s: number, restore: string[], token: number): { p: number; m: number } => {
    const patch: Record<string, RefPatchFn> = {};
    if (!opts.corruptIds) {
      patch.embed = (v) => {
        for (let j = 0; j < n; j++) {
          for (let c = 0; c < C; c++) {
            const x = noise[(s * n + j) * C + c], t = a + j;
            if (opts.replace) v[t * C + c] = wpe[t * C + c] + x;
            else v[t * C + c] += x;
          }
        }
      };
    }
    for (const site of restore) {
      patch[site] = (v, _T, width) => {
        const src = clean.cache[site];
        for (let c = 0; c < width; c++) v[token * width + c] = src[token * width + c];
      };
    }
    return score(gpt2ForwardRef(config, weights, corruptSeq, { hooks: { patch } }).logits);
  };
  let pCorrupt = 0, metricCorrupt = 0;
  for (let s = 0; s < samples; s++) {
    const r = corruptedRun(s, [], 0);
    pCorrupt += r.p / samples;
    metricCorrupt += r.m / samples;
  }
  const scores: Record<string, number[][]> = {};
  for (const kind of opts.kinds) {
    scores[kind] = Array.from({ length: T0 }, (_, t) =>
      Array.from({ length: L }, (_, l) => {
        const restore = windowLayers(kind, l, opts.window, L).map((x) => kindSite(kind, x));
        let p = 0;
        for (let s = 0; s < samples; s++) p += corruptedRun(s, restore, t).m / samples;
        return p;
      }));
  }
  return { pClean: cleanScore.p, pCorrupt, metricClean: cleanScore.m, metricCorrupt, scores };
}
