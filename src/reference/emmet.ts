/**
 * Float64 EMMET (zjunlp/EasyEdit `easyeditor/models/emmet/emmet_main.py`, commit
 * 14cea8245f06715684592ab55184939b99d70784), independent of src/edit/: the MEMIT layer loop
 * ({@link layeredEditRef}) with, per layer, the literal inverses of the reference code:
 *   C' = w·C + μ·I, C_inv = C'⁻¹, D = Kᵀ C_inv K + λ_E·I, adj_k = (D⁻¹ Kᵀ C_inv)ᵀ, ΔW = resid · adj_kᵀ.
 */
import type { ModelConfig, WeightMap } from "../model/config.ts";
import type { RefRequest, RefTokenizer, ValueHparams } from "./edit_value.ts";
import { layeredEditRef } from "./layered_edit.ts";
import { solveRef } from "./solve.ts";

/** Options of {@link emmetRef}. */
export interface EmmetRefOptions {
  layers: number[];
  groups: string[][];
  /** C = E[kkᵀ] per edited layer. */
  mom2: Map<number, Float64Array>;
  /** w (mom2_update_weight), μ (update_norm_lambda), λ_E (emmet_lambda). */
  mom2UpdateWeight: number;
  updateNormLambda: number;
  emmetLambda: number;
  hp: ValueHparams;
  bos?: number;
}

function identity(n: number): Float64Array {
  const e = new Float64Array(n * n);
  for (let i = 0; i < n; i++) e[i * n + i] = 1;
  return e;
}

/** EMMET's adj_k [I, n] for keys K with covariance `mom2` (the reference's inverses, by Gaussian elimination). */
export function emmetAdjointRef(
  K: Float64Array[],
  mom2: Float64Array,
  I: number,
  o: Pick<EmmetRefOptions, "mom2UpdateWeight" | "updateNormLambda" | "emmetLambda">,
): Float64Array {
  const n = K.length;
  const Cp = Float64Array.from(mom2, (x) => o.mom2UpdateWeight * x);
  for (let a = 0; a < I; a++) Cp[a * I + a] += o.updateNormLambda;
  const Cinv = solveRef(Cp, identity(I), I, I);
  const CinvK = new Float64Array(I * n);
  for (let a = 0; a < I; a++) {
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let b = 0; b < I; b++) s += Cinv[a * I + b] * K[r][b];
      CinvK[a * n + r] = s;
    }
  }
  const D = new Float64Array(n * n);
  for (let r = 0; r < n; r++) {
    for (let s = 0; s < n; s++) {
      let acc = 0;
      for (let a = 0; a < I; a++) acc += K[r][a] * CinvK[a * n + s];
      D[r * n + s] = acc + (r === s ? o.emmetLambda : 0);
    }
  }
  const Dinv = solveRef(D, identity(n), n, n);
  // adj_k = (D⁻¹ Kᵀ C_inv)ᵀ = C_invᵀ K D⁻ᵀ; C_inv and D are symmetric up to rounding, kept literal here.
  const adj = new Float64Array(I * n);
  for (let a = 0; a < I; a++) {
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let q = 0; q < n; q++) {
        let kc = 0; // (Kᵀ C_inv)[q, a]
        for (let b = 0; b < I; b++) kc += K[q][b] * Cinv[b * I + a];
        s += Dinv[r * n + q] * kc;
      }
      adj[a * n + r] = s;
    }
  }
  return adj;
}

/** Runs float64 EMMET on all `requests` at once, on a copy of `weights`. */
export function emmetRef(
  cfg: ModelConfig,
  weights: WeightMap,
  tok: RefTokenizer,
  requests: RefRequest[],
  opts: EmmetRefOptions,
) {
  return layeredEditRef(cfg, weights, tok, requests, {
    layers: opts.layers,
    groups: opts.groups,
    hp: opts.hp,
    bos: opts.bos,
    adjoint: (_i, layer, K) => emmetAdjointRef(K, opts.mom2.get(layer)!, cfg.nInner, opts),
  });
}
