/**
 * AlphaEdit's hyper-parameters (zjunlp/EasyEdit `easyeditor/models/alphaedit/AlphaEdit_hparams.py` and
 * `hparams/AlphaEdit/*.yaml`, commit 14cea8245f06715684592ab55184939b99d70784): MEMIT's fields plus
 * `nullspace_threshold` (τ: eigenvectors of C with |eigenvalue| < τ span the null space the update is
 * projected onto) and `L2` (α, the ridge of the solve). `mom2_update_weight` is read from the files but
 * unused: AlphaEdit has no λC term.
 */
import type { ModelConfig } from "../model/config.ts";
import { type CommonHparams, MEMIT_GPT2_XL, memitDefaults, mergeHparams, publishedModel } from "./hparams.ts";
import { ALPHAEDIT_EXTRA, type ALPHAEDIT_HPARAMS } from "../schema/hparams.ts";
import type { z } from "../schema/zod.ts";
import { sameType } from "../schema/same_type.ts";

/** AlphaEdit hyper-parameters: MEMIT's and the two of the null-space projection. */
export interface AlphaEditHparams extends CommonHparams {
  /** τ: the null space is spanned by the eigenvectors of C whose |eigenvalue| is below it (absolute). */
  nullspace_threshold: number;
  /** α: Δᵀ = solve(P (K_p K_pᵀ + K Kᵀ) + α I, P K Rᵀ). */
  L2: number;
  /**
   * engram's own: where C's eigendecomposition runs. "host": float64 Householder + QL (src/edit/eigen.ts);
   * "gpu": float32 parallel Jacobi (src/gpu/jacobi_eigen.ts; EasyEdit's `torch.linalg.svd` runs at
   * cov's float32 too), falling back to the host when it does not converge or does not fit one binding;
   * "auto" (default): the GPU from {@link EIGEN_GPU_MIN} keys up on a hardware GPU, the host below and on
   * CPU adapters such as llvmpipe (src/edit/eigen.ts `resolveEigenBackend`).
   */
  eigen_backend: "auto" | "gpu" | "host";
  /** engram's own: Jacobi sweeps at most before falling back to the host (default 40). */
  eigen_max_sweeps: number;
  /** engram's own: Jacobi stops at off-diagonal norm ≤ eigen_tolerance · ‖C‖_F (default 2e-6). */
  eigen_tolerance: number;
}
// The zod schema validates this type's files; the interface is what the public API shows (deno doc
// cannot document a z.infer alias): the two must stay the same type.
sameType<AlphaEditHparams, z.infer<typeof ALPHAEDIT_HPARAMS>>(true);

/** MLP widths from which `eigen_backend: "auto"` decomposes C on the GPU. */
export const EIGEN_GPU_MIN = 512;

/** engram's defaults of the eigendecomposition fields (not in EasyEdit's files). */
const EIGEN_DEFAULTS = { eigen_backend: "auto", eigen_max_sweeps: 40, eigen_tolerance: 2e-6 } as const;

/** Values every published AlphaEdit file shares. */
const COMMON: Partial<AlphaEditHparams> = {
  fact_token: "subject_last",
  kl_factor: 0.0625,
  mom2_adjustment: true,
  mom2_dataset: "wikipedia",
  mom2_n_samples: 100000,
  mom2_dtype: "float32",
  nullspace_threshold: 2e-2,
  context_template_length_params: [[10, 5]],
};

/**
 * The method fields of EasyEdit's AlphaEdit files, by engram's published-model name
 * (src/edit/hparams.ts `PUBLISHED_MODELS`). Llama-3-8B is `llama3-8b.yaml` (L2 1); EasyEdit's
 * `llama3.1-8b.yaml` has the same shape and differs only in L2 (10), so engram cannot tell the two
 * checkpoints apart and takes the Llama-3 file.
 */
export const ALPHAEDIT_FILES: Readonly<Record<string, Readonly<Partial<AlphaEditHparams>>>> = {
  "gpt2-xl": {
    ...COMMON,
    layers: [13, 14, 15, 16, 17],
    clamp_norm_factor: 0.75,
    v_num_grad_steps: 20,
    v_lr: 0.5,
    v_loss_layer: 47,
    v_weight_decay: 0.5,
    mom2_update_weight: 20000,
    L2: 10,
  },
  "EleutherAI/gpt-j-6B": {
    ...COMMON,
    layers: [3, 4, 5, 6, 7, 8],
    clamp_norm_factor: 0.75,
    v_num_grad_steps: 25,
    v_lr: 0.5,
    v_loss_layer: 27,
    v_weight_decay: 0.5,
    mom2_update_weight: 15000,
    L2: 10,
  },
  "meta-llama/Meta-Llama-3-8B": {
    ...COMMON,
    layers: [4, 5, 6, 7, 8],
    clamp_norm_factor: 0.75,
    v_num_grad_steps: 25,
    v_lr: 0.1,
    v_loss_layer: 31,
    v_weight_decay: 0.5,
    mom2_update_weight: 15000,
    L2: 1,
  },
  "Qwen/Qwen2.5-7B": {
    ...COMMON,
    layers: [4, 5, 6, 7, 8],
    clamp_norm_factor: 4,
    v_num_grad_steps: 25,
    v_lr: 0.5,
    v_loss_layer: 27,
    v_weight_decay: 1e-3,
    mom2_update_weight: 15000,
    L2: 1,
  },
};

/** AlphaEdit at gpt2-xl (EasyEdit `hparams/AlphaEdit/gpt2-xl.yaml`; engram's own fields as MEMIT's). */
export const ALPHAEDIT_GPT2_XL: AlphaEditHparams = structuredClone({
  ...MEMIT_GPT2_XL,
  ...ALPHAEDIT_FILES["gpt2-xl"],
  ...EIGEN_DEFAULTS,
}) as AlphaEditHparams;

/**
 * AlphaEdit defaults for `cfg`: the published file at a model EasyEdit has one for
 * ({@link ALPHAEDIT_FILES}); elsewhere MEMIT's defaults for the model (its published file, or gpt2-xl's
 * scaled: src/edit/hparams.ts `memitDefaults`) with gpt2-xl's τ = 2e-2 and α = 10, unscaled: EasyEdit uses
 * τ = 2e-2 at every model, and α weighs ‖ΔP‖² against squared key norms whose scale no width rule fixes.
 */
export function alphaEditDefaults(cfg: ModelConfig): AlphaEditHparams {
  const pub = publishedModel(cfg);
  if (pub && ALPHAEDIT_FILES[pub]) return structuredClone({ ...ALPHAEDIT_GPT2_XL, ...ALPHAEDIT_FILES[pub] });
  return {
    ...memitDefaults(cfg),
    nullspace_threshold: ALPHAEDIT_GPT2_XL.nullspace_threshold,
    L2: ALPHAEDIT_GPT2_XL.L2,
    ...EIGEN_DEFAULTS,
  };
}

/**
 * Merges AlphaEdit overrides (EasyEdit's YAML keys) into `base`; unknown keys are errors. EasyEdit's
 * `P_loc` (where its projection is saved) is accepted and ignored: engram computes P from the statistics
 * and keeps it in the edit state (src/edit/alphaedit.ts).
 */
export function mergeAlphaEditHparams(
  base: AlphaEditHparams,
  over: unknown,
  cfg: ModelConfig,
  file?: string,
): AlphaEditHparams {
  let o = over;
  if (typeof over === "object" && over !== null && !Array.isArray(over) && Object.hasOwn(over, "P_loc")) {
    const { P_loc: _ignored, ...rest } = over as Record<string, unknown>;
    o = rest;
  }
  return mergeHparams(base, o, cfg, file, ALPHAEDIT_EXTRA);
}
