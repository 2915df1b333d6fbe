/**
 * Float64 twin of the layer loop shared by MEMIT, AlphaEdit and EMMET (EasyEdit `execute_memit`,
 * `execute_AlphaEdit`, `execute_emmet`), written from the reference code independently of src/edit/:
 * z_i = h_L(init) + δ_i per request ({@link optimizeValueRef} at the residual output of the last edited
 * layer L); then for each edited layer, on the model as updated so far, K (keys at `mlp_post.l`, averaged
 * in each template group, then across groups), resid = (Z − H_L) / (n_layers − i) and
 * ΔW_kv = adjoint(K) · resid, stored in the weight's layout; W_l = W_l(original) + ΔW as float32.
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

/** One layer of {@link layeredEditRef}. */
export interface LayeredRefLayer {
  layer: number;
  K: Float64Array[];
  resid: Float64Array[];
  /** The method's adjoint [I, n]. */
  X: Float64Array;
  weight: string;
  /** ΔW in the weight's layout. */
  dW: Float64Array;
  /** ΔW as key→value [I, C]. */
  dKV: Float64Array;
}

/** Options of {@link layeredEditRef}. */
export interface LayeredRefOptions {
  layers: number[];
  groups: string[][];
  hp: ValueHparams;
  bos?: number;
  /** The method's X [I, n] at layer `layer` (position `i`) for keys K. */
  adjoint(i: number, layer: number, K: Float64Array[]): Float64Array;
}

function mean(rows: Float64Array[]): Float64Array {
  const out = new Float64Array(rows[0].length);
  for (const r of rows) for (let i = 0; i < out.length; i++) out[i] += r[i] / rows.length;
  return out;
}

/** The template-averaged keys of `requests` at `layer` on `weights`. */
export function requestKeysRef(
  cfg: ModelConfig,
  weights: WeightMap,
  tok: RefTokenizer,
  requests: RefRequest[],
  groups: string[][],
  layer: number,
  bos?: number,
): Float64Array[] {
  return requests.map((req) =>
    mean(groups.map((g) =>
      mean(g.map((t) => {
        const p = refPrompt(tok, t, req.prompt, req.subject, undefined, bos);
        return sitesAtRef(cfg, weights, p.ids, p.lookup, [`mlp_post.${layer}`])[0];
      }))
    ))
  );
}

/** Runs the loop on a copy of `weights`; returns z, the value results, each layer and the edited weights. */
export function layeredEditRef(
  cfg: ModelConfig,
  weights: WeightMap,
  tok: RefTokenizer,
  requests: RefRequest[],
  opts: LayeredRefOptions,
): { z: Float64Array[]; values: ValueResult[]; layers: LayeredRefLayer[]; weights: WeightMap } {
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
  const layers: LayeredRefLayer[] = [];
  opts.layers.forEach((layer, i) => {
    const K = requestKeysRef(cfg, w, tok, requests, opts.groups, layer, opts.bos);
    const hL = requests.map((req) => {
      const p = refPrompt(tok, "{}", req.prompt, req.subject, undefined, opts.bos);
      return sitesAtRef(cfg, w, p.ids, p.lookup, [`resid_post.${zLayer}`])[0];
    });
    const resid = z.map((zr, r) => zr.map((x, j) => (x - hL[r][j]) / (opts.layers.length - i)));
    const X = opts.adjoint(i, layer, K);
    const dKV = new Float64Array(I * C);
    for (let a = 0; a < I; a++) {
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let r = 0; r < n; r++) s += X[a * n + r] * resid[r][c];
        dKV[a * C + c] = s;
      }
    }
    const proj = editedProjectionRef(cfg, layer);
    const dW = keyValueToLayoutRef(proj, dKV);
    const W0 = weights.get(proj.weight)!;
    w.set(proj.weight, { shape: [...W0.shape], data: Float32Array.from(W0.data, (x, k) => x + dW[k]) });
    layers.push({ layer, K, resid, X, weight: proj.weight, dW, dKV });
  });
  return { z, values, layers, weights: w };
}
