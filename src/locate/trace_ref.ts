/**
 * Float64 CPU twin of causal tracing ({@link causalTrace}): the same definition, computed one corrupted
 * sequence at a time with `gpt2ForwardRef` and its patch hooks, from the same noise values. Slow; for
 * checking the batched GPU trace on tiny models.
 */
import { InputError } from "../errors.ts";
import type { ModelConfig, WeightMap } from "../model/config.ts";
import { gpt2ForwardRef, type RefPatchFn } from "../reference/gpt2.ts";
import { kindSite, type TargetProb, type TraceKind, windowLayers } from "./trace.ts";

/** Result of {@link causalTraceRef}: restored probabilities per kind, [token][layer]. */
export interface TraceRefResult {
  pClean: number;
  pCorrupt: number;
  scores: Record<string, number[][]>;
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
  opts: { kinds: TraceKind[]; window: number; targetProb?: TargetProb },
): TraceRefResult {
  const { nEmbd: C, nLayer: L, vocabSize: V } = config;
  const [a, b] = subjectRange;
  const n = b - a;
  const samples = noise.length / (n * C);
  if (!Number.isInteger(samples) || samples < 1) {
    throw new InputError("noise length does not match the subject", { field: "noise" });
  }
  const useSeq = opts.targetProb === "sequence" && answer.length > 1;
  const seq = useSeq ? [...ids, ...answer.slice(0, -1)] : ids;
  const T0 = ids.length, k = useSeq ? answer.length : 1;
  const prob = (logits: Float64Array): number => {
    let s = 0;
    for (let j = 0; j < k; j++) s += logSoftmaxAt(logits, T0 - 1 + j, V, answer[j]);
    return Math.exp(s);
  };
  const sites = new Set<string>();
  for (const kind of opts.kinds) for (let l = 0; l < L; l++) sites.add(kindSite(kind, l));
  const clean = gpt2ForwardRef(config, weights, seq, { hooks: { capture: sites } });
  const pClean = prob(clean.logits);
  const corruptedRun = (s: number, restore: string[], token: number): number => {
    const patch: Record<string, RefPatchFn> = {
      embed: (v) => {
        for (let j = 0; j < n; j++) {
          for (let c = 0; c < C; c++) v[(a + j) * C + c] += noise[(s * n + j) * C + c];
        }
      },
    };
    for (const site of restore) {
      patch[site] = (v, _T, width) => {
        const src = clean.cache[site];
        for (let c = 0; c < width; c++) v[token * width + c] = src[token * width + c];
      };
    }
    return prob(gpt2ForwardRef(config, weights, seq, { hooks: { patch } }).logits);
  };
  let pCorrupt = 0;
  for (let s = 0; s < samples; s++) pCorrupt += corruptedRun(s, [], 0) / samples;
  const scores: Record<string, number[][]> = {};
  for (const kind of opts.kinds) {
    scores[kind] = Array.from({ length: T0 }, (_, t) =>
      Array.from({ length: L }, (_, l) => {
        const restore = windowLayers(kind, l, opts.window, L).map((x) => kindSite(kind, x));
        let p = 0;
        for (let s = 0; s < samples; s++) p += corruptedRun(s, restore, t) / samples;
        return p;
      }));
  }
  return { pClean, pCorrupt, scores };
}
