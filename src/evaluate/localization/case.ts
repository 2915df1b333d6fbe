/**
 * One case of the localization study (Hase et al. 2023): trace it, edit it at every requested layer
 * with every method and objective, and score each edit (src/evaluate/localization/scores.ts).
 *
 * Tracing (belief-localization `experiments/tracing.py`, `calculate_hidden_flow` with the label as
 * target): causal trace of the prompt for hidden, MLP and attention states with one window, the answer
 * scored being `target_true`. The tracing effect of a (token, layer) is the notebook's
 * `fraction_restored = max(0, (p_restored − p_corrupt) / |p_corrupt − p_clean|)`. Reported per layer:
 * the effect at the subject's last token, the largest effect over tokens at that layer (the notebook's
 * regressor `max_fraction_restored`), and the per-example maximum over tokens and layers (its peak).
 */
import type { Tokenizer } from "../../io/tokenizer.ts";
import type { TransformerModel } from "../../model/transformer.ts";
import type { EditRequest } from "../../edit/requests.ts";
import { filledPrompt } from "../../edit/requests.ts";
import { type AppliedEdit, applyEdit, type EditOptions } from "../../edit/editors.ts";
import { applyComputed } from "../../edit/apply.ts";
import { ftlDefaults } from "../../edit/ft.ts";
import { fineTuneObjective, type FtObjectiveOptions } from "./ft_objective.ts";
import {
  causalTrace,
  type KindTrace,
  type TargetProb,
  TRACE_KINDS,
  type TraceKind,
} from "../../locate/trace.ts";
import type { NoiseRng } from "../../locate/patching.ts";
import { SubjectNoiser, type SubjectNoiseSpec } from "../../locate/subject_noiser.ts";
import { encodeFact, findTokenRange } from "../../prompt/encode.ts";
import { FactError, SubjectNotInPromptError } from "../../prompt/errors.ts";
import { InputError } from "../../errors.ts";
import { scoreAnswers, type ScoreItem } from "../edit_metrics.ts";
import {
  editLayers,
  editsPerCase,
  EMBEDDING_LAYER,
  ftNormConstraint,
  ftSteps,
  methodSpec,
  noisedPrediction,
  type Objective,
  type ObjectiveRequest,
  objectiveRequest,
  runsAt,
  type StudyMethod,
} from "./objectives.ts";
import { type EditScores, hasePoints } from "./scores.ts";

/** Settings of a study that every case uses. */
export interface CaseSettings {
  /** Study methods to run. */
  methods: StudyMethod[];
  /** Edit objectives to run. */
  objectives: Objective[];
  /** Central edit layers. */
  layers: number[];
  /** Tracing window of the MLP and attention traces (the notebook's regressions use 5). */
  traceWindow: number;
  /** Window of MEMIT and FT-5 (5). */
  editWindow: number;
  /** Noise samples of the trace and of the noised prediction. */
  samples: number;
  /** Std of the Gaussian noise on the subject's embeddings (trace, noised prediction, Fact Forcing). */
  noiseStd: number;
  /** Noise seed. */
  seed: number;
  /** Noise generator ("numpy": ROME's exact values). */
  noiseRng: NoiseRng;
  /** How the traced answer is scored ("sequence": the product over target_true's tokens). */
  targetProb: TargetProb;
  /** Keep only cases whose clean top-1 token is target_true's first (the notebook's is_correct). */
  knownOnly: boolean;
  /** Drop cases whose clean probability of target_true is below this (tracing.py's min_pred_prob .02). */
  minPredProb: number;
  /**
   * How Fact Forcing's edits are measured: "noised" (default, the reference's `test_batch_prediction`
   * under its noising hook: the subject of every prompt that holds it noised, pre and post with the same
   * draws) or "clean".
   */
  forcingEval?: "noised" | "clean";
  /**
   * P of an answer in the scores: "sequence" (default, the reference: the product of its token
   * probabilities) or "mean" (exp(−mean token NLL), the study's earlier rule; equal for one-token answers).
   */
  scoreProb?: "sequence" | "mean";
}

/** How the study reaches the editors (hparams per study method, key statistics). */
export interface CaseEditContext {
  /** User hparams per study method (engram editors' keys; FT-1 / FT-5: {@link FT_OVERRIDE_KEYS}). */
  hparams?: Partial<Record<StudyMethod, Record<string, unknown>>>;
  /** Corpus of ROME / MEMIT's key statistics (see `EditOptions.statsCorpus`). */
  statsCorpus?: EditOptions["statsCorpus"];
  /** Prebuilt key statistics for ROME / MEMIT: `.npz` / `.safetensors` files or folders of them. */
  stats?: string[];
  /** Cache folder of the key statistics ROME / MEMIT compute. */
  statsDir?: string;
  /** The data file, for messages. */
  dataFile?: string;
}

/** One kind's tracing summary. */
export interface KindSummary {
  /** Traced state: hidden, mlp or attn. */
  kind: TraceKind;
  /** Effective window (1 for hidden). */
  window: number;
  /** Restore effect p_restored − p_corrupt at the subject's last token, per layer. */
  subjectLastEffect: number[];
  /** fraction_restored at the subject's last token, per layer. */
  subjectLastFraction: number[];
  /** Largest fraction_restored over the prompt's tokens, per layer (the notebook's regressor). */
  maxTokenFraction: number[];
  /** The per-example maximum fraction_restored over tokens and layers, and where. */
  peak: { fraction: number; effect: number; token: number; layer: number };
}

/** The trace of a case. */
export interface CaseTrace {
  /** The prompt's token ids (without the answer). */
  ids: number[];
  /** Subject tokens [a, b) in `ids`. */
  subjectRange: [number, number];
  /** target_true's token ids, the traced answer. */
  answer: number[];
  /** The clean run's top-1 next token. */
  predicted: number;
  /** Whether `predicted` is target_true's first token. */
  known: boolean;
  /** Probability of target_true in the clean run (as `targetProb` scores it). */
  pClean: number;
  /** Probability of target_true with the subject noised, nothing restored. */
  pCorrupt: number;
  /** Summaries of the hidden, mlp and attn traces. */
  kinds: KindSummary[];
}

/** Probabilities of the target (and of the baseline) on the rewrite, paraphrase and neighborhood prompts. */
export interface PromptProbs {
  /** On the rewrite prompt (one value). */
  rewrite: number[];
  /** On each paraphrase, in order. */
  paraphrase: number[];
  /** On each neighborhood prompt, in order. */
  neighborhood: number[];
}

/** One edit of a case. */
export interface CaseEdit {
  /** Study method of the edit. */
  method: StudyMethod;
  /** Objective of the edit. */
  objective: Objective;
  /** Central layer. */
  layer: number;
  /** Layers the editor changed. */
  editedLayers: number[];
  /** The objective's target (the request's `target_new`). */
  target: string;
  /** The objective's baseline answer (null: none). */
  baseline: string | null;
  /** Post-edit probabilities of the target and of the baseline. */
  post: { target: PromptProbs; baseline: PromptProbs | null };
  /** Hase et al.'s scores of the edit. */
  scores: EditScores;
  /** ROME's CounterFact successes: [P(target) > P(baseline)] on rewrite / paraphrases, the reverse on neighbours. */
  success: { efficacy: number | null; paraphrase: number | null; neighborhood: number | null };
  /** Wall time of the edit and its measurement, in seconds. */
  seconds: number;
  /** The editor's warnings. */
  warnings: string[];
}

/** One objective of a case: its request and the pre-edit probabilities. */
export interface CaseObjective {
  /** Which objective. */
  objective: Objective;
  /** The objective's target (the request's `target_new`). */
  target: string;
  /** The objective's baseline answer (null: none). */
  baseline: string | null;
  /** Tracing reversal / Fact Forcing: the noised prediction's token id and mean probability. */
  noised?: { id: number; prob: number };
  /** Pre-edit probabilities of the target and of the baseline. */
  pre: { target: PromptProbs; baseline: PromptProbs | null };
}

/** A finished case. */
export interface CaseResult {
  /** Index of the case in the data file. */
  index: number;
  /** The record's `case_id`, when it has one. */
  case_id?: number | string;
  /** The record's prompt, "{}" standing for the subject. */
  prompt: string;
  /** The record's subject. */
  subject: string;
  /** CounterFact's true answer (the record's `ground_truth`). */
  target_true: string;
  /** CounterFact's new answer (the record's `target_new`). */
  target_new: string;
  /** The case's causal trace. */
  trace: CaseTrace;
  /** Each objective's request and pre-edit probabilities. */
  objectives: CaseObjective[];
  /** Every edit of the case. */
  edits: CaseEdit[];
  /** Wall time of the case, in seconds. */
  seconds: number;
}

/** A case that was not studied, and why. */
export interface DroppedCase {
  /** Index of the case in the data file. */
  index: number;
  /** The record's `case_id`, when it has one. */
  case_id?: number | string;
  /** Why the case was dropped. */
  dropped: string;
}

/** fraction_restored of the notebook: max(0, effect / |p_corrupt − p_clean|); 0 when the corruption changed nothing. */
export function fractionRestored(effect: number, pClean: number, pCorrupt: number): number {
  const d = Math.abs(pCorrupt - pClean);
  return d > 0 ? Math.max(0, effect / d) : 0;
}

/** The tracing summary of one kind (see the module comment). */
export function summarizeKind(
  t: KindTrace,
  subjectLast: number,
  pClean: number,
  pCorrupt: number,
): KindSummary {
  const L = t.effects[0].length;
  const frac = t.effects.map((row) => row.map((e) => fractionRestored(e, pClean, pCorrupt)));
  const maxTokenFraction = Array.from({ length: L }, (_, l) => Math.max(...frac.map((row) => row[l])));
  let peak = { fraction: -Infinity, effect: 0, token: 0, layer: 0 };
  t.effects.forEach((row, tok) =>
    row.forEach((e, l) => {
      // The notebook's is_max_effect compares restore effects; ties keep the first (token, layer).
      if (e > peak.effect || peak.fraction === -Infinity) {
        peak = { fraction: frac[tok][l], effect: e, token: tok, layer: l };
      }
    })
  );
  return {
    kind: t.kind,
    window: t.window,
    subjectLastEffect: t.effects[subjectLast].slice(),
    subjectLastFraction: frac[subjectLast].slice(),
    maxTokenFraction,
    peak,
  };
}

/** Items scored for a target: the rewrite prompt, then every paraphrase, then every neighborhood prompt. */
function itemsFor(
  req: EditRequest,
  answer: string,
): { items: ScoreItem[]; counts: [number, number, number] } {
  const para = req.rephrase ?? [], nb = (req.locality ?? []).map((l) => l.prompt);
  const items = [filledPrompt(req), ...para, ...nb].map((prompt) => ({ prompt, answer }));
  return { items, counts: [1, para.length, nb.length] };
}

/**
 * P of `answer` after each prompt of `req`, grouped by kind: with `prob` "sequence" (default) the product
 * of its token probabilities, exp(−Σ NLL) (belief-localization's `test_batch_prediction` through
 * `score_from_batch`, which sums the log-probabilities); "mean": exp(−mean token NLL). With `noise` the
 * subject's tokens of each prompt that holds it (ROME's `find_token_range`) get draw i of `noise` for
 * prompt i (so every call with the same `noise` noises alike, whatever the answer).
 */
export async function promptProbs(
  model: TransformerModel,
  tokenizer: Tokenizer,
  req: EditRequest,
  answer: string,
  noise?: SubjectNoiseSpec,
  prob: "sequence" | "mean" = "sequence",
): Promise<PromptProbs> {
  const { items, counts } = itemsFor(req, answer);
  const patch = noise &&
    ((rows: Array<{ index: number; prompt: number[]; row: number }>) =>
      SubjectNoiser.patchRows(
        model,
        noise,
        rows.flatMap(({ index, prompt, row }) => {
          try {
            return [{
              ids: prompt,
              subjectRange: findTokenRange(tokenizer, prompt, req.subject),
              row,
              draw: index,
            }];
          } catch (e) {
            if (e instanceof SubjectNotInPromptError) return []; // e.g. a neighborhood prompt: left clean
            throw e;
          }
        }),
      ));
  const s = await scoreAnswers(model, tokenizer, items, patch ? { patch } : {});
  const p = s.map((x) => Math.exp(-x.nll * (prob === "sequence" ? x.answerIds.length : 1)));
  return {
    rewrite: p.slice(0, counts[0]),
    paraphrase: p.slice(counts[0], counts[0] + counts[1]),
    neighborhood: p.slice(counts[0] + counts[1]),
  };
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const pair = (pre: number[], post: number[]) => (pre.length ? { pre: pre[0], post: post[0] } : null);

/** Scores and successes of one edit from the pre- and post-edit probabilities. */
export function scoreEdit(
  pre: { target: PromptProbs; baseline: PromptProbs | null },
  post: { target: PromptProbs; baseline: PromptProbs | null },
  erasure = false,
): { scores: EditScores; success: CaseEdit["success"] } {
  const t0 = pre.target, t1 = post.target;
  const scores = hasePoints(
    { pre: t0.rewrite[0], post: t1.rewrite[0] },
    pair(t0.paraphrase, t1.paraphrase),
    pair(t0.neighborhood, t1.neighborhood),
    erasure,
  );
  const b = post.baseline;
  const success = b
    ? {
      efficacy: mean(t1.rewrite.map((p, i) => (p > b.rewrite[i] ? 1 : 0))),
      paraphrase: mean(t1.paraphrase.map((p, i) => (p > b.paraphrase[i] ? 1 : 0))),
      neighborhood: mean(t1.neighborhood.map((p, i) => (b.neighborhood[i] > p ? 1 : 0))),
    }
    : { efficacy: null, paraphrase: null, neighborhood: null };
  return { scores, success };
}

/** Keys a user may set for the study's FT (ft-1 / ft-5). */
export const FT_OVERRIDE_KEYS = ["lr", "num_steps", "norm_constraint"] as const;

/** Checks user overrides of the study's FT; an InputError names an unknown key or a bad value. */
export function checkFtOverrides(h: Record<string, unknown>, file?: string): void {
  for (const [k, v] of Object.entries(h)) {
    if (!(FT_OVERRIDE_KEYS as readonly string[]).includes(k)) {
      throw new InputError(`unknown key '${k}' for the study's FT (known: ${FT_OVERRIDE_KEYS.join(", ")})`, {
        file,
        field: k,
      });
    }
    const ok = typeof v === "number" && Number.isFinite(v) && v >= 0 &&
      (k !== "num_steps" || (Number.isInteger(v) && v >= 1));
    if (!ok) {
      throw new InputError(
        `'${k}' must be a non-negative number${k === "num_steps" ? " (an integer >= 1)" : ""}`,
        { file, field: k },
      );
    }
  }
}

/** How one edit of the study runs: an engram editor (with its δ objective), or the study's FT. */
export type EditPlan =
  | {
    editor: string;
    layers: number[];
    hparams?: Record<string, unknown>;
    objective?: EditOptions["objective"];
  }
  | { editor: "ft"; layers: number[]; ft: FtObjectiveOptions };

/** Editor options of `method` for a central `layer` and an objective. */
export function editOptionsFor(
  model: TransformerModel,
  method: StudyMethod,
  objective: Objective,
  layer: number,
  s: CaseSettings,
  ctx: CaseEditContext,
  subjectRange: [number, number],
): EditPlan {
  const spec = methodSpec(method, s.editWindow);
  const user = ctx.hparams?.[method];
  if (layer === EMBEDDING_LAYER) {
    // get_override_hparams for central layer −1: lr 1e-3, 100 steps, ε 0.01, the embeddings only.
    const u = (user ?? {}) as Partial<Record<typeof FT_OVERRIDE_KEYS[number], number>>;
    const ft: FtObjectiveOptions = {
      layers: [EMBEDDING_LAYER],
      lr: u.lr ?? 1e-3,
      numSteps: u.num_steps ?? 100,
      normConstraint: u.norm_constraint ?? 0.01,
      loss: objective === "fact_erasure" ? "prob" : "nll",
    };
    return { editor: "ft", layers: [EMBEDDING_LAYER], ft };
  }
  const layers = editLayers(layer, spec.window, model.config.nLayer);
  if (spec.editor !== "ft") {
    // get_override_hparams: ROME's Fact Forcing with v_lr 5e-2 and 25 steps (MEMIT keeps its v_lr 0.5).
    const forcing = objective === "fact_forcing" && method === "rome"
      ? { v_lr: 5e-2, v_num_grad_steps: 25 }
      : {};
    // belief-localization's compute_v / compute_z never stop early (their patience counter resets on every
    // step below 5e-2), so the study runs every v* step: early_stop_loss 0, unless the user sets it.
    return {
      editor: spec.editor,
      layers,
      hparams: { early_stop_loss: 0, ...forcing, ...user },
      objective: objective === "fact_erasure"
        ? { loss: "prob" }
        : objective === "fact_forcing"
        ? { noise: { std: s.noiseStd, seed: s.seed, rng: s.noiseRng } }
        : undefined,
    };
  }
  const u = (user ?? {}) as Partial<Record<typeof FT_OVERRIDE_KEYS[number], number>>;
  return {
    editor: "ft",
    layers,
    ft: {
      layers,
      // The reference's constr lr 5e-4, scaled for small MLPs as engram's FT-L defaults (ftlDefaults).
      lr: u.lr ?? ftlDefaults(model.config).lr,
      numSteps: u.num_steps ?? ftSteps(objective),
      normConstraint: u.norm_constraint ?? ftNormConstraint(objective, spec.window, model.config.nInner),
      loss: objective === "fact_erasure" ? "prob" : "nll",
      noise: objective === "fact_forcing"
        ? { std: s.noiseStd, samples: FORCING_SAMPLES, seed: s.seed, rng: s.noiseRng, subjectRange }
        : undefined,
    },
  };
}

/** Noise samples of Fact Forcing's FT (`num_noise_samples = 10`). */
export const FORCING_SAMPLES = 10;

/** Applies `plan` to `model` for `request`; `restore()` undoes it. */
export async function applyPlan(
  model: TransformerModel,
  tokenizer: Tokenizer,
  request: EditRequest,
  plan: EditPlan,
  ctx: CaseEditContext,
  onWarning: (w: string) => void,
): Promise<AppliedEdit> {
  if ("ft" in plan) {
    return applyComputed(model, await fineTuneObjective(model, tokenizer, request, plan.ft), { onWarning });
  }
  return await applyEdit(model, tokenizer, plan.editor, [request], {
    layers: plan.layers,
    hparams: plan.hparams,
    ...(plan.objective ? { objective: plan.objective } : {}),
    statsCorpus: ctx.statsCorpus,
    stats: ctx.stats,
    statsDir: ctx.statsDir,
    onWarning,
  });
}

/** Progress inside a case: `done` of `total` units (1 for the trace, 1 per edit), with a short text. */
export type CaseProgress = (done: number, total: number, text: string) => void;

/**
 * Studies case `index` (`req`, from `file`): the trace, then every (objective, method, layer) edit,
 * each applied, measured and restored. Returns a {@link DroppedCase} when the case cannot be studied
 * (its subject is not in its prompt, it does not fit, the model does not know it).
 */
export async function studyCase(
  model: TransformerModel,
  tokenizer: Tokenizer,
  req: EditRequest,
  index: number,
  s: CaseSettings,
  ctx: CaseEditContext,
  onProgress?: CaseProgress,
): Promise<CaseResult | DroppedCase> {
  const t0 = performance.now();
  const base = { index, ...(req.case_id !== undefined ? { case_id: req.case_id } : {}) };
  const truth = req.ground_truth;
  if (truth === undefined) {
    throw new InputError(`record ${index}: the study needs target_true (ground_truth) to trace and edit`, {
      file: ctx.dataFile,
      field: "ground_truth",
    });
  }
  let fact;
  try {
    fact = encodeFact(tokenizer, { prompt: req.prompt, subject: req.subject, target: truth }, {
      nPositions: model.config.nPositions,
      checkBoundary: false,
    });
  } catch (e) {
    if (e instanceof FactError) return { ...base, dropped: e.message };
    throw e;
  }
  const ids = fact.ids.slice(0, fact.promptLength);
  const total = 1 + editsPerCase(s.methods, s.objectives, s.layers);
  const tr = await causalTrace(model, ids, fact.subjectRange, {
    kinds: [...TRACE_KINDS],
    samples: s.samples,
    noiseStd: s.noiseStd,
    window: s.traceWindow,
    seed: s.seed,
    noiseRng: s.noiseRng,
    answer: fact.target,
    targetProb: s.targetProb,
  });
  onProgress?.(1, total, "traced");
  if (s.knownOnly && !tr.known) {
    return {
      ...base,
      dropped:
        `the model's top-1 token after the prompt is ${JSON.stringify(tokenizer.decode([tr.predicted]))}, ` +
        `not target_true's first token (not known)`,
    };
  }
  if (tr.pClean < s.minPredProb) {
    return { ...base, dropped: `p(target_true) ${tr.pClean.toPrecision(3)} is below ${s.minPredProb}` };
  }
  const subjectLast = fact.subjectRange[1] - 1;
  const trace: CaseTrace = {
    ids,
    subjectRange: fact.subjectRange,
    answer: tr.answer,
    predicted: tr.predicted,
    known: tr.known,
    pClean: tr.pClean,
    pCorrupt: tr.pCorrupt,
    kinds: tr.traces.map((k) => summarizeKind(k, subjectLast, tr.pClean, tr.pCorrupt)),
  };

  const objectives: CaseObjective[] = [];
  const edits: CaseEdit[] = [];
  let done = 1;
  for (const objective of s.objectives) {
    const noised = objective === "tracing_reversal" || objective === "fact_forcing"
      ? await noisedPrediction(model, ids, fact.subjectRange, s)
      : undefined;
    let o: ObjectiveRequest;
    try {
      o = objectiveRequest(objective, req, tokenizer, noised);
    } catch (e) {
      if (e instanceof InputError) return { ...base, dropped: `${objective}: ${e.message}` };
      throw e;
    }
    // Fact Forcing is measured under subject noise (same draws pre and post), unless asked for clean.
    const sn = objective === "fact_forcing" && s.forcingEval !== "clean"
      ? { std: s.noiseStd, seed: s.seed, rng: s.noiseRng }
      : undefined;
    const pre = {
      target: await promptProbs(model, tokenizer, o.request, o.request.target_new, sn, s.scoreProb),
      baseline: o.baseline !== null
        ? await promptProbs(model, tokenizer, o.request, o.baseline, sn, s.scoreProb)
        : null,
    };
    objectives.push({
      objective,
      target: o.request.target_new,
      baseline: o.baseline,
      ...(noised ? { noised } : {}),
      pre,
    });
    for (const method of s.methods) {
      for (const layer of s.layers) {
        if (!runsAt(method, objective, layer)) continue;
        const e0 = performance.now();
        const opt = editOptionsFor(model, method, objective, layer, s, ctx, fact.subjectRange);
        const warnings: string[] = [];
        const applied = await applyPlan(model, tokenizer, o.request, opt, ctx, (w) => warnings.push(w));
        let post;
        try {
          post = {
            target: await promptProbs(model, tokenizer, o.request, o.request.target_new, sn, s.scoreProb),
            baseline: o.baseline !== null
              ? await promptProbs(model, tokenizer, o.request, o.baseline, sn, s.scoreProb)
              : null,
          };
        } finally {
          applied.restore();
        }
        const { scores, success } = scoreEdit(pre, post, objective === "fact_erasure");
        edits.push({
          method,
          objective,
          layer,
          editedLayers: opt.layers,
          target: o.request.target_new,
          baseline: o.baseline,
          post,
          scores,
          success,
          seconds: (performance.now() - e0) / 1000,
          warnings: [...applied.result.warnings, ...warnings],
        });
        onProgress?.(++done, total, `${method} ${objective} layer ${layer}`);
      }
    }
  }
  return {
    ...base,
    prompt: req.prompt,
    subject: req.subject,
    target_true: truth,
    target_new: req.target_new,
    trace,
    objectives,
    edits,
    seconds: (performance.now() - t0) / 1000,
  };
}
