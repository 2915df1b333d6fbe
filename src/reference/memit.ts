/**
 * End-to-end float64 MEMIT (kmeng01/memit `memit_main.py` `execute_memit`, `compute_ks.py`,
 * `compute_z.py`), written from the reference code, independently of src/edit/.
 *   1. z_i = h_L(init) + δ_i, one optimisation per request ({@link optimizeValueRef} at the residual
 *      output of the last edited layer L, templates flattened).
 *   2. For layers l_0 < … < l_{n−1}, in order, on the model as updated so far:
 *      K  = keys at l_i (input of the MLP output projection, hook `mlp_post.l_i`, at the subject's last
 *           token), averaged within each template group, then across groups;
 *      R  = Z − H_L, H_L = the residual leaving block L at the bare prompts' subject tokens, recomputed;
 *      ΔW = resid · [(λC + KKᵀ)⁻¹ K]ᵀ with resid = R / (n − i): [nEmbd, nInner], the layout of an
 *           nn.Linear weight; transposed to [nInner, nEmbd] for GPT-2's Conv1D (`upd_matrix_match_shape`);
 *      W_l = W_l(original) + ΔW.
 * Any family: the forward is {@link transformerForwardRef}, the edited weights the family's `down`
 * projections.
 * C per layer is given (the reference reads it from its statistics cache, which holds the unedited
 * model's statistics). The edited weights are stored as float32, as the model's are.
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

/** Options of {@link memitRef}. */
export interface MemitRefOptions {
  /** Edited layers, strictly increasing; z is optimised at the last. */
  layers: number[];
  /** Context template groups (`[["{}"], [...]]`). */
  groups: string[][];
  /** C = E[kkᵀ] per edited layer, [nInner, nInner]. */
  mom2: Map<number, Float64Array>;
  /** λ (mom2_update_weight). */
  lambda: number;
  hp: ValueHparams;
  /** Token prepended to every prompt (engram's prefix option); the reference prepends none. */
  bos?: number;
}

/** One layer's update. */
export interface MemitRefLayer {
  layer: number;
  /** Keys per request [n][nInner]. */
  K: Float64Array[];
  /** h_L per request before this layer's update [n][nEmbd]. */
  hL: Float64Array[];
  /** resid = (Z − H_L) / (n_layers − i), per request [n][nEmbd]. */
  resid: Float64Array[];
  /** (λC + KKᵀ)⁻¹ K, [nInner, n] row-major. */
  X: Float64Array;
  /** Name of the edited weight (the family's MLP output projection of `layer`). */
  weight: string;
  /** ΔW in the weight's storage layout ([nInner, nEmbd] Conv1D, [nEmbd, nInner] Linear). */
  dW: Float64Array;
}

/** Result of {@link memitRef}. */
export interface MemitRefResult {
  z: Float64Array[];
  values: ValueResult[];
  layers: MemitRefLayer[];
  /** The edited weights (a copy). */
  weights: WeightMap;
}

function siteAt(
  cfg: ModelConfig,
  weights: WeightMap,
  ids: number[],
  pos: number,
  site: string,
): Float64Array {
  return sitesAtRef(cfg, weights, ids, pos, [site])[0];
}

function mean(rows: Float64Array[]): Float64Array {
  const out = new Float64Array(rows[0].length);
  for (const r of rows) for (let i = 0; i < out.length; i++) out[i] += r[i] / rows.length;
  return out;
}

/** Runs float64 MEMIT on all `requests` at once, on a copy of `weights`. */
export function memitRef(
  cfg: ModelConfig,
  weights: WeightMap,
  tok: RefTokenizer,
  requests: RefRequest[],
  opts: MemitRefOptions,
): MemitRefResult {
  const I = cfg.nInner, C = cfg.nEmbd, n = requests.length;
  const zLayer = opts.layers[opts.layers.length - 1];
  const flat = opts.groups.flat();
  const values = requests.map((req) =>
    optimizeValueRef(
      valueSetupRef(cfg, weights, tok, req, flat, { kind: "resid_post", layer: zLayer }, opts.bos),
      opts.hp,
    )
  );
  const z = values.map((v) => v.targetInit.map((x, j) => x + v.delta[j]));
  const w = new Map(weights);
  const layers: MemitRefLayer[] = [];
  opts.layers.forEach((layer, i) => {
    const K = requests.map((req) =>
      mean(opts.groups.map((g) =>
        mean(g.map((t) => {
          const p = refPrompt(tok, t, req.prompt, req.subject, undefined, opts.bos);
          return siteAt(cfg, w, p.ids, p.lookup, `mlp_post.${layer}`);
        }))
      ))
    );
    const hL = requests.map((req) => {
      const p = refPrompt(tok, "{}", req.prompt, req.subject, undefined, opts.bos);
      return siteAt(cfg, w, p.ids, p.lookup, `resid_post.${zLayer}`);
    });
    const resid = z.map((zr, r) => zr.map((x, j) => (x - hL[r][j]) / (opts.layers.length - i)));
    const mom2 = opts.mom2.get(layer)!;
    const A = Float64Array.from(mom2, (x) => opts.lambda * x);
    const Kc = new Float64Array(I * n);
    for (let r = 0; r < n; r++) {
      for (let a = 0; a < I; a++) {
        Kc[a * n + r] = K[r][a];
        for (let b = 0; b < I; b++) A[a * I + b] += K[r][a] * K[r][b];
      }
    }
    const adj = solveRef(A, Kc, I, n); // [I, n]
    const dKV = new Float64Array(I * C); // key→value [I, C]
    for (let a = 0; a < I; a++) {
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let r = 0; r < n; r++) s += adj[a * n + r] * resid[r][c];
        dKV[a * C + c] = s;
      }
    }
    const proj = editedProjectionRef(cfg, layer);
    const dW = keyValueToLayoutRef(proj, dKV);
    const W0 = weights.get(proj.weight)!;
    w.set(proj.weight, { shape: [...W0.shape], data: Float32Array.from(W0.data, (x, k) => x + dW[k]) });
    layers.push({ layer, K, hL, resid, X: adj, weight: proj.weight, dW });
  });
  return { z, values, layers, weights: w };
}
