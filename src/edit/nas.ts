/**
 * NAS, Norm-Anchor Scaling (Liu et al. 2026, arXiv 2602.02543; SasyaTitech/NAS `NAS/compute_z.py`), a
 * collapse guard for sequential locate-then-edit: after the value optimisation, the solved value vector
 * v* = v₀ + δ (v₀ the MLP output at the edited layer and fact token, δ the optimised shift) is rescaled to
 * a reference norm m taken from the original model, v*' = v* · m / (‖v*‖ + 1e-10), and the edit proceeds
 * with δ' = v*' − v₀. As the reference, a v* longer than `nas_skip_factor` · m (default 2) is dropped
 * (δ' = 0, v* = v₀). Any editor whose target is "current output + δ" switches it on with `nas: true`.
 *
 * The reference norm m: `nas_norm` when given; otherwise the reference's statistic on the model as given,
 * the mean ‖v*‖ of the call's solved value vectors with the top 5% dropped ({@link nasAnchorOf}; ROME,
 * which solves its requests one after another, takes the first request's ‖v*‖). The reference takes that
 * mean over random CounterFact rewrites solved by MEMIT on the original model; a sequential run
 * (src/evaluate/sequential.ts) takes it from its first batch, solved on the unedited model, and passes it
 * as `nas_norm` to every later batch, so later edits anchor to the original model, not to the edited one.
 */
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { readAtPositions, tokenizePrompt } from "./compute.ts";
import type { CommonHparams } from "./hparams.ts";
import type { EditRequest } from "./requests.ts";

/** The reference's epsilon in the rescale's denominator (`scale_vector_to_norm`). */
export const NAS_EPS = 1e-10;

/** What {@link nasRescale} did to one request's shift. */
export interface NasResult {
  /** δ' = v*' − v₀. */
  delta: Float64Array;
  /** ‖v₀ + δ‖ before the rescale. */
  vStarNorm: number;
  /** ‖v₀ + δ'‖ after it. */
  scaledNorm: number;
  /** True when ‖v*‖ > skipFactor · anchor dropped the edit (δ' = 0). */
  skipped: boolean;
}

/**
 * Rescales v* = v0 + delta to norm `anchor` (see the module comment); `skipFactor` 0 never skips. An
 * anchor ≤ 0 or a zero v* leaves δ unchanged (the reference returns v* as it is).
 */
export function nasRescale(
  v0: ArrayLike<number>,
  delta: ArrayLike<number>,
  anchor: number,
  skipFactor = 2,
): NasResult {
  const n = v0.length;
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = v0[i] + delta[i];
  let ss = 0;
  for (let i = 0; i < n; i++) ss += v[i] * v[i];
  const vn = Math.sqrt(ss);
  if (skipFactor > 0 && anchor > 0 && vn > skipFactor * anchor) {
    let s0 = 0;
    for (let i = 0; i < n; i++) s0 += v0[i] * v0[i];
    return { delta: new Float64Array(n), vStarNorm: vn, scaledNorm: Math.sqrt(s0), skipped: true };
  }
  if (!(anchor > 0) || vn + NAS_EPS <= NAS_EPS) {
    return { delta: Float64Array.from(delta), vStarNorm: vn, scaledNorm: vn, skipped: false };
  }
  const f = anchor / (vn + NAS_EPS);
  const out = new Float64Array(n);
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const w = v[i] * f;
    s2 += w * w;
    out[i] = w - v0[i];
  }
  return { delta: out, vStarNorm: vn, scaledNorm: Math.sqrt(s2), skipped: false };
}

/** The NAS hparams every locate-then-edit method accepts (all optional; NAS is off by default). */
export interface NasHparams {
  /** Rescale each solved value vector to the anchor norm (default false). */
  nas?: boolean;
  /** The anchor norm m; absent: {@link nasAnchor} on the model as given. */
  nas_norm?: number;
  /** Drop an edit whose ‖v*‖ exceeds this multiple of m (reference 2; 0: never). */
  nas_skip_factor?: number;
}

/** The reference's upper-trimmed mean: the mean of `xs` without their ⌊0.05·n⌋ largest values. */
export function nasAnchorOf(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  const drop = Math.floor((1 - 0.95) * a.length);
  const kept = drop > 0 ? a.slice(0, a.length - drop) : a;
  return kept.reduce((s, x) => s + x, 0) / kept.length;
}

/**
 * v₀ for each request: the MLP output of `layer` at the fact token of the bare prompt (no context
 * template), on `model` as it is now.
 */
export async function nasValues(
  model: TransformerModel,
  tokenizer: Tokenizer,
  reqs: EditRequest[],
  hp: Pick<CommonHparams, "prefix_eos" | "fact_token">,
  layer: number,
): Promise<Float32Array[]> {
  const bare = reqs.map((req) => {
    const p = tokenizePrompt(
      tokenizer,
      model.config.nPositions,
      "{}",
      req.prompt,
      req.subject,
      undefined,
      hp.prefix_eos,
      hp.fact_token,
    );
    return { ids: p.ids, pos: p.lookup };
  });
  return await readAtPositions(model, bare, `mlp_out.${layer}`);
}

/** The anchor m = mean over `reqs` of ‖v₀‖ ({@link nasValues}) on `model` as given. */
export async function nasAnchor(
  model: TransformerModel,
  tokenizer: Tokenizer,
  reqs: EditRequest[],
  hp: Pick<CommonHparams, "prefix_eos" | "fact_token">,
  layer: number,
): Promise<number> {
  const vs = await nasValues(model, tokenizer, reqs, hp, layer);
  let s = 0;
  for (const v of vs) {
    let q = 0;
    for (let i = 0; i < v.length; i++) q += v[i] * v[i];
    s += Math.sqrt(q);
  }
  return s / vs.length;
}

/** NAS applied to every request of one call: the anchor used and each request's rescale. */
export interface NasShifts {
  anchor: number;
  results: NasResult[];
}

/**
 * The NAS shifts δ' of `reqs` whose optimised shifts at `layer` are `deltas`: v₀ read on `model` as it is
 * now, the anchor `hp.nas_norm` or {@link nasAnchor} of the same values.
 */
export async function nasShifts(
  model: TransformerModel,
  tokenizer: Tokenizer,
  reqs: EditRequest[],
  hp: Pick<CommonHparams, "prefix_eos" | "fact_token"> & NasHparams,
  layer: number,
  deltas: ArrayLike<number>[],
): Promise<NasShifts> {
  const v0 = await nasValues(model, tokenizer, reqs, hp, layer);
  let anchor = hp.nas_norm;
  if (anchor === undefined) {
    anchor = nasAnchorOf(v0.map((v, r) => {
      let q = 0;
      for (let i = 0; i < v.length; i++) q += (v[i] + deltas[r][i]) ** 2;
      return Math.sqrt(q);
    }));
  }
  return { anchor, results: v0.map((v, r) => nasRescale(v, deltas[r], anchor!, hp.nas_skip_factor ?? 2)) };
}

/** The edit info of a NAS call: anchor, norms before and after, skipped requests. */
export function nasInfo(s: NasShifts): Record<string, unknown> {
  return {
    anchor_norm: s.anchor,
    v_star_norms: s.results.map((x) => x.vStarNorm),
    scaled_norms: s.results.map((x) => x.scaledNorm),
    skipped: s.results.flatMap((x, i) => (x.skipped ? [i] : [])),
  };
}
