/**
 * The study's summary: mean scores per layer for each (method, objective), tracing effects per layer,
 * where the tracing effect peaks, and the regressions of edit success on the tracing effect and the
 * edit layer (Hase et al. 2023; src/evaluate/localization/regression.ts).
 *
 * Regression rows are the edits of one (method, objective): the score of the edit at central layer L
 * against the MLP tracing effect at L (the notebook: `module == 'mlp'`, one trace window) — by default
 * `max_fraction_restored`, the largest fraction restored over the prompt's tokens at L; also reported
 * with the subject's last token's fraction (the notebook's `subj_effect_fraction`).
 */
import type { TraceKind } from "../../locate/trace.ts";
import type { CaseEdit, CaseResult, DroppedCase, KindSummary } from "./case.ts";
import { canRun, EMBEDDING_LAYER, type Objective, type StudyMethod } from "./objectives.ts";
import { type LocalizationRegression, localizationRegression } from "./regression.ts";

/** Scores regressed and plotted. */
export const SCORE_METRICS = ["rewrite", "paraphrase", "neighborhood", "target"] as const;
/** One of {@link SCORE_METRICS}. */
export type ScoreMetric = typeof SCORE_METRICS[number];

/** Which tracing effect of the edit layer is the regressor. */
export const REGRESSORS = ["max_token", "subject_last"] as const;
/** One of {@link REGRESSORS}. */
export type Regressor = typeof REGRESSORS[number];

/** One regression cell. */
export interface RegressionRow extends LocalizationRegression {
  /** Study method of the edits. */
  method: StudyMethod;
  /** Objective of the edits. */
  objective: Objective;
  /** Score regressed. */
  metric: ScoreMetric;
  /** Tracing effect used as the regressor. */
  regressor: Regressor;
}

/** Mean scores of one (method, objective) per central layer. */
export interface LayerScores {
  /** Study method. */
  method: StudyMethod;
  /** Objective. */
  objective: Objective;
  /** The central layers, in the study's order. */
  layers: number[];
  /** metric -> mean per layer (null where no edit has that score). */
  mean: Record<ScoreMetric | "efficacy", Array<number | null>>;
  /** Edits per layer. */
  n: number[];
}

/** The summary of a study. */
export interface StudySummary {
  /** Cases studied. */
  cases: number;
  /** Cases not studied, and why. */
  dropped: DroppedCase[];
  /** Edits over all cases. */
  edits: number;
  /** The model's layer count. */
  nLayer: number;
  /** kind -> mean over cases of the fraction restored per layer (subject's last token, max over tokens). */
  tracingByLayer: Record<TraceKind, { subjectLast: number[]; maxToken: number[] }>;
  /** kind -> how many cases peak at each layer (per-example maximum over tokens and layers). */
  peakLayerCounts: Record<TraceKind, number[]>;
  /** kind -> mean per-example maximum fraction restored. */
  meanPeakFraction: Record<TraceKind, number | null>;
  /** Mean scores per layer of each runnable (method, objective). */
  scoresByLayer: LayerScores[];
  /** One row per runnable (method, objective), metric and regressor. */
  regressions: RegressionRow[];
  /** (method, objective) pairs not run: the method cannot run the objective. */
  unsupported: Array<{ method: StudyMethod; objective: Objective }>;
}

const meanOf = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

function kindOf(c: CaseResult, kind: TraceKind): KindSummary | undefined {
  return c.trace.kinds.find((k) => k.kind === kind);
}

/** The tracing regressor of an edit (MLP kind) at its central layer. */
export function regressorValue(c: CaseResult, e: CaseEdit, r: Regressor): number {
  const k = kindOf(c, "mlp")!;
  return r === "max_token" ? k.maxTokenFraction[e.layer] : k.subjectLastFraction[e.layer];
}

function scoreOf(e: CaseEdit, m: ScoreMetric | "efficacy"): number | null {
  return m === "efficacy" ? e.success.efficacy : e.scores[m];
}

/** Builds the summary of the finished `cases` (and the `dropped` ones) of a study. */
export function summarize(
  cases: CaseResult[],
  dropped: DroppedCase[],
  o: { nLayer: number; methods: StudyMethod[]; objectives: Objective[]; layers: number[] },
): StudySummary {
  const L = o.nLayer;
  const kinds: TraceKind[] = ["hidden", "mlp", "attn"];
  const tracingByLayer = {} as StudySummary["tracingByLayer"];
  const peakLayerCounts = {} as StudySummary["peakLayerCounts"];
  const meanPeakFraction = {} as StudySummary["meanPeakFraction"];
  for (const kind of kinds) {
    const ks = cases.map((c) => kindOf(c, kind)).filter((k): k is KindSummary => k !== undefined);
    const avg = (f: (k: KindSummary) => number[]) =>
      Array.from({ length: L }, (_, l) => meanOf(ks.map((k) => f(k)[l])) ?? 0);
    tracingByLayer[kind] = {
      subjectLast: avg((k) => k.subjectLastFraction),
      maxToken: avg((k) => k.maxTokenFraction),
    };
    const counts = new Array<number>(L).fill(0);
    for (const k of ks) counts[k.peak.layer]++;
    peakLayerCounts[kind] = counts;
    meanPeakFraction[kind] = meanOf(ks.map((k) => k.peak.fraction));
  }
  const scoresByLayer: LayerScores[] = [];
  const regressions: RegressionRow[] = [];
  let edits = 0;
  const unsupported: StudySummary["unsupported"] = [];
  for (const method of o.methods) {
    for (const objective of o.objectives) {
      if (!canRun(method, objective)) {
        unsupported.push({ method, objective });
        continue;
      }
      const rows: Array<{ c: CaseResult; e: CaseEdit }> = [];
      for (const c of cases) {
        for (const e of c.edits) if (e.method === method && e.objective === objective) rows.push({ c, e });
      }
      edits += rows.length;
      const mean = {} as LayerScores["mean"];
      for (const m of [...SCORE_METRICS, "efficacy"] as const) {
        mean[m] = o.layers.map((l) => {
          const v = rows.filter((r) => r.e.layer === l).map((r) => scoreOf(r.e, m)).filter((x): x is number =>
            x !== null
          );
          return meanOf(v);
        });
      }
      scoresByLayer.push({
        method,
        objective,
        layers: o.layers,
        mean,
        n: o.layers.map((l) => rows.filter((r) => r.e.layer === l).length),
      });
      for (const metric of SCORE_METRICS) {
        // The embeddings (layer −1) have no MLP trace to regress on: they are left out of the regressions.
        const use = rows.filter((r) => r.e.scores[metric] !== null && r.e.layer !== EMBEDDING_LAYER);
        for (const regressor of REGRESSORS) {
          regressions.push({
            method,
            objective,
            metric,
            regressor,
            ...localizationRegression(
              use.map((r) => r.e.layer),
              use.map((r) => regressorValue(r.c, r.e, regressor)),
              use.map((r) => r.e.scores[metric] as number),
            ),
          });
        }
      }
    }
  }
  return {
    cases: cases.length,
    dropped,
    edits,
    nLayer: L,
    tracingByLayer,
    peakLayerCounts,
    meanPeakFraction,
    scoresByLayer,
    regressions,
    unsupported,
  };
}
