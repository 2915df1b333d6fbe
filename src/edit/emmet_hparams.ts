/**
 * EMMET's hyper-parameters (zjunlp/EasyEdit `easyeditor/models/emmet/emmet_hparams.py` and
 * `hparams/EMMET/*.yaml`, commit 14cea8245f06715684592ab55184939b99d70784): MEMIT's fields plus
 * `emmet_lambda` (the ridge on D = Kᵀ C⁻¹ K, default 0.1) and `update_norm_lambda` (added to the
 * weighted covariance, default 0). `mom2_update_weight` w scales C before it is inverted.
 */
import type { ModelConfig } from "../model/config.ts";
import {
  type CommonHparams,
  defaultRomeLayer,
  MEMIT_GPT2_XL,
  memitDefaults,
  mergeHparams,
  publishedModel,
} from "./hparams.ts";
import { EMMET_EXTRA, type EMMET_HPARAMS } from "../schema/hparams.ts";
import type { z } from "../schema/zod.ts";
import { sameType } from "../schema/same_type.ts";

/** EMMET hyper-parameters. */
export interface EmmetHparams extends CommonHparams {
  /** λ_E: D = Kᵀ (wC + μI)⁻¹ K + λ_E I (EasyEdit: "to counter ill-conditioned D"). */
  emmet_lambda: number;
  /** μ: added to the weighted covariance wC before it is inverted. */
  update_norm_lambda: number;
}
// The zod schema validates this type's files; the interface is what the public API shows (deno doc
// cannot document a z.infer alias): the two must stay the same type.
sameType<EmmetHparams, z.infer<typeof EMMET_HPARAMS>>(true);

const COMMON: Partial<EmmetHparams> = {
  fact_token: "subject_last",
  v_lr: 0.5,
  kl_factor: 0.0625,
  mom2_adjustment: true,
  mom2_dataset: "wikipedia",
  mom2_n_samples: 100000,
  mom2_dtype: "float32",
  update_norm_lambda: 0,
  emmet_lambda: 0.1,
  context_template_length_params: [[10, 5]],
};

/** The method fields of EasyEdit's EMMET files, by engram's published-model name. */
export const EMMET_FILES: Readonly<Record<string, Readonly<Partial<EmmetHparams>>>> = {
  "gpt2-xl": {
    ...COMMON,
    layers: [17],
    clamp_norm_factor: 0.75,
    v_num_grad_steps: 20,
    v_loss_layer: 47,
    v_weight_decay: 0.5,
    mom2_update_weight: 10000,
  },
  "EleutherAI/gpt-j-6B": {
    ...COMMON,
    layers: [5],
    clamp_norm_factor: 0.75,
    v_num_grad_steps: 25,
    v_loss_layer: 27,
    v_weight_decay: 0.5,
    mom2_update_weight: 100000,
  },
  "meta-llama/Llama-2-7b": {
    ...COMMON,
    layers: [5],
    clamp_norm_factor: 4,
    v_num_grad_steps: 25,
    v_loss_layer: 31,
    v_weight_decay: 1e-3,
    mom2_update_weight: 100000,
  },
  "meta-llama/Llama-3.2-3B": {
    ...COMMON,
    layers: [5],
    clamp_norm_factor: 4,
    v_num_grad_steps: 25,
    v_loss_layer: 27,
    v_weight_decay: 1e-3,
    mom2_update_weight: 100000,
  },
};

/** EMMET at gpt2-xl (EasyEdit `hparams/EMMET/gpt2-xl.yaml`; engram's own fields as MEMIT's). */
export const EMMET_GPT2_XL: EmmetHparams = structuredClone({
  ...MEMIT_GPT2_XL,
  ...EMMET_FILES["gpt2-xl"],
}) as EmmetHparams;

/** gpt2-xl's MLP width, the key dimension of EMMET's reference w. */
const GPT2_XL_N_INNER = 6400;

/**
 * EMMET defaults for `cfg`: the published file at a model EasyEdit has one for ({@link EMMET_FILES});
 * elsewhere gpt2-xl's values at ROME's layer for the model (one layer, as every EMMET file), the loss at
 * the last layer, MEMIT's prefix lengths for the model, and w scaled by the MLP width, 10000 · nInner /
 * 6400. Why: D = Kᵀ(wC)⁻¹K has diagonal ≈ nInner / w for keys drawn like the statistics, and λ_E = 0.1 is
 * weighed against it, so w / nInner (not w) fixes how far the equality constraints are relaxed.
 */
export function emmetDefaults(cfg: ModelConfig): EmmetHparams {
  const pub = publishedModel(cfg);
  if (pub && EMMET_FILES[pub]) return structuredClone({ ...EMMET_GPT2_XL, ...EMMET_FILES[pub] });
  const m = memitDefaults(cfg);
  return {
    ...structuredClone(EMMET_GPT2_XL),
    layers: [defaultRomeLayer(cfg)],
    v_loss_layer: cfg.nLayer - 1,
    mom2_dataset: m.mom2_dataset,
    context_template_length_params: m.context_template_length_params,
    mom2_update_weight: (EMMET_GPT2_XL.mom2_update_weight * cfg.nInner) / GPT2_XL_N_INNER,
  };
}

/** Merges EMMET overrides (EasyEdit's YAML keys) into `base`; unknown keys are errors. */
export function mergeEmmetHparams(
  base: EmmetHparams,
  over: unknown,
  cfg: ModelConfig,
  file?: string,
): EmmetHparams {
  return mergeHparams(base, over, cfg, file, EMMET_EXTRA);
}
