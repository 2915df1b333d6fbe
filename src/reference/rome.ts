/**
 * End-to-end float64 ROME (kmeng01/rome `rome_main.py`, `compute_u.py`, `compute_v.py`), written from
 * the reference code, independently of src/edit/. Requests are applied one after another, each on the
 * model as already edited (`apply_rome_to_model`); C is computed once, before any edit (the reference
 * caches the inverse second moment per layer).
 *   k*    = mean over the context templates of the input of the MLP output projection (hook
 *           `mlp_post.L`: GPT-2 c_proj, Llama down_proj, NeoX dense_4h_to_h, GPT-J fc_out) at the
 *           subject's last token of `template.format(prompt)`;
 *   u     = C⁻¹ k* / ‖C⁻¹ k*‖ (`torch.inverse(C) @ k`; u = k* / ‖k*‖ without C);
 *   v*    = target_init + δ ({@link optimizeValueRef} at the MLP output of layer L);
 *   right = (v* − W k₀ − b) / (k₀ · u), k₀ and W k₀ + b (b = 0 without a bias) the projection's input
 *           and output at the subject's last token of the bare prompt (hooks `mlp_post.L`, `mlp_out.L`);
 *   ΔW    = u rightᵀ [nInner, nEmbd], stored in the weight's layout (`upd_matrix_match_shape`): as is for
 *           GPT-2's Conv1D [in, out], transposed for an nn.Linear [out, in] weight.
 * Any family: the forward is {@link transformerForwardRef}, the edited weight the family's `down`
 * projection. The edited weights are stored as float32, as the model's are; ΔW itself is kept in float64.
 */
import type { ModelConfig, WeightMap } from "../model/config.ts";
import {
  editedProjectionRef,
  keyValueToLayoutRef,
  optimizeValueRef,
  refPrompt,
  type RefRequest,
  type RefTokenizer,
  sitesAtRef,
  type ValueHparams,
  type ValueResult,
  valueSetupRef,
} from "./edit_value.ts";
import { solveRef } from "./solve.ts";

/** Options of {@link romeRef}. */
export interface RomeRefOptions {
  layer: number;
  /** Context templates (flat list, "{}" first), used for both k* and v*. */
  templates: string[];
  /** C = E[kkᵀ] at `layer`, [nInner, nInner]; omit for mom2_adjustment false. */
  mom2?: Float64Array;
  hp: ValueHparams;
  /** Token prepended to every prompt (engram's prefix option); the reference prepends none. */
  bos?: number;
}

/** Per-request vectors of {@link romeRef}. */
export interface RomeRefStep {
  kStar: Float64Array;
  u: Float64Array;
  k0: Float64Array;
  /** W k₀ + b: the MLP output at the bare prompt's subject token. */
  out0: Float64Array;
  vStar: Float64Array;
  right: Float64Array;
  value: ValueResult;
}

/** Result of {@link romeRef}. */
export interface RomeRefResult {
  /** Name of the edited weight (the family's MLP output projection of `layer`). */
  weight: string;
  /** Total ΔW of {@link weight} in its storage layout ([nInner, nEmbd] Conv1D, [nEmbd, nInner] Linear). */
  dW: Float64Array;
  /** The edited weights (a copy; only the edited tensor differs). */
  weights: WeightMap;
  steps: RomeRefStep[];
}

function mean(rows: Float64Array[]): Float64Array {
  const out = new Float64Array(rows[0].length);
  for (const r of rows) for (let i = 0; i < out.length; i++) out[i] += r[i] / rows.length;
  return out;
}

/** Runs float64 ROME on `requests` sequentially, on a copy of `weights`. */
export function romeRef(
  cfg: ModelConfig,
  weights: WeightMap,
  tok: RefTokenizer,
  requests: RefRequest[],
  opts: RomeRefOptions,
): RomeRefResult {
  const { layer, templates } = opts;
  const I = cfg.nInner, C = cfg.nEmbd;
  const proj = editedProjectionRef(cfg, layer);
  const name = proj.weight;
  const w = new Map(weights);
  const W0 = weights.get(name)!;
  const dKV = new Float64Array(I * C); // Σ u rightᵀ, key→value [I, C]
  let dW: Float64Array = dKV;
  const steps: RomeRefStep[] = [];
  for (const req of requests) {
    const keys = templates.map((t) => {
      const p = refPrompt(tok, t, req.prompt, req.subject, undefined, opts.bos);
      return sitesAtRef(cfg, w, p.ids, p.lookup, [`mlp_post.${layer}`])[0];
    });
    const kStar = mean(keys);
    let u = opts.mom2 ? solveRef(opts.mom2, kStar, I, 1) : Float64Array.from(kStar);
    const un = Math.hypot(...u);
    u = u.map((x) => x / un);
    const setup = valueSetupRef(cfg, w, tok, req, templates, { kind: "mlp_out", layer }, opts.bos);
    const value = optimizeValueRef(setup, opts.hp);
    const vStar = value.targetInit.map((x, j) => x + value.delta[j]);
    const bare = refPrompt(tok, "{}", req.prompt, req.subject, undefined, opts.bos);
    const [k0, out0] = sitesAtRef(cfg, w, bare.ids, bare.lookup, [`mlp_post.${layer}`, `mlp_out.${layer}`]);
    let den = 0;
    for (let a = 0; a < I; a++) den += k0[a] * u[a];
    const right = vStar.map((x, j) => (x - out0[j]) / den);
    for (let a = 0; a < I; a++) for (let c = 0; c < C; c++) dKV[a * C + c] += u[a] * right[c];
    dW = keyValueToLayoutRef(proj, dKV);
    w.set(name, { shape: [...W0.shape], data: Float32Array.from(W0.data, (x, i) => x + dW[i]) });
    steps.push({ kStar, u, k0, out0, vStar, right, value });
  }
  return { weight: name, dW, weights: w, steps };
}
