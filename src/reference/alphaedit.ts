/**
 * Float64 AlphaEdit (zjunlp/EasyEdit `easyeditor/models/alphaedit/AlphaEdit_main.py`, commit
 * 14cea8245f06715684592ab55184939b99d70784), independent of src/edit/: the MEMIT layer loop
 * ({@link layeredEditRef}) with, per layer, the reference's literal solve
 *   Δᵀ = solve(P (K_p K_pᵀ + K Kᵀ) + α I, P K residᵀ)
 * (dense P, Gaussian elimination), P = Σ u uᵀ over the eigenvectors u of C with |eigenvalue| < τ, found
 * by cyclic Jacobi rotations ({@link jacobiEigenRef}); after the edit, the requests' keys on the fully
 * edited model are added to K_p K_pᵀ (EasyEdit's `cache_c`).
 */
import type { ModelConfig, WeightMap } from "../model/config.ts";
import type { RefRequest, RefTokenizer, ValueHparams } from "./edit_value.ts";
import { layeredEditRef, requestKeysRef } from "./layered_edit.ts";
import { solveRef } from "./solve.ts";

/**
 * Eigenvalues and eigenvectors of the symmetric `a` [n, n] by cyclic Jacobi rotations (until the
 * off-diagonal mass is below 1e-26 of the total). Returns values (unsorted) and vectors as columns of V.
 */
export function jacobiEigenRef(a: ArrayLike<number>, n: number): { values: Float64Array; V: Float64Array } {
  const A = Float64Array.from(a);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  let total = 0;
  for (let i = 0; i < n * n; i++) total += A[i] * A[i];
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += 2 * A[p * n + q] ** 2;
    if (off <= 1e-26 * total) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (apq === 0) continue;
        const theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) { // columns p, q of A
          const akp = A[k * n + p], akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) { // rows p, q of A
          const apk = A[p * n + k], aqk = A[q * n + k];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p], vkq = V[k * n + q];
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: n }, (_, i) => A[i * n + i]), V };
}

/** AlphaEdit's P [n, n] for covariance `c`: the projection onto the eigenvectors with |eigenvalue| < τ. */
export function nullSpaceProjectionRef(
  c: ArrayLike<number>,
  n: number,
  tau: number,
): { P: Float64Array; rank: number } {
  const { values, V } = jacobiEigenRef(c, n);
  const P = new Float64Array(n * n);
  let rank = 0;
  for (let j = 0; j < n; j++) {
    if (!(Math.abs(values[j]) < tau)) continue;
    rank++;
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) P[a * n + b] += V[a * n + j] * V[b * n + j];
  }
  return { P, rank };
}

/** What sequential AlphaEdit carries, per layer: P and K_p K_pᵀ. */
export type AlphaEditRefState = Map<number, { P: Float64Array; kpkp: Float64Array }>;

/** Options of {@link alphaEditRef}. */
export interface AlphaEditRefOptions {
  layers: number[];
  groups: string[][];
  /** C per edited layer (used only when `state` has no P for the layer). */
  mom2: Map<number, Float64Array>;
  tau: number;
  alpha: number;
  hp: ValueHparams;
  bos?: number;
  /** The state after earlier edits (absent: a fresh one). */
  state?: AlphaEditRefState;
}

/** Runs float64 AlphaEdit on all `requests` at once, on a copy of `weights`; returns the new state too. */
export function alphaEditRef(
  cfg: ModelConfig,
  weights: WeightMap,
  tok: RefTokenizer,
  requests: RefRequest[],
  opts: AlphaEditRefOptions,
) {
  const I = cfg.nInner, n = requests.length;
  const state: AlphaEditRefState = new Map();
  for (const l of opts.layers) {
    const prev = opts.state?.get(l);
    state.set(l, {
      P: prev?.P ?? nullSpaceProjectionRef(opts.mom2.get(l)!, I, opts.tau).P,
      kpkp: prev ? Float64Array.from(prev.kpkp) : new Float64Array(I * I),
    });
  }
  const res = layeredEditRef(cfg, weights, tok, requests, {
    layers: opts.layers,
    groups: opts.groups,
    hp: opts.hp,
    bos: opts.bos,
    adjoint: (_i, layer, K) => {
      const { P, kpkp } = state.get(layer)!;
      const M = Float64Array.from(kpkp);
      for (const k of K) for (let a = 0; a < I; a++) for (let b = 0; b < I; b++) M[a * I + b] += k[a] * k[b];
      const A = new Float64Array(I * I), B = new Float64Array(I * n);
      for (let a = 0; a < I; a++) {
        for (let b = 0; b < I; b++) {
          let s = 0;
          for (let q = 0; q < I; q++) s += P[a * I + q] * M[q * I + b];
          A[a * I + b] = s + (a === b ? opts.alpha : 0);
        }
        for (let r = 0; r < n; r++) {
          let s = 0;
          for (let q = 0; q < I; q++) s += P[a * I + q] * K[r][q];
          B[a * n + r] = s;
        }
      }
      return solveRef(A, B, I, n);
    },
  });
  // cache_c += K Kᵀ with the keys of the fully edited model (before the reference restores the weights).
  for (const l of opts.layers) {
    const kk = state.get(l)!.kpkp;
    for (const k of requestKeysRef(cfg, res.weights, tok, requests, opts.groups, l, opts.bos)) {
      for (let a = 0; a < I; a++) for (let b = 0; b < I; b++) kk[a * I + b] += k[a] * k[b];
    }
  }
  return { ...res, state };
}
