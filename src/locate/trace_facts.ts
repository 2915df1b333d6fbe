/**
 * Averaged causal tracing of many facts, the workflow of `engram trace --facts` (ROME's
 * `experiments/causal_trace.py` over known_1000, averaged as in `notebooks/average_causal_effects.ipynb`):
 * each fact is encoded (src/prompt), kept only when the model knows it (`known`, src/locate/known.ts;
 * a known fact is traced on the model's own greedy tokens, ROME's `answer_t`), corrupted (ROME's noise
 * rules, or symmetric token replacement by another subject of the same token length), traced by
 * {@link causalTrace}, and its restored scores are pooled by token class ({@link ClassAccumulator}).
 * The noise std, when given as a multiple, is measured over the token embeddings of every subject of
 * `noiseFacts` (ROME's `collect_embedding_std` over all the knowns, whatever is traced), or over all of
 * the embedding table (`noiseBasis: "wte"`).
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { encodeFact, type EncodeFactOptions, encodeTarget } from "../prompt/encode.ts";
import { FactError, type FactWhere } from "../prompt/errors.ts";
import type { TraceFact } from "../prompt/facts.ts";
import { ClassAccumulator, type ClassAverage, type ClassPool } from "./average.ts";
import { embeddingGaussian, replacementCandidates, subjectReplacement } from "./corruption.ts";
import { greedyContinuation, greedyLength, knownByRule, type KnownRule } from "./known.ts";
import { embeddingStd, type NoiseRng } from "./patching.ts";
import {
  causalTrace,
  type TargetProb,
  type TraceCorruption,
  type TraceKind,
  type TraceMetric,
  type TraceResult,
} from "./trace.ts";

/** The noise level: an absolute std, or a multiple of the subjects' embedding std (ROME's "s3" is 3). */
export type NoiseLevel = { absolute: number } | { multiple: number };

/**
 * How the facts' subjects are corrupted: ROME's noise (a noise {@link TraceCorruption}; its Gaussian fit
 * for "mvn" / "t" is made over the noise basis when absent), or symmetric token replacement by `subject`
 * (every fact) or, without one, by a same-length subject of the facts drawn per fact with the seed.
 */
export type FactsCorruption = Extract<TraceCorruption, { kind: "noise" }> | {
  kind: "tokens";
  subject?: string;
};

/** Options of {@link traceFacts}. */
export interface TraceFactsOptions {
  /** Kinds traced (default ["mlp"]). */
  kinds?: TraceKind[];
  /** Noise samples per fact (default 10). */
  samples?: number;
  /** Noise level (default { multiple: 3 }, ROME's s3). */
  noise?: NoiseLevel;
  /** Facts whose subjects set a relative noise level and the Gaussian fit (default: `facts`). */
  noiseFacts?: TraceFact[];
  /** What a relative noise level and the fit are measured over (default "subjects"; "wte": every token). */
  noiseBasis?: "subjects" | "wte";
  /** The corruption (default ROME's Gaussian noise). */
  corruption?: FactsCorruption;
  /** What is restored (default "prob", ROME's). */
  metric?: TraceMetric;
  /**
   * Counterfactual token of metric "logit-diff" for facts without their own `counterfactual` (the first
   * token of a fact's own one is used where it has one; a fact with neither is invalid).
   */
  counterfactual?: number;
  /** Window of restored MLP / attention layers (default 10, ROME's). */
  window?: number;
  /** Noise seed (default 1, ROME's); token replacement also draws subjects with it. */
  seed?: number;
  /** Noise generator (default "numpy", ROME's exact values). */
  noiseRng?: NoiseRng;
  /** Score the answer's first token (default) or the product over its tokens. */
  targetProb?: TargetProb;
  /** Which facts count as known (default "whole", ROME's). */
  known?: KnownRule;
  /** Trace facts the model does not know too (default false: dropped, as ROME). */
  includeUnknown?: boolean;
  /** Token-class pooling (default "token", ROME's notebook). */
  pool?: ClassPool;
  /** Most sequences × tokens in one batched forward (default 4096). */
  maxRows?: number;
  /** Batch the restored runs (default true). */
  batched?: boolean;
  /** File the facts came from, for error messages. */
  file?: string;
  /** The name of `corruption.subject` in errors (default "corrupt_subject"; the CLI's "--corrupt-subject"). */
  corruptSubjectField?: string;
  /** Called after each fact with (facts done, total, traced so far). */
  onFact?: (done: number, total: number, traced: number) => void;
  /** Called for a fact skipped because it is invalid (its encoding failed). */
  onInvalid?: (fact: TraceFact, error: InputError) => void;
  /** Called with each traced fact's whole trace (e.g. to keep ROME's per-case records). */
  onTraced?: (fact: TraceFact, result: TraceResult) => void;
}

/** One fact's outcome. */
export interface FactOutcome {
  /** The fact's id. */
  id: string;
  /** Whether it was traced. */
  traced: boolean;
  /** Whether the model knows it (absent without a target). */
  known?: boolean;
  /** The model's greedy continuation, decoded (absent without a target). */
  greedy?: string;
  /** The answer's probability in the clean and the corrupted run. */
  pClean?: number;
  /** Corrupted p(answer) (mean over the noise samples). */
  pCorrupt?: number;
  /** The metric in the clean and the corrupted run. */
  metricClean?: number;
  /** Corrupted metric (mean over the noise samples). */
  metricCorrupt?: number;
  /** The clean run's top-1 token (its string). */
  predicted?: string;
  /** The counterfactual token of metric "logit-diff" (its string). */
  counterfactual?: string;
  /** The subject put in place of this fact's (token replacement). */
  corruptSubject?: string;
  /** Why a known fact was not traced (no same-length subject to replace it). */
  reason?: string;
  /** Why the fact is invalid (its encoding failed). */
  error?: string;
}

/** What {@link traceFacts} returns. */
export interface FactsTrace {
  /** Token-class averages per traced kind. */
  averages: Map<TraceKind, ClassAverage>;
  /** Facts given. */
  records: number;
  /** Facts traced. */
  traced: number;
  /** Facts the model does not know (dropped unless includeUnknown). */
  unknown: number;
  /** Of those, the ones whose greedy first token is the target's first token. */
  unknownFirstTokenOnly: number;
  /** Facts whose encoding failed (subject not in prompt, too long, ...). */
  invalid: number;
  /** Facts without a target (traced on the model's own prediction). */
  withoutTarget: number;
  /** Known facts not traced because no other subject of their token length replaces theirs. */
  noReplacement: number;
  /** The noise std (0 for token replacement). */
  noiseStd: number;
  /** The first traced fact's corruption (noise: its distribution; tokens: the replacement ids). */
  corruption: TraceResult["corruption"] | undefined;
  /** The metric restored. */
  metric: TraceMetric;
  /** Means over the traced facts: p(answer) clean / corrupted, and the metric clean / corrupted. */
  meanPClean: number;
  /** Mean corrupted p(answer). */
  meanPCorrupt: number;
  /** Mean clean metric. */
  meanMetricClean: number;
  /** Mean corrupted metric. */
  meanMetricCorrupt: number;
  /** The model's layers. */
  nLayer: number;
  /** The restoration window asked for. */
  window: number;
  /** Every fact's outcome, in order. */
  facts: FactOutcome[];
  /** Forward passes and seconds of the traces. */
  forwards: number;
  /** Wall time of the traces, in seconds. */
  seconds: number;
}

/**
 * Traces `facts` and averages their indirect effects by token class (see the module doc). Throws
 * {@link InputError} naming `file` when no fact could be traced.
 */
export async function traceFacts(
  model: TransformerModel,
  tok: Tokenizer,
  facts: TraceFact[],
  opts: TraceFactsOptions = {},
): Promise<FactsTrace> {
  const kinds = opts.kinds ?? ["mlp"];
  const targetProb = opts.targetProb ?? "first";
  const knownRule = opts.known ?? "whole";
  const noise = opts.noise ?? { multiple: 3 };
  const window = opts.window ?? 10;
  const seed = opts.seed ?? 1;
  const L = model.config.nLayer, C = model.config.nEmbd;
  const spec = opts.corruption ?? { kind: "noise" };
  const tokens = spec.kind === "tokens";
  const basisFacts = opts.noiseFacts ?? facts;
  const basisIds = () =>
    opts.noiseBasis === "wte" ? undefined : basisFacts.flatMap((x) => tok.encode(x.subject));
  const noiseStd = tokens
    ? 0
    : "absolute" in noise
    ? noise.absolute
    : noise.multiple * embeddingStd(model.weights, C, basisIds(), model.spec.embed);
  let noiseCorruption: TraceCorruption | undefined;
  if (spec.kind === "noise") {
    noiseCorruption = { ...spec };
    if ((spec.dist === "mvn" || spec.dist === "t") && !spec.fit) {
      noiseCorruption.fit = embeddingGaussian(model.weights, C, basisIds(), model.spec.embed);
    }
  }
  const encodeOpts = (where?: FactWhere): EncodeFactOptions => ({
    nPositions: model.config.nPositions,
    appendTarget: targetProb === "sequence",
    where,
  });
  // Token replacement drawn from the data: every subject of the facts with its token length in its prompt.
  const byLength = new Map<string, number>();
  if (spec.kind === "tokens" && spec.subject === undefined) {
    for (const x of basisFacts) {
      if (byLength.has(x.subject)) continue;
      try {
        const [a, b] = encodeFact(tok, x, encodeOpts()).subjectRange;
        byLength.set(x.subject, b - a);
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
      }
    }
  }
  const common = {
    kinds,
    samples: opts.samples ?? 10,
    window,
    seed,
    noiseRng: opts.noiseRng ?? "numpy",
    targetProb,
    maxRows: opts.maxRows ?? 4096,
    batched: opts.batched ?? true,
    noiseStd,
    metric: opts.metric ?? "prob",
    counterfactual: opts.counterfactual,
  };
  const acc = new Map(kinds.map((k) => [k, new ClassAccumulator(L, opts.pool ?? "token")]));
  const out: FactOutcome[] = [];
  let traced = 0, unknown = 0, firstTokenOnly = 0, invalid = 0, withoutTarget = 0, noReplacement = 0;
  let sumClean = 0, sumCorrupt = 0, sumMetricClean = 0, sumMetricCorrupt = 0, forwards = 0, seconds = 0;
  let corruptionOut: TraceResult["corruption"] | undefined;
  for (let i = 0; i < facts.length; i++) {
    const fact = facts[i];
    const row: FactOutcome = { id: fact.id, traced: false };
    const where = { file: opts.file, record: i, fields: { target: fact.targetField ?? "target" } };
    try {
      const e = encodeFact(tok, fact, encodeOpts(where));
      const counterfactual = factCounterfactual(tok, fact, common.metric, opts.counterfactual, where);
      const ids = e.ids.slice(0, e.promptLength);
      let answer = e.target, known = true;
      if (e.target === undefined) withoutTarget++;
      else {
        const greedy = await greedyContinuation(model, ids, greedyLength(knownRule, e.target), "target");
        known = knownByRule(knownRule, tok, greedy, fact.target!, e.target);
        Object.assign(row, { known, greedy: tok.decode(greedy) });
        if (known && knownRule !== "first") answer = greedy;
        if (!known) {
          unknown++;
          if (greedy[0] === e.target[0]) firstTokenOnly++;
        }
      }
      if (known || opts.includeUnknown) {
        // Symmetric token replacement: the given subject, or the first same-length one of a seeded order.
        let corruption = noiseCorruption;
        if (spec.kind === "tokens") {
          const [a, b] = e.subjectRange;
          const candidates = spec.subject !== undefined
            ? [spec.subject]
            : replacementCandidates(fact.subject, b - a, byLength, seed, i);
          for (const c of candidates) {
            try {
              corruption = {
                kind: "tokens",
                ids: subjectReplacement(
                  tok,
                  fact,
                  c,
                  encodeOpts(where),
                  opts.corruptSubjectField ?? "corrupt_subject",
                ),
              };
              row.corruptSubject = c;
              break;
            } catch (err) {
              if (!(err instanceof InputError) || spec.subject !== undefined) throw err;
            }
          }
          if (!corruption) {
            noReplacement++;
            row.reason = `no other subject of ${b - a} token${b - a === 1 ? "" : "s"}${
              opts.file ? ` in ${opts.file}` : ""
            } replaces '${fact.subject}' (symmetric token replacement)`;
          }
        }
        if (corruption) {
          const r = await causalTrace(model, ids, e.subjectRange, {
            ...common,
            corruption,
            answer,
            counterfactual,
          });
          corruptionOut ??= r.corruption;
          forwards += r.stats.forwards;
          seconds += r.stats.seconds;
          // Scores pool against the corrupted run in the metric's units.
          for (const t of r.traces) acc.get(t.kind)!.add(t.scores, r.metricCorrupt, r.subjectRange);
          Object.assign(row, {
            traced: true,
            pClean: r.pClean,
            pCorrupt: r.pCorrupt,
            metricClean: r.metricClean,
            metricCorrupt: r.metricCorrupt,
            predicted: tok.tokenString(r.predicted),
            ...(counterfactual !== undefined ? { counterfactual: tok.tokenString(counterfactual) } : {}),
          });
          sumClean += r.pClean;
          sumCorrupt += r.pCorrupt;
          sumMetricClean += r.metricClean;
          sumMetricCorrupt += r.metricCorrupt;
          traced++;
          opts.onTraced?.(fact, r);
        }
      }
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      invalid++;
      row.traced = false;
      row.error = err.message;
      opts.onInvalid?.(fact, err);
    }
    out.push(row);
    opts.onFact?.(i + 1, facts.length, traced);
  }
  if (traced === 0) {
    throw new InputError(
      `no fact could be traced: ${facts.length} record(s), ${unknown} not known by the model ` +
        `(--known ${knownRule}), ${invalid} invalid` +
        `${tokens ? `, ${noReplacement} without a same-length subject` : ""}; try --include-unknown`,
      { file: opts.file, field: "--facts" },
    );
  }
  const averages = new Map([...acc].map(([k, a]) => [k, a.result()]));
  return {
    averages,
    records: facts.length,
    traced,
    unknown,
    unknownFirstTokenOnly: firstTokenOnly,
    invalid,
    withoutTarget,
    noReplacement,
    noiseStd,
    corruption: corruptionOut,
    metric: common.metric,
    meanPClean: sumClean / traced,
    meanPCorrupt: sumCorrupt / traced,
    meanMetricClean: sumMetricClean / traced,
    meanMetricCorrupt: sumMetricCorrupt / traced,
    nLayer: L,
    window,
    facts: out,
    forwards,
    seconds,
  };
}

/**
 * The counterfactual token of metric "logit-diff" for one fact: the first token of its own
 * `counterfactual`, else `fallback`; undefined for the other metrics. A logit-diff fact with neither is an
 * {@link InputError} naming the record's `counterfactual` field.
 */
function factCounterfactual(
  tok: Tokenizer,
  fact: TraceFact,
  metric: TraceMetric,
  fallback: number | undefined,
  where: FactWhere,
): number | undefined {
  if (metric !== "logit-diff") return undefined;
  if (fact.counterfactual !== undefined) {
    return encodeTarget(tok, fact.counterfactual, { ...where, fields: { target: "counterfactual" } })[0];
  }
  if (fallback === undefined) {
    throw new FactError("the logit-difference metric needs a counterfactual answer: the record has none", {
      file: where.file,
      record: where.record,
      field: "counterfactual",
    });
  }
  return fallback;
}
