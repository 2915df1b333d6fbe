/**
 * EMMET (Gupta et al. 2024, "A unified framework for model editing"; zjunlp/EasyEdit
 * `easyeditor/models/emmet/emmet_main.py`, commit 14cea8245f06715684592ab55184939b99d70784): batched ROME
 * under equality constraints. MEMIT's pipeline (z at the last edited layer, keys averaged over template
 * groups, the residual split over the layers: src/edit/kv_layers.ts) with, at each layer,
 *   A = w·C + μ·I  (w = mom2_update_weight, μ = update_norm_lambda),
 *   D = Kᵀ A⁻¹ K + λ_E·I  (λ_E = emmet_lambda, [n, n]),
 *   ΔW = resid · (A⁻¹ K D⁻¹)ᵀ   (key→value: ΔW_kv = A⁻¹ K D⁻¹ · resid).
 * So ΔW k_j = (resid (I − λ_E D⁻¹))_j: with λ_E = 0 every edited key gets exactly its residual added
 * (W' k_j = W k_j + r_j), the equality constraints of the method; λ_E > 0 relaxes them.
 * The solves are float64 Cholesky (A and D are symmetric positive definite; A on the GPU with
 * `solve_backend`, src/edit/solve_backend.ts); EasyEdit inverts A and D
 * with torch.inverse (falling back to a pseudo-inverse for D); engram adds a reported ridge instead.
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import type { EditDeltas, EditOptions } from "./apply.ts";
import { emmetDefaults, type EmmetHparams, mergeEmmetHparams } from "./emmet_hparams.ts";
import { checkLayers, checkMemitTemplates } from "./hparams.ts";
import { layeredKvEdit, type LayerSolve, type LayerSolveInput } from "./kv_layers.ts";
import { choleskyRegularized, choleskySolve } from "./linalg.ts";
import { factorSpd, type SpdOptions } from "./solve_backend.ts";
import { type EditRequest, normalizeRequest } from "./requests.ts";

/** Resolves EMMET's hyper-parameters for `model`. */
export function emmetHparams(model: TransformerModel, opts: EditOptions): EmmetHparams {
  let hp = emmetDefaults(model.config);
  if (opts.hparams) hp = mergeEmmetHparams(hp, opts.hparams, model.config);
  checkMemitTemplates(hp);
  if (opts.layers) hp = { ...hp, layers: [...opts.layers] };
  checkLayers(hp.layers, model.config);
  if (!hp.mom2_adjustment) {
    throw new InputError("EMMET needs mom2_adjustment (the key covariance)", { field: "mom2_adjustment" });
  }
  if (hp.key !== "original") {
    throw new InputError(`hparam 'key' applies to ROME only; EMMET has no "${hp.key}" variant`, {
      field: "key",
    });
  }
  return hp;
}

/**
 * EMMET's X = A⁻¹ K D⁻¹ [I, n] (row-major) for keys `K` (n × [I]) and statistics `mom2` [I, I], with the
 * ridges it needed (0 when none) and D's diagonal (how strongly λ_E relaxes each constraint). A's solve
 * runs where `spd` says (src/edit/solve_backend.ts; default: the float64 host, as before the option); D
 * ([n, n], small) is always solved on the host. `solveInfo` is the A solve's backend details.
 */
export async function emmetAdjoint(
  K: ArrayLike<number>[],
  mom2: Float64Array,
  I: number,
  hp: Pick<EmmetHparams, "mom2_update_weight" | "update_norm_lambda" | "emmet_lambda">,
  spd: SpdOptions = { backend: "host" },
): Promise<
  { X: Float64Array; ridgeA: number; ridgeD: number; dDiag: number[]; solveInfo: Record<string, unknown> }
> {
  const n = K.length;
  const A = new Float64Array(I * I);
  for (let a = 0; a < I * I; a++) A[a] = hp.mom2_update_weight * mom2[a];
  for (let a = 0; a < I; a++) A[a * I + a] += hp.update_norm_lambda;
  const chA = await factorSpd(A, I, spd);
  const Kc = new Float64Array(I * n);
  for (let r = 0; r < n; r++) for (let a = 0; a < I; a++) Kc[a * n + r] = K[r][a];
  let Y: Float64Array, solveInfo: Record<string, unknown>;
  try {
    Y = await chA.solve(Kc, n); // A⁻¹K [I, n]
    solveInfo = chA.info();
  } finally {
    chA.destroy();
  }
  const D = new Float64Array(n * n);
  for (let r = 0; r < n; r++) {
    for (let s = 0; s < n; s++) {
      let acc = 0;
      for (let a = 0; a < I; a++) acc += K[r][a] * Y[a * n + s];
      D[r * n + s] = acc;
    }
  }
  // Symmetrise (KᵀA⁻¹K is symmetric; rounding makes it only nearly so) and add λ_E.
  for (let r = 0; r < n; r++) {
    for (let s = 0; s < r; s++) D[r * n + s] = D[s * n + r] = (D[r * n + s] + D[s * n + r]) / 2;
    D[r * n + r] += hp.emmet_lambda;
  }
  const dDiag = Array.from({ length: n }, (_, r) => D[r * n + r]);
  const chD = choleskyRegularized(D, n);
  const Yt = new Float64Array(n * I);
  for (let a = 0; a < I; a++) for (let r = 0; r < n; r++) Yt[r * I + a] = Y[a * n + r];
  const Xt = choleskySolve(chD, Yt, I); // D⁻¹ Yᵀ = (Y D⁻¹)ᵀ, [n, I]
  const X = new Float64Array(I * n);
  for (let a = 0; a < I; a++) for (let r = 0; r < n; r++) X[a * n + r] = Xt[r * I + a];
  return { X, ridgeA: chA.lambda, ridgeD: chD.lambda, dDiag, solveInfo };
}

/** Computes EMMET's updates for all `requests` at once; `model` is left unchanged. */
export async function emmetEditor(
  model: TransformerModel,
  tokenizer: Tokenizer,
  requests: EditRequest[],
  opts: EditOptions,
): Promise<EditDeltas> {
  const hp = emmetHparams(model, opts);
  const reqs = requests.map((r, i) => normalizeRequest(r, `request ${i}`));
  const I = model.config.nInner;
  return await layeredKvEdit(model, tokenizer, reqs, hp, opts, {
    method: "emmet",
    statsLayers: hp.layers,
    solve: async ({ layer, K, stats, warn }: LayerSolveInput): Promise<LayerSolve> => {
      const { X, ridgeA, ridgeD, dDiag, solveInfo } = await emmetAdjoint(K, stats!.mom2, I, hp, {
        backend: hp.solve_backend ?? "auto",
        gpu: model.gpu,
        label: `layer ${layer}: w·C + μI`,
        columns: K.length,
        warn,
      });
      if (ridgeA > 0) {
        warn(
          `layer ${layer}: w·C + μI is singular or not positive definite; added ${ridgeA.toExponential(3)}·I`,
        );
      }
      if (ridgeD > 0) {
        warn(`layer ${layer}: D = KᵀC⁻¹K + λ_E·I is singular; added ${ridgeD.toExponential(3)}·I`);
      }
      return {
        X,
        info: {
          regularization_lambda: ridgeA,
          d_regularization_lambda: ridgeD,
          d_diagonal: dDiag,
          ...solveInfo,
        },
      };
    },
  });
}
