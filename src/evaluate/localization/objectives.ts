/**
 * Edit objectives and methods of Hase et al. 2023 (belief-localization `experiments/evaluate.py`:
 * `request_baseline` and `get_override_hparams`; methods.md 2(f)) that engram's editors can run:
 *
 * - **error_injection** (the paper's Error Injection / "Falsehood Injection"): CounterFact's rewrite,
 *   target `target_new`, baseline `target_true`;
 * - **tracing_reversal**: target = the model's prediction when the subject's embeddings are noised (the
 *   argmax of the next-token probabilities averaged over the noise samples, as the reference's
 *   `corrupted_forward_pass`; see docs/notes/issue-16-locstudy.md for the difference from its 12-token generation),
 *   baseline `target_true`;
 * - **fact_amplification**: target `target_true` (the edit raises the probability of what the model
 *   already says); no baseline (the reference uses the EOS token, "won't use these metrics");
 * - **fact_erasure**: target `target_true`, loss = its probability (FT: exp(−NLL) of the batch; ROME /
 *   MEMIT: exp(−NLL) in the v* / z loss, src/edit/compute_v.ts), scored by the erasure score; no baseline;
 * - **fact_forcing**: target `target_true` while the subject's embeddings are noised during the edit
 *   (FT: 10 noise samples, 50 steps; ROME / MEMIT: every forward of the edit noised, ROME with v_lr 0.05 and
 *   25 steps); baseline = the noised prediction (`request_baseline`). The edit is measured with the
 *   subject noised too, pre and post with the same draws (the reference's `test_batch_prediction` runs
 *   inside a noising hook when fact forcing); `forcingEval: "clean"` measures on clean prompts instead.
 *
 * Every method runs every objective.

 * Methods: `rome` (window 1), `memit` (the window of `editWindow` layers centred on the layer, clipped at
 * the ends as causal tracing's window), `ft-1` and `ft-5` (belief-localization's constrained fine-tuning
 * of the MLP output projection of 1 or 5 layers centred on the layer, with the per-objective L∞ radius).
 */
import { InputError } from "../../errors.ts";
import type { Tokenizer } from "../../io/tokenizer.ts";
import type { TransformerModel } from "../../model/transformer.ts";
import type { EditRequest } from "../../edit/requests.ts";
import { corruptionPatch, type NoiseRng, subjectNoise } from "../../locate/patching.ts";

/** The objectives the study runs. */
export const OBJECTIVES = [
  "error_injection",
  "tracing_reversal",
  "fact_erasure",
  "fact_amplification",
  "fact_forcing",
] as const;
/** One of {@link OBJECTIVES}. */
export type Objective = typeof OBJECTIVES[number];

/** The editing methods of the study, by the paper's names. */
export const STUDY_METHODS = ["rome", "memit", "ft-1", "ft-5"] as const;
/** One of {@link STUDY_METHODS}. */
export type StudyMethod = typeof STUDY_METHODS[number];

/**
 * Whether `method` can run `objective`: every pair now (ROME / MEMIT erasure and forcing came with the
 * objectives of src/edit/compute_v.ts); kept so that a method without some objective can say so.
 */
export function canRun(method: StudyMethod, objective: Objective): boolean {
  return STUDY_METHODS.includes(method) && OBJECTIVES.includes(objective);
}

/**
 * The embeddings as an edit "layer": FT-1 fine-tunes the subject tokens' embedding rows there
 * (belief-localization adds central layer −1 to FT's sweep with window 1, except for Fact Forcing).
 */
export const EMBEDDING_LAYER: number = -1;

/** Whether `method` edits for `objective` at central `layer` (layer −1: FT-1 only, not Fact Forcing). */
export function runsAt(method: StudyMethod, objective: Objective, layer: number): boolean {
  if (!canRun(method, objective)) return false;
  return layer !== EMBEDDING_LAYER || (method === "ft-1" && objective !== "fact_forcing");
}

/** Edits per case: one per (method, objective, layer) that runs. */
export function editsPerCase(methods: StudyMethod[], objectives: Objective[], layers: number[]): number {
  let n = 0;
  for (const m of methods) for (const o of objectives) for (const l of layers) if (runsAt(m, o, l)) n++;
  return n;
}

/** FT steps for an objective: 25 (the FT hparams files), 50 for Fact Forcing (`get_override_hparams`). */
export function ftSteps(objective: Objective): number {
  return objective === "fact_forcing" ? 50 : 25;
}

/**
 * The engram editor behind a study method and how many layers it edits around the central layer ("ft":
 * the study's own belief-localization FT, src/evaluate/localization/ft_objective.ts).
 */
export function methodSpec(method: StudyMethod, editWindow = 5): { editor: string; window: number } {
  switch (method) {
    case "rome":
      return { editor: "rome", window: 1 };
    case "memit":
      return { editor: "memit", window: editWindow };
    case "ft-1":
      return { editor: "ft", window: 1 };
    case "ft-5":
      return { editor: "ft", window: editWindow };
  }
}

/**
 * Layers edited for central layer `layer` with a window of `w` layers: [max(0, layer − ⌊w/2⌋),
 * min(nLayer, layer + ⌈w/2⌉)), the reference's `get_override_hparams` (the same clipping as tracing).
 */
export function editLayers(layer: number, w: number, nLayer: number): number[] {
  const lo = Math.max(0, layer - Math.floor(w / 2));
  const hi = Math.min(nLayer, layer + Math.ceil(w / 2));
  return Array.from({ length: hi - lo }, (_, i) => lo + i);
}

/**
 * The reference's FT L∞ radius (`norm_constraint`) for an objective and window (`get_override_hparams`):
 * window 1: 1e-4, tracing reversal 1e-3, erasure 1e-5, amplification 5e-5, forcing 1e-4; window > 1:
 * 5e-5, tracing reversal 1e-3, erasure 1e-5, amplification 1e-5, forcing 1e-4. They were set for GPT-J / gpt2-xl MLPs (≥ 6400 inputs); the study scales them by
 * max(1, 6400 / nInner) as engram's FT-L defaults scale the radius and lr for smaller MLPs.
 */
export function ftNormConstraint(objective: Objective, window: number, nInner: number): number {
  const base = objective === "tracing_reversal"
    ? 1e-3
    : objective === "fact_erasure"
    ? 1e-5
    : objective === "fact_forcing"
    ? 1e-4
    : objective === "fact_amplification"
    ? (window === 1 ? 5e-5 : 1e-5)
    : (window === 1 ? 1e-4 : 5e-5);
  return base * Math.max(1, 6400 / nInner);
}

/** What one objective edits for a case. */
export interface ObjectiveRequest {
  objective: Objective;
  /** The edit request (its `target_new` is the objective's target). */
  request: EditRequest;
  /** The answer the target is compared with in the success metrics (null: none). */
  baseline: string | null;
  /** Tracing reversal: the noised prediction's token id and its mean probability under noise. */
  noised?: { id: number; prob: number };
}

/**
 * The model's next-token prediction after `ids` with the subject tokens `subjectRange` noised: the
 * argmax of the next-token probabilities averaged over `samples` noise draws (`subjectNoise`, the
 * trace's noise: the same seed gives the same draws), and that mean probability.
 */
export async function noisedPrediction(
  model: TransformerModel,
  ids: number[],
  subjectRange: [number, number],
  o: { samples: number; noiseStd: number; seed: number; noiseRng: NoiseRng },
): Promise<{ id: number; prob: number }> {
  const [a, b] = subjectRange;
  const noise = subjectNoise(o.samples, b - a, model.config.nEmbd, o.noiseStd, o.seed, o.noiseRng);
  const rows = Array.from({ length: o.samples }, (_, i) => i);
  const patch = corruptionPatch(model, ids, subjectRange, noise, rows, 0);
  const r = await model.forward(rows.map(() => ids), { hooks: { patch: [patch] } });
  const V = model.config.vocabSize;
  const mean = new Float64Array(V);
  for (const lp of r.logprobs) for (let v = 0; v < V; v++) mean[v] += Math.exp(lp[v]) / o.samples;
  let best = 0;
  for (let v = 1; v < V; v++) if (mean[v] > mean[best]) best = v;
  return { id: best, prob: mean[best] };
}

/**
 * The request and baseline of `objective` for `req` (whose `ground_truth` is CounterFact's
 * target_true). Tracing reversal needs the noised prediction (`noised`, decoded with `tokenizer`); an
 * InputError when it decodes to nothing printable (it cannot be a target).
 */
export function objectiveRequest(
  objective: Objective,
  req: EditRequest,
  tokenizer: Tokenizer,
  noised?: { id: number; prob: number },
): ObjectiveRequest {
  const truth = req.ground_truth;
  if (truth === undefined) {
    throw new InputError(`objective '${objective}' needs the record's target_true (ground_truth)`, {
      field: "ground_truth",
    });
  }
  switch (objective) {
    case "error_injection":
      return { objective, request: { ...req }, baseline: truth };
    case "fact_amplification":
    case "fact_erasure":
      return { objective, request: { ...req, target_new: truth }, baseline: null };
    case "fact_forcing":
    case "tracing_reversal": {
      if (!noised) {
        throw new InputError("tracing reversal needs the noised prediction", { field: "objective" });
      }
      const text = tokenizer.decode([noised.id]).trim();
      if (text === "") {
        throw new InputError(`the noised prediction (token ${noised.id}) decodes to no text`, {
          field: objective,
        });
      }
      return objective === "tracing_reversal"
        ? { objective, request: { ...req, target_new: text }, baseline: truth, noised }
        : { objective, request: { ...req, target_new: truth }, baseline: text, noised };
    }
  }
}
