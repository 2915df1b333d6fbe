/**
 * Causal tracing (Meng et al. 2022, ROME `experiments/causal_trace.py`; spec in
 * shared/reference/methods.md §2(a)).
 *
 * The subject tokens' input embeddings are corrupted with Gaussian noise (`samples` noise draws, the
 * same draws for every restoration: by default numpy's `RandomState(seed).randn`, ROME's very values);
 * then for every (token t, layer l) the clean value of one site is
 * restored at token t in the corrupted runs and the probability of the answer, averaged over the noise
 * samples, is measured:
 * - `hidden`: the residual stream leaving block l (`resid_post.l`, the output of `transformer.h.l`);
 * - `mlp` / `attn`: the MLP / attention outputs (`mlp_out.L` / `attn_out.L`) of every layer L in the
 *   window [max(0, l - floor(w/2)), min(nLayer, l + ceil(w/2))) centred on l (clipped at the ends).
 * Reported: p_clean (clean run), p_corrupt (corrupted, nothing restored), the restored probabilities,
 * the indirect effects (restored - p_corrupt) and the total effect (p_clean - p_corrupt).
 *
 * Batching: every restoration of every kind is a (sequence, patch set) pair; all samples x tokens x
 * layers x kinds corrupted sequences are stacked into as few forward passes as `maxRows` token rows
 * allow, each batch row with its own noise sample and its own restored rows (patches are per row).
 * `batched: false` runs one forward per restoration (the samples in one batch), the way ROME does.
 * Both skip restorations that provably cannot change the output (states of tokens before the subject;
 * the last layer's hidden state at tokens before the last): those cells are exactly p_corrupt.
 *
 * Corruptions (`corruption`, ./corruption.ts): ROME's noise rules (gaussian by default, uniform, a fitted
 * multivariate Gaussian, Student t; added or replacing), or symmetric token replacement (Zhang & Nanda
 * 2024: the subject's tokens replaced by another subject's of the same length; one corrupted run, the
 * restorations line up position by position).
 * Metrics (`metric`, the names of ./atp.ts): "prob" (default, ROME's: p of the answer), "logprob" (its
 * log-probability) or "logit-diff" (logit of the answer's first token minus the counterfactual's, at the
 * last prompt position). Each corrupted run is scored by the metric, then the runs' scores are averaged
 * over the noise samples (for "prob" that is ROME's mean of the softmax); effects and the total effect
 * are in the metric's units, `pClean` / `pCorrupt` stay probabilities.
 */
import { InputError, ShapeError } from "../errors.ts";
import { matmul } from "../gpu/matmul.ts";
import { logSoftmax } from "../gpu/softmax.ts";
import { createTensor, readTensor } from "../gpu/tensor.ts";
import type { TransformerModel } from "../model/transformer.ts";
import type { PatchSpec } from "../model/hooks.ts";
import { NOISE_RNGS, type NoiseRng } from "./patching.ts";
import { ATP_METRICS, metricValue } from "./atp.ts";
import {
  checkNoiseSpec,
  checkReplacementIds,
  corruptionNoise,
  type EmbeddingGaussian,
  type NoiseDist,
  noisePatch,
} from "./corruption.ts";

/** Which state a trace restores. */
export type TraceKind = "hidden" | "mlp" | "attn";

/** All trace kinds, in ROME's plotting order. */
export const TRACE_KINDS: readonly TraceKind[] = ["hidden", "mlp", "attn"];

/** How the answer's probability is scored. */
export type TargetProb = "first" | "sequence";

/** Hook site restored for `kind` at `layer`: resid_post.l, mlp_out.l or attn_out.l. */
export function kindSite(kind: TraceKind, layer: number): string {
  return `${kind === "hidden" ? "resid_post" : kind === "mlp" ? "mlp_out" : "attn_out"}.${layer}`;
}

/**
 * Layers restored together for centre `layer`: [layer] for hidden states; for mlp/attn the window
 * [max(0, layer - floor(w/2)), min(nLayer, layer + ceil(w/2))) — ROME's `trace_important_window`.
 */
export function windowLayers(kind: TraceKind, layer: number, window: number, nLayer: number): number[] {
  if (kind === "hidden") return [layer];
  const lo = Math.max(0, layer - Math.floor(window / 2));
  const hi = Math.min(nLayer, layer + Math.ceil(window / 2));
  return Array.from({ length: hi - lo }, (_, i) => lo + i);
}

/** The metric of a trace: the names of AtP's metrics (./atp.ts), default first. */
export type TraceMetric = (typeof ATP_METRICS)[number];

/** The trace metrics, default first (one list with `engram atp`'s). */
export const TRACE_METRICS: readonly TraceMetric[] = ATP_METRICS;

/** The corruption of a trace (see ./corruption.ts). */
export type TraceCorruption =
  | {
    kind: "noise";
    /** Distribution (default "gaussian", ROME's `s<k>`). */
    dist?: NoiseDist;
    /** Degrees of freedom of "t" (default 3). */
    df?: number;
    /** The fitted Gaussian of "mvn" and "t" (`embeddingGaussian`). */
    fit?: EmbeddingGaussian;
    /** Set the subject's token embeddings to the noise instead of adding it (ROME's `--replace`). */
    replace?: boolean;
  }
  | {
    kind: "tokens";
    /** The replacement subject's token ids, as many as the subject has (`subjectReplacement`). */
    ids: number[];
  };

/** The names of the corruption kinds, default first. */
export const CORRUPTION_KINDS = ["noise", "tokens"] as const;

/** Options of {@link causalTrace}. */
export interface TraceOptions {
  /** Kinds to trace (default ["hidden"]); all of them share the clean and corrupted runs. */
  kinds?: TraceKind[];
  /** Noise samples (default 10). */
  samples?: number;
  /**
   * Noise scale: the absolute std of gaussian noise (ROME's "s3" is 3 x the embedding std: see
   * `embeddingStd`), the half-width of uniform noise, a multiplier of mvn / t draws (1: ROME's). Needed
   * by noise corruptions only.
   */
  noiseStd?: number;
  /** Corruption (default ROME's: `{ kind: "noise", dist: "gaussian" }`). */
  corruption?: TraceCorruption;
  /** Metric of the scores and effects (default "prob", ROME's). */
  metric?: TraceMetric;
  /** Token id of the counterfactual answer, for metric "logit-diff". */
  counterfactual?: number;
  /** Window of restored MLP/attn layers (default 10; clipped to the model's layers). */
  window?: number;
  /** Noise seed (default 1, ROME's `RandomState(1)`), an integer in [0, 2^32). */
  seed?: number;
  /** Noise generator (default "numpy": ROME's exact noise values; see `subjectNoise`). */
  noiseRng?: NoiseRng;
  /** Answer token ids (the target's continuation); default: the model's own top-1 prediction. */
  answer?: number[];
  /** Score the answer's first token (default) or the product over its tokens. */
  targetProb?: TargetProb;
  /** Stack restorations into large forward passes (default true) or run one per restoration. */
  batched?: boolean;
  /** Most token rows (batch x tokens) per forward pass (default 4096). */
  maxRows?: number;
  /** Called after each forward pass with (sequences done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** The trace of one kind. */
export interface KindTrace {
  /** Restored state. */
  kind: TraceKind;
  /** Restored metric (default: the answer's probability), [token][layer]. */
  scores: number[][];
  /** Indirect effects scores - metricCorrupt, [token][layer]. */
  effects: number[][];
  /** Effective window (1 for hidden). */
  window: number;
}

/** What {@link causalTrace} returns. */
export interface TraceResult {
  /** Input ids (the prompt; in sequence mode the answer's tokens but the last are appended after it). */
  ids: number[];
  /** Number of prompt tokens (rows of the grids). */
  promptLength: number;
  /** Subject tokens [a, b) in `ids`. */
  subjectRange: [number, number];
  /** The model's layer count (columns of the grids). */
  nLayer: number;
  /** Answer token ids scored. */
  answer: number[];
  /** The clean run's top-1 next token. */
  predicted: number;
  /** Whether the clean top-1 prediction equals the answer's first token. */
  known: boolean;
  /** Probability of the answer in the clean and the corrupted run (whatever the metric). */
  pClean: number;
  /** Probability of the answer in the corrupted run, nothing restored (mean over the samples). */
  pCorrupt: number;
  /** The metric's values in the clean and the corrupted run (equal to pClean / pCorrupt for "prob"). */
  metricClean: number;
  /** The metric in the corrupted run, nothing restored (mean over the samples). */
  metricCorrupt: number;
  /** metricClean - metricCorrupt. */
  totalEffect: number;
  /** The metric of `scores`, `effects` and `totalEffect`. */
  metric: TraceMetric;
  /** Counterfactual token id (metric "logit-diff"). */
  counterfactual?: number;
  /** The corruption used (noise: its distribution, df, replace; tokens: the replacement ids). */
  corruption:
    | { kind: "noise"; dist: NoiseDist; df?: number; replace: boolean }
    | { kind: "tokens"; ids: number[] };
  /** Noise scale (0 for token replacement). */
  noiseStd: number;
  /** Noise samples (1 for token replacement). */
  samples: number;
  /** Noise seed. */
  seed: number;
  /** Noise generator. */
  noiseRng: NoiseRng;
  /** How the answer was scored. */
  targetProb: TargetProb;
  /** One trace per requested kind, in the requested order. */
  traces: KindTrace[];
  /** Work done: forward passes, corrupted sequences run, seconds. */
  stats: { forwards: number; sequences: number; seconds: number };
}

interface Job {
  kind?: TraceKind;
  token: number;
  layer: number;
  restore: string[];
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/**
 * Log-probabilities of `ids[j]` at rows `rows[j]` of a captured `ln_f` [R * C], computed on the GPU with
 * the model's output head (for multi-token answers), in chunks.
 */
async function headLogprobs(
  model: TransformerModel,
  lnf: Float32Array,
  rows: number[],
  ids: number[],
): Promise<Float64Array> {
  const { nEmbd: C, vocabSize: V } = model.config;
  const out = new Float64Array(rows.length);
  const chunk = Math.max(1, Math.floor((1 << 24) / V));
  for (let i0 = 0; i0 < rows.length; i0 += chunk) {
    const n = Math.min(chunk, rows.length - i0);
    const x = new Float32Array(n * C);
    for (let i = 0; i < n; i++) x.set(lnf.subarray(rows[i0 + i] * C, (rows[i0 + i] + 1) * C), i * C);
    const xt = createTensor(model.gpu, [n, C], { name: "trace_lnf", data: x });
    const lg = createTensor(model.gpu, [n, V], { name: "trace_logits" });
    const lp = createTensor(model.gpu, [n, V], { name: "trace_logprobs" });
    await matmul(model.gpu, xt, model.lmHead(), lg, { M: n, N: V, K: C, transB: true });
    await logSoftmax(model.gpu, lg, lp, { rows: n, cols: V });
    const v = await readTensor(lp);
    for (let i = 0; i < n; i++) out[i0 + i] = v[i * V + ids[i0 + i]];
    xt.destroy();
    lg.destroy();
    lp.destroy();
  }
  return out;
}

/**
 * Answer log-probability of each of B sequences of length T: the logprob of answer[0] after the last
 * token ("first"), or the sum over the answer's tokens at positions T0-1 .. T-1 ("sequence").
 */
async function answerLogprobs(
  model: TransformerModel,
  logprobs: Float32Array[],
  lnf: Float32Array | undefined,
  T: number,
  answer: number[],
  mode: TargetProb,
): Promise<number[]> {
  const B = logprobs.length;
  if (mode === "first" || answer.length === 1) return logprobs.map((lp) => lp[answer[0]]);
  const k = answer.length, T0 = T - (k - 1);
  const rows: number[] = [], ids: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < k - 1; j++) {
      rows.push(b * T + T0 - 1 + j);
      ids.push(answer[j]);
    }
  }
  const lps = await headLogprobs(model, lnf!, rows, ids);
  return logprobs.map((lp, b) => {
    let s = lp[answer[k - 1]];
    for (let j = 0; j < k - 1; j++) s += lps[b * (k - 1) + j];
    return s;
  });
}

/** Scores of B runs: the answer's probability and the metric (see the module doc). */
async function runScores(
  model: TransformerModel,
  logprobs: Float32Array[],
  lnf: Float32Array | undefined,
  T: number,
  answer: number[],
  mode: TargetProb,
  metric: TraceMetric,
  counterfactual: number,
): Promise<{ prob: number[]; metric: number[] }> {
  const lp = await answerLogprobs(model, logprobs, lnf, T, answer, mode);
  const prob = lp.map(Math.exp);
  if (metric === "prob") return { prob, metric: prob };
  if (metric === "logprob") return { prob, metric: lp };
  return {
    prob,
    metric: logprobs.map((row) =>
      metricValue({ kind: "logit-diff", answer: answer[0], counterfactual }, row)
    ),
  };
}

/**
 * Causal trace of `ids` (subject tokens `subjectRange`, [a, b)) for each requested kind. See the module
 * doc for the definition. Throws {@link InputError} for bad options or ranges.
 */
export async function causalTrace(
  model: TransformerModel,
  ids: number[],
  subjectRange: [number, number],
  opts: TraceOptions,
): Promise<TraceResult> {
  const t0 = performance.now();
  const cfg = model.config;
  const L = cfg.nLayer;
  const kinds = opts.kinds ?? ["hidden"];
  const samples = opts.samples ?? 10;
  const window = opts.window ?? 10;
  const seed = opts.seed ?? 1;
  const noiseRng = opts.noiseRng ?? "numpy";
  const mode = opts.targetProb ?? "first";
  const maxRows = opts.maxRows ?? 4096;
  const corruption: TraceCorruption = opts.corruption ?? { kind: "noise" };
  const metric = opts.metric ?? "prob";
  const tokens = corruption.kind === "tokens";
  if (kinds.length === 0 || kinds.some((k) => !TRACE_KINDS.includes(k))) {
    throw new InputError(`kinds must be among ${TRACE_KINDS.join(", ")}, got '${kinds.join(",")}'`, {
      field: "kind",
    });
  }
  if (!(Number.isInteger(samples) && samples >= 1)) {
    throw new InputError(`samples must be a positive integer`, { field: "samples" });
  }
  if (!(Number.isInteger(window) && window >= 1)) {
    throw new InputError(`window must be a positive integer`, { field: "window" });
  }
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new InputError(`seed must be an integer in [0, 2^32), got ${seed}`, { field: "seed" });
  }
  if (!NOISE_RNGS.includes(noiseRng)) {
    throw new InputError(`noise generator must be one of ${NOISE_RNGS.join(", ")}, got '${noiseRng}'`, {
      field: "noiseRng",
    });
  }
  if (!(CORRUPTION_KINDS as readonly string[]).includes(corruption.kind)) {
    throw new InputError(
      `corruption must be one of ${CORRUPTION_KINDS.join(", ")}, got '${
        (corruption as { kind: string }).kind
      }'`,
      { field: "corruption" },
    );
  }
  const noiseStd = opts.noiseStd ?? (tokens ? 0 : NaN);
  if (!tokens && !(Number.isFinite(noiseStd) && noiseStd >= 0)) {
    throw new InputError(`noise std must be a finite number >= 0, got ${opts.noiseStd}`, { field: "noise" });
  }
  if (!(TRACE_METRICS as readonly string[]).includes(metric)) {
    throw new InputError(`metric must be one of ${TRACE_METRICS.join(", ")}, got '${metric}'`, {
      field: "metric",
    });
  }
  const counterfactual = opts.counterfactual ?? -1;
  if (metric === "logit-diff") {
    if (!(Number.isInteger(counterfactual) && counterfactual >= 0 && counterfactual < cfg.vocabSize)) {
      throw new InputError(
        opts.counterfactual === undefined
          ? `metric logit-diff needs a counterfactual token`
          : `counterfactual token id ${counterfactual} out of range [0, ${cfg.vocabSize})`,
        { field: "counterfactual" },
      );
    }
  }
  if (!(Number.isInteger(maxRows) && maxRows >= 1)) {
    throw new InputError(`maxRows must be a positive integer`, { field: "maxRows" });
  }
  const [a, b] = subjectRange;
  const T0 = ids.length;
  if (!(Number.isInteger(a) && Number.isInteger(b) && a >= 0 && b <= T0 && a < b)) {
    throw new InputError(`subject range [${a}, ${b}) outside the prompt's ${T0} tokens`, {
      field: "subject",
    });
  }
  model.checkBatch([ids]);
  if (corruption.kind === "tokens") checkReplacementIds(corruption.ids, b - a, cfg.vocabSize, "corruption");
  else checkNoiseSpec({ ...corruption, scale: noiseStd, seed }, cfg.nEmbd);
  const nSamples = tokens ? 1 : samples;

  // Clean run: prediction, answer, and the clean values of every site a restoration may need.
  const sites = new Set<string>();
  for (const k of kinds) for (let l = 0; l < L; l++) sites.add(kindSite(k, l));
  const cleanPrompt = await model.forward([ids], { hooks: { capture: sites } });
  const predicted = argmax(cleanPrompt.logprobs[0]);
  const answer = opts.answer && opts.answer.length > 0 ? opts.answer : [predicted];
  for (const id of answer) {
    if (!(Number.isInteger(id) && id >= 0 && id < cfg.vocabSize)) {
      throw new InputError(`answer token id ${id} out of range [0, ${cfg.vocabSize})`, { field: "target" });
    }
  }
  const useSeq = mode === "sequence" && answer.length > 1;
  if (useSeq && metric === "logit-diff") {
    throw new InputError(
      `metric logit-diff compares first tokens: it takes target-prob "first", not a ${answer.length}-token sequence`,
      { field: "metric" },
    );
  }
  const seq = useSeq ? [...ids, ...answer.slice(0, -1)] : ids;
  const T = seq.length;
  model.checkBatch([seq]);
  const clean = useSeq ? await model.forward([seq], { hooks: { capture: [...sites, "ln_f"] } }) : cleanPrompt;
  const cleanScore = await runScores(
    model,
    clean.logprobs,
    clean.captured.get("ln_f")?.data,
    T,
    answer,
    mode,
    metric,
    counterfactual,
  );
  const pClean = cleanScore.prob[0], metricClean = cleanScore.metric[0];

  // Noise corruption: the noise values; token replacement: the corrupted sequence.
  const noise = corruption.kind === "noise"
    ? corruptionNoise(samples, b - a, cfg.nEmbd, { ...corruption, scale: noiseStd, seed, rng: noiseRng })
    : undefined;
  const corruptSeq = corruption.kind === "tokens"
    ? seq.map((id, t) => (t >= a && t < b ? corruption.ids[t - a] : id))
    : seq;
  // Restorations that provably change nothing score exactly p_corrupt and are not run: any state of a
  // token before the subject (it equals the clean state: causal attention, noise only on the subject),
  // and the last layer's hidden state of a token before the last prompt token (only that token's own
  // logits read it).
  const jobs: Job[] = [{ token: -1, layer: -1, restore: [] }];
  const skipped: Job[] = [];
  for (const kind of kinds) {
    for (let t = 0; t < T0; t++) {
      for (let l = 0; l < L; l++) {
        const job = {
          kind,
          token: t,
          layer: l,
          restore: windowLayers(kind, l, window, L).map((x) => kindSite(kind, x)),
        };
        const noop = t < a || (kind === "hidden" && l === L - 1 && t < T0 - 1);
        (noop ? skipped : jobs).push(job);
      }
    }
  }
  const total = jobs.length * nSamples;
  const perForward = opts.batched === false ? nSamples : Math.max(1, Math.floor(maxRows / T));
  const jobScore = new Float64Array(jobs.length);
  const jobProb = new Float64Array(jobs.length);
  let forwards = 0;
  for (let s0 = 0; s0 < total; s0 += perForward) {
    const B = Math.min(perForward, total - s0);
    const batch = Array.from({ length: B }, () => corruptSeq);
    const rows = Array.from({ length: B }, (_, i) => i);
    const patch: PatchSpec[] = noise && corruption.kind === "noise"
      ? [noisePatch(model, seq, subjectRange, noise, rows, (i) => (s0 + i) % samples, !!corruption.replace)]
      : [];
    const bySite = new Map<string, Array<[number, number]>>();
    for (let i = 0; i < B; i++) {
      const job = jobs[Math.floor((s0 + i) / nSamples)];
      for (const site of job.restore) {
        const list = bySite.get(site) ?? [];
        list.push([i, job.token]);
        bySite.set(site, list);
      }
    }
    for (const [site, list] of bySite) {
      const src = clean.captured.get(site)!.data;
      const width = src.length / T;
      const values = new Float32Array(list.length * width);
      list.forEach(([, t], j) => values.set(src.subarray(t * width, (t + 1) * width), j * width));
      patch.push({ site, rows: list, values });
    }
    const r = await model.forward(batch, { hooks: { patch, capture: useSeq ? ["ln_f"] : [] } });
    forwards++;
    const sc = await runScores(
      model,
      r.logprobs,
      r.captured.get("ln_f")?.data,
      T,
      answer,
      mode,
      metric,
      counterfactual,
    );
    for (let i = 0; i < B; i++) {
      const j = Math.floor((s0 + i) / nSamples);
      jobScore[j] += sc.metric[i] / nSamples;
      jobProb[j] += sc.prob[i] / nSamples;
    }
    opts.onProgress?.(s0 + B, total);
  }
  const pCorrupt = jobProb[0], metricCorrupt = jobScore[0];
  const traces: KindTrace[] = kinds.map((kind) => {
    const scores = Array.from({ length: T0 }, () => new Array<number>(L).fill(0));
    jobs.forEach((j, i) => {
      if (j.kind === kind) scores[j.token][j.layer] = jobScore[i];
    });
    for (const j of skipped) if (j.kind === kind) scores[j.token][j.layer] = metricCorrupt;
    return {
      kind,
      scores,
      effects: scores.map((row) => row.map((v) => v - metricCorrupt)),
      window: kind === "hidden" ? 1 : Math.min(window, L),
    };
  });
  if (traces.some((t) => t.scores.some((row) => row.some((v) => !Number.isFinite(v))))) {
    throw new ShapeError(`the trace produced non-finite ${metric} scores`, { field: "scores" });
  }
  return {
    ids,
    promptLength: T0,
    subjectRange: [a, b],
    nLayer: L,
    answer,
    predicted,
    known: predicted === answer[0],
    pClean,
    pCorrupt,
    metricClean,
    metricCorrupt,
    totalEffect: metricClean - metricCorrupt,
    metric,
    ...(metric === "logit-diff" ? { counterfactual } : {}),
    corruption: corruption.kind === "tokens" ? { kind: "tokens", ids: [...corruption.ids] } : {
      kind: "noise",
      dist: corruption.dist ?? "gaussian",
      ...(corruption.dist === "t" ? { df: corruption.df ?? 3 } : {}),
      replace: !!corruption.replace,
    },
    noiseStd,
    samples: nSamples,
    seed,
    noiseRng,
    targetProb: mode,
    traces,
    stats: {
      forwards: forwards + (useSeq ? 2 : 1),
      sequences: total + (useSeq ? 2 : 1),
      seconds: (performance.now() - t0) / 1000,
    },
  };
}
