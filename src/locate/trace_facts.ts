/**
 * Averaged causal tracing of many facts, as `engram trace --facts` does (ROME's
 * `experiments/causal_trace.py` over known_1000, averaged as in `notebooks/average_causal_effects.ipynb`):
 * each fact is encoded (src/prompt), kept only when the model knows it (`known`, src/locate/known.ts;
 * a known fact is traced on the model's own greedy tokens, ROME's `answer_t`), traced by
 * {@link causalTrace}, and its restored scores are pooled by token class ({@link ClassAccumulator}).
 * The noise std, when given as a multiple, is measured over the token embeddings of every subject of
 * `noiseFacts` (ROME's `collect_embedding_std` over all the knowns, whatever is traced).
 *
 * The `trace --facts` command keeps its own loop; `tests/recommend_test.ts` checks that the two give the
 * same averages.
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { encodeFact } from "../prompt/encode.ts";
import type { TraceFact } from "../prompt/facts.ts";
import { ClassAccumulator, type ClassAverage, type ClassPool } from "./average.ts";
import { greedyContinuation, greedyLength, knownByRule, type KnownRule } from "./known.ts";
import { embeddingStd, type NoiseRng } from "./patching.ts";
import { causalTrace, type TargetProb, type TraceKind } from "./trace.ts";

/** The noise level: an absolute std, or a multiple of the subjects' embedding std (ROME's "s3" is 3). */
export type NoiseLevel = { absolute: number } | { multiple: number };

/** Options of {@link traceFacts}. */
export interface TraceFactsOptions {
  /** Kinds traced (default ["mlp"]). */
  kinds?: TraceKind[];
  /** Noise samples per fact (default 10). */
  samples?: number;
  /** Noise level (default { multiple: 3 }, ROME's s3). */
  noise?: NoiseLevel;
  /** Facts whose subjects set a relative noise level (default: `facts`). */
  noiseFacts?: TraceFact[];
  /** Window of restored MLP / attention layers (default 10, ROME's). */
  window?: number;
  seed?: number;
  noiseRng?: NoiseRng;
  targetProb?: TargetProb;
  /** Which facts count as known (default "whole", ROME's). */
  known?: KnownRule;
  /** Trace facts the model does not know too (default false: dropped, as ROME). */
  includeUnknown?: boolean;
  /** Token-class pooling (default "token", ROME's notebook). */
  pool?: ClassPool;
  maxRows?: number;
  batched?: boolean;
  /** File the facts came from, for error messages. */
  file?: string;
  /** Called after each fact with (facts done, total, traced so far). */
  onFact?: (done: number, total: number, traced: number) => void;
  /** Called for a fact skipped because it is invalid (its encoding failed). */
  onInvalid?: (fact: TraceFact, error: InputError) => void;
}

/** One fact's outcome. */
export interface FactOutcome {
  id: string;
  traced: boolean;
  known?: boolean;
  pClean?: number;
  pCorrupt?: number;
  error?: string;
}

/** What {@link traceFacts} returns. */
export interface FactsTrace {
  /** Token-class averages per traced kind. */
  averages: Map<TraceKind, ClassAverage>;
  records: number;
  traced: number;
  /** Facts the model does not know (dropped unless includeUnknown). */
  unknown: number;
  /** Facts whose encoding failed (subject not in prompt, too long, ...). */
  invalid: number;
  /** Facts without a target (traced on the model's own prediction). */
  withoutTarget: number;
  noiseStd: number;
  meanPClean: number;
  meanPCorrupt: number;
  nLayer: number;
  window: number;
  facts: FactOutcome[];
  forwards: number;
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
  const L = model.config.nLayer;
  const noiseStd = "absolute" in noise ? noise.absolute : noise.multiple *
    embeddingStd(
      model.weights,
      model.config.nEmbd,
      (opts.noiseFacts ?? facts).flatMap((x) => tok.encode(x.subject)),
      model.spec.embed,
    );
  const common = {
    kinds,
    samples: opts.samples ?? 10,
    window,
    seed: opts.seed ?? 1,
    noiseRng: opts.noiseRng ?? "numpy",
    targetProb,
    maxRows: opts.maxRows ?? 4096,
    batched: opts.batched ?? true,
    noiseStd,
  };
  const acc = new Map(kinds.map((k) => [k, new ClassAccumulator(L, opts.pool ?? "token")]));
  const out: FactOutcome[] = [];
  let traced = 0, unknown = 0, invalid = 0, withoutTarget = 0, sumClean = 0, sumCorrupt = 0;
  let forwards = 0, seconds = 0;
  for (let i = 0; i < facts.length; i++) {
    const fact = facts[i];
    const row: FactOutcome = { id: fact.id, traced: false };
    try {
      const e = encodeFact(tok, fact, {
        nPositions: model.config.nPositions,
        appendTarget: targetProb === "sequence",
        where: { file: opts.file, record: i, fields: { target: fact.targetField ?? "target" } },
      });
      const ids = e.ids.slice(0, e.promptLength);
      let answer = e.target, known = true;
      if (e.target === undefined) withoutTarget++;
      else {
        const greedy = await greedyContinuation(model, ids, greedyLength(knownRule, e.target), "target");
        known = knownByRule(knownRule, tok, greedy, fact.target!, e.target);
        row.known = known;
        if (known && knownRule !== "first") answer = greedy;
        if (!known) unknown++;
      }
      if (known || opts.includeUnknown) {
        const r = await causalTrace(model, ids, e.subjectRange, { ...common, answer });
        forwards += r.stats.forwards;
        seconds += r.stats.seconds;
        for (const t of r.traces) acc.get(t.kind)!.add(t.scores, r.pCorrupt, r.subjectRange);
        Object.assign(row, { traced: true, pClean: r.pClean, pCorrupt: r.pCorrupt });
        sumClean += r.pClean;
        sumCorrupt += r.pCorrupt;
        traced++;
      }
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      invalid++;
      row.error = err.message;
      opts.onInvalid?.(fact, err);
    }
    out.push(row);
    opts.onFact?.(i + 1, facts.length, traced);
  }
  if (traced === 0) {
    throw new InputError(
      `no fact could be traced: ${facts.length} record(s), ${unknown} not known by the model ` +
        `(--known ${knownRule}), ${invalid} invalid; try --include-unknown`,
      { file: opts.file, field: "--facts" },
    );
  }
  const averages = new Map([...acc].map(([k, a]) => [k, a.result()]));
  return {
    averages,
    records: facts.length,
    traced,
    unknown,
    invalid,
    withoutTarget,
    noiseStd,
    meanPClean: sumClean / traced,
    meanPCorrupt: sumCorrupt / traced,
    nLayer: L,
    window,
    facts: out,
    forwards,
    seconds,
  };
}
