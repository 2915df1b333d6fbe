/**
 * AlphaEdit (Fang et al., ICLR 2025; zjunlp/EasyEdit `easyeditor/models/alphaedit/AlphaEdit_main.py`,
 * commit 14cea8245f06715684592ab55184939b99d70784): MEMIT with the update projected onto the null space of
 * the preserved knowledge. MEMIT's pipeline (src/edit/kv_layers.ts) with, at each edited layer,
 *   P = projection onto the eigenvectors of C = E[kkᵀ] with |eigenvalue| < τ (`nullspace_threshold`;
 *       EasyEdit: singular values of the covariance below τ, `get_project`), from the unedited model;
 *   Δᵀ = solve(P (K_p K_pᵀ + K Kᵀ) + α I, P K residᵀ)   (α = `L2`; no λC term),
 * K_p K_pᵀ the accumulated keys of earlier edits. After every edit the requests' keys at each layer, read
 * on the model with all of this edit's layers updated, are added to K_p K_pᵀ (as EasyEdit's `cache_c`).
 *
 * The solve is done in the null-space basis U (rows [r, I], P = UᵀU): X = Uᵀ (U M Uᵀ + α I_r)⁻¹ U K with
 * M = K_p K_pᵀ + K Kᵀ, which is exactly EasyEdit's solve (the solution of (PM + αI) X = PK lies in the
 * range of P, where the system is U M Uᵀ + αI) and is symmetric positive definite for α > 0.
 *
 * State: {@link alphaEditCompute} takes and returns an {@link AlphaEditState} (the basis per layer and
 * K_p K_pᵀ). The registered editor ({@link alphaEditEditor}) resumes a model's state only when the model's
 * edited weights are bit for bit what applying its previous AlphaEdit deltas produced, so a restored
 * model, another model or an independent edit always starts fresh (EasyEdit#613 leaked this state).
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { addDelta, type EditDeltas, type EditOptions } from "./apply.ts";
import {
  alphaEditDefaults,
  type AlphaEditHparams,
  EIGEN_GPU_MIN,
  mergeAlphaEditHparams,
} from "./alphaedit_hparams.ts";
import { computeNullSpace, resolveEigenBackend } from "./eigen.ts";
import { cachedNullSpace } from "./projection_cache.ts";
import { type LayerStats, layerStats } from "./stats.ts";
import { checkLayers, checkMemitTemplates } from "./hparams.ts";
import { layeredKvEdit, type LayerSolve, type LayerSolveInput } from "./kv_layers.ts";
import { factorSpd, type SpdOptions } from "./solve_backend.ts";
import { type EditRequest, normalizeRequest } from "./requests.ts";

/** One layer's part of the state. */
export interface AlphaEditLayerState {
  /** Orthonormal null-space basis as rows, [rank, I]: P = UᵀU. */
  basis: Float64Array;
  /** Rows of {@link basis}: how many eigenvalues of C have |eigenvalue| < τ (`nullspace_threshold`). */
  rank: number;
  /** Eigenvalues of C, ascending (what τ was compared with). */
  eigenvalues: Float64Array;
  /** K_p K_pᵀ of every earlier edit's keys at this layer, [I, I]. */
  kpkp: Float64Array;
}

/** What sequential AlphaEdit carries from one edit to the next. */
export interface AlphaEditState {
  /** MLP width and edited layers the state was made for (a resume elsewhere is an error). */
  nInner: number;
  /** The edited layers, in the order of the hparams' `layers`. */
  layers: number[];
  /** τ (`nullspace_threshold`) the bases were computed with; a different τ on resume is an error. */
  nullspaceThreshold: number;
  /** Requests edited so far. */
  edits: number;
  /** Each edited layer's basis and accumulated K_p K_pᵀ, keyed by layer index. */
  perLayer: Map<number, AlphaEditLayerState>;
}

/** Resolves AlphaEdit's hyper-parameters for `model`. */
export function alphaEditHparams(model: TransformerModel, opts: EditOptions): AlphaEditHparams {
  let hp = alphaEditDefaults(model.config);
  if (opts.hparams) hp = mergeAlphaEditHparams(hp, opts.hparams, model.config);
  checkMemitTemplates(hp);
  if (opts.layers) hp = { ...hp, layers: [...opts.layers] };
  checkLayers(hp.layers, model.config);
  if (!hp.mom2_adjustment) {
    throw new InputError("AlphaEdit needs mom2_adjustment (the key covariance)", {
      field: "mom2_adjustment",
    });
  }
  if (hp.key !== "original") {
    throw new InputError(`hparam 'key' applies to ROME only; AlphaEdit has no "${hp.key}" variant`, {
      field: "key",
    });
  }
  return hp;
}

/**
 * AlphaEdit's X [I, n] (row-major; ΔW_kv = X · resid) for keys `K` (n × [I]): the solve of
 * (P(K_pK_pᵀ + KKᵀ) + αI) X = PK in the null-space basis, and the ridge Cholesky needed (0 if none).
 * The SPD r×r solve runs where `spd` says (src/edit/solve_backend.ts; default the float64 host).
 */
export async function alphaEditAdjoint(
  K: ArrayLike<number>[],
  st: Pick<AlphaEditLayerState, "basis" | "rank" | "kpkp">,
  I: number,
  alpha: number,
  hasPrior: boolean,
  spd: SpdOptions = { backend: "host" },
): Promise<{ X: Float64Array; ridge: number; solveInfo: Record<string, unknown> }> {
  const n = K.length, r = st.rank, U = st.basis;
  const X = new Float64Array(I * n);
  if (r === 0) return { X, ridge: 0, solveInfo: {} };
  // UK [r, n]
  const UK = new Float64Array(r * n);
  for (let j = 0; j < r; j++) {
    for (let s = 0; s < n; s++) {
      let acc = 0;
      for (let a = 0; a < I; a++) acc += U[j * I + a] * K[s][a];
      UK[j * n + s] = acc;
    }
  }
  // G = U K_p K_pᵀ Uᵀ + (UK)(UK)ᵀ + α I  [r, r]
  const G = new Float64Array(r * r);
  if (hasPrior) {
    const T = new Float64Array(r * I); // U · K_pK_pᵀ
    for (let j = 0; j < r; j++) {
      const row = T.subarray(j * I, j * I + I);
      for (let a = 0; a < I; a++) {
        const u = U[j * I + a];
        if (u === 0) continue;
        const m = a * I;
        for (let b = 0; b < I; b++) row[b] += u * st.kpkp[m + b];
      }
    }
    for (let j = 0; j < r; j++) {
      for (let k = 0; k <= j; k++) {
        let acc = 0;
        for (let b = 0; b < I; b++) acc += T[j * I + b] * U[k * I + b];
        G[j * r + k] = acc;
      }
    }
  }
  for (let j = 0; j < r; j++) {
    for (let k = 0; k <= j; k++) {
      let acc = 0;
      for (let s = 0; s < n; s++) acc += UK[j * n + s] * UK[k * n + s];
      G[j * r + k] += acc;
      G[k * r + j] = G[j * r + k];
    }
    G[j * r + j] += alpha;
  }
  const ch = await factorSpd(G, r, spd);
  let Y: Float64Array, solveInfo: Record<string, unknown>;
  try {
    Y = await ch.solve(UK, n); // [r, n]
    solveInfo = ch.info();
  } finally {
    ch.destroy();
  }
  for (let a = 0; a < I; a++) {
    for (let s = 0; s < n; s++) {
      let acc = 0;
      for (let j = 0; j < r; j++) acc += U[j * I + a] * Y[j * n + s];
      X[a * n + s] = acc;
    }
  }
  return { X, ridge: ch.lambda, solveInfo };
}

function checkState(state: AlphaEditState, hp: AlphaEditHparams, I: number): void {
  const same = state.nInner === I && state.layers.length === hp.layers.length &&
    state.layers.every((l, i) => l === hp.layers[i]) && state.nullspaceThreshold === hp.nullspace_threshold;
  if (!same) {
    throw new InputError(
      `AlphaEdit state was made for MLP width ${state.nInner}, layers [${state.layers}], τ ${state.nullspaceThreshold}; ` +
        `this edit has width ${I}, layers [${hp.layers}], τ ${hp.nullspace_threshold} (another model or hparams: start a fresh state)`,
      { field: "state" },
    );
  }
}

/** One layer's null space with where it came from (for the result's `layer_updates`). */
interface LayerNullSpace {
  basis: Float64Array;
  rank: number;
  eigenvalues: Float64Array;
  info: Record<string, unknown>;
}

/**
 * The null space of each edited layer from its statistics: read from the projection cache beside the
 * statistics (src/edit/projection_cache.ts, keyed by C's values, τ and the decomposition settings), else
 * decomposed (`eigen_backend`, src/edit/eigen.ts `computeNullSpace`) and cached.
 */
async function layerNullSpaces(
  model: TransformerModel,
  tokenizer: Tokenizer,
  hp: AlphaEditHparams,
  opts: EditOptions,
  warn: (m: string) => void,
): Promise<Map<number, LayerNullSpace>> {
  const I = model.config.nInner;
  const stats: Map<number, LayerStats> = await layerStats(model, tokenizer, hp.layers, {
    corpus: opts.statsCorpus ?? (hp.mom2_dataset || undefined),
    files: opts.stats,
    maxSamples: hp.mom2_n_samples,
    cacheDir: opts.statsDir,
    onProgress: (d, t) => opts.onProgress?.("statistics", d, t),
  });
  const out = new Map<number, LayerNullSpace>();
  const useGpu = resolveEigenBackend(hp.eigen_backend, I, model.gpu, EIGEN_GPU_MIN) === "gpu";
  const method = useGpu
    ? { backend: "gpu", max_sweeps: hp.eigen_max_sweeps, tolerance: hp.eigen_tolerance }
    : { backend: "host" };
  for (const layer of hp.layers) {
    const st = stats.get(layer)!;
    const ns = await cachedNullSpace(
      { layer, mom2: st.mom2, n: I, threshold: hp.nullspace_threshold, method },
      () =>
        computeNullSpace(st.mom2, I, hp.nullspace_threshold, {
          backend: useGpu ? "gpu" : "host",
          gpu: model.gpu,
          maxSweeps: hp.eigen_max_sweeps,
          tol: hp.eigen_tolerance,
          label: `layer ${layer}`,
          warn,
        }),
      opts.statsDir,
    );
    out.set(layer, {
      basis: ns.basis,
      rank: ns.rank,
      eigenvalues: ns.eigenvalues,
      info: {
        statistics: { file: st.file, tokens: st.count, cached: st.cached },
        null_space: { ...ns.info, file: ns.file, cached: ns.cached },
      },
    });
  }
  return out;
}

/**
 * Computes AlphaEdit's updates for all `requests` at once (model unchanged) and the state after them.
 * `state` (from an earlier call on this model, whose deltas were applied) resumes sequential editing:
 * its null-space bases are reused and its K_p K_pᵀ enter the solve; it is not modified. Without it the
 * bases come from the layers' statistics (through the projection cache) and K_p K_pᵀ = 0.
 */
export async function alphaEditCompute(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  opts: EditOptions,
  state?: AlphaEditState,
): Promise<{ computed: EditDeltas; state: AlphaEditState }> {
  const hp = alphaEditHparams(model, opts);
  const reqs = requests.map((r, i) => normalizeRequest(r, `request ${i}`));
  const I = model.config.nInner;
  if (state) checkState(state, hp, I);
  const perLayer = new Map<number, AlphaEditLayerState>();
  // The null spaces are found before the layer loop (it solves synchronously); their warnings lead the
  // result's.
  const early: string[] = [];
  const spaces = state ? undefined : await layerNullSpaces(model, tokenizer, hp, opts, (m) => {
    early.push(m);
    opts.onWarning?.(m);
  });
  const computed = await layeredKvEdit(model, tokenizer, reqs, hp, opts, {
    method: "alphaedit",
    statsLayers: [],
    solve: async ({ layer, K, warn }: LayerSolveInput): Promise<LayerSolve> => {
      let ls = state?.perLayer.get(layer);
      const space = spaces?.get(layer);
      if (!ls) {
        const ns = space!;
        ls = { basis: ns.basis, rank: ns.rank, eigenvalues: ns.eigenvalues, kpkp: new Float64Array(I * I) };
        if (ns.rank === 0) {
          warn(
            `layer ${layer}: no eigenvalue of C is below nullspace_threshold ${hp.nullspace_threshold} (smallest ${
              ns.eigenvalues[0].toExponential(3)
            }): the null space is empty and the update is zero`,
          );
        }
      }
      perLayer.set(layer, { ...ls, kpkp: Float64Array.from(ls.kpkp) });
      const { X, ridge, solveInfo } = await alphaEditAdjoint(K, ls, I, hp.L2, (state?.edits ?? 0) > 0, {
        backend: hp.solve_backend ?? "auto",
        gpu: model.gpu,
        label: `layer ${layer}: U M Uᵀ + αI`,
        columns: K.length,
        warn,
      });
      if (ridge > 0) warn(`layer ${layer}: U M Uᵀ + αI is singular; added ${ridge.toExponential(3)}·I`);
      return {
        X,
        info: {
          ...(space?.info ?? { null_space: { reused: true } }),
          null_space_rank: ls.rank,
          eigenvalue_min: ls.eigenvalues[0],
          eigenvalue_max: ls.eigenvalues[I - 1],
          prior_edits: state?.edits ?? 0,
          regularization_lambda: ridge,
          ...solveInfo,
        },
      };
    },
    afterAll: async (keysAt) => {
      for (const layer of hp.layers) {
        const kk = perLayer.get(layer)!.kpkp;
        for (const k of await keysAt(layer)) {
          for (let a = 0; a < I; a++) {
            const ka = k[a];
            if (ka === 0) continue;
            for (let b = 0; b < I; b++) kk[a * I + b] += ka * k[b];
          }
        }
      }
    },
  });
  computed.warnings.unshift(...early);
  return {
    computed,
    state: {
      nInner: I,
      layers: [...hp.layers],
      nullspaceThreshold: hp.nullspace_threshold,
      edits: (state?.edits ?? 0) + reqs.length,
      perLayer,
    },
  };
}

/** A model's last AlphaEdit state and the fingerprints of the weights its deltas produce when applied. */
interface Session {
  state: AlphaEditState;
  expected: Map<string, number>;
}

const sessions = new WeakMap<TransformerModel, Session>();

/** FNV-1a over the float32 bits: a fingerprint of a weight's exact value. */
function fingerprint(data: Float32Array): number {
  const u = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let h = 2166136261;
  for (let i = 0; i < u.length; i++) h = Math.imul(h ^ u[i], 16777619) >>> 0;
  return h;
}

/** The state to resume on `model`: its session's, when the model holds exactly what that edit wrote. */
function resumable(model: TransformerModel): AlphaEditState | undefined {
  const s = sessions.get(model);
  if (!s) return undefined;
  for (const [name, fp] of s.expected) {
    const w = model.weights.get(name);
    if (!w || fingerprint(w.data) !== fp) {
      sessions.delete(model);
      return undefined;
    }
  }
  return s.state;
}

/** Forgets `model`'s AlphaEdit state: the next edit starts fresh (K_p K_pᵀ = 0, bases recomputed). */
export function resetAlphaEditState(model: TransformerModel): void {
  sessions.delete(model);
}

/**
 * The AlphaEdit editor (`--method alphaedit`). Sequential edits on one model continue its state (see the
 * module comment); anything else starts fresh.
 */
export async function alphaEditEditor(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  opts: EditOptions,
): Promise<EditDeltas> {
  const prior = resumable(model);
  let res;
  try {
    res = await alphaEditCompute(model, tokenizer, requests, opts, prior);
  } catch (e) {
    // Other layers or τ than the state's: an independent edit, not a continuation.
    if (prior && e instanceof InputError && e.field === "state") {
      sessions.delete(model);
      res = await alphaEditCompute(model, tokenizer, requests, opts);
    } else throw e;
  }
  const expected = new Map<string, number>();
  let changes = false;
  for (const [name, d] of res.computed.deltas) {
    const w = model.weights.get(name)!;
    expected.set(name, fingerprint(addDelta(w.data, d.data)));
    changes ||= d.data.some((x) => x !== 0);
  }
  if (changes) sessions.set(model, { state: res.state, expected });
  else sessions.delete(model);
  res.computed.info.prior_edits = prior && res.state.edits > requests.length
    ? res.state.edits - requests.length
    : 0;
  return res.computed;
}
