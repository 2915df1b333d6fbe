/**
 * Hyper-parameters of ROME and MEMIT. At the models the reference repositories publish files for
 * (gpt2-medium, gpt2-large, gpt2-xl, GPT-J 6B, GPT-NeoX 20B from kmeng01; Llama-2-7B, Llama-3-8B,
 * Llama-3.2-3B, Mistral-7B-v0.1 and Qwen2.5-7B from EasyEdit), recognised by family, architecture and
 * shape ({@link PUBLISHED_MODELS}), the defaults are those files' values, field by field
 * ({@link ROME_FILES}, {@link MEMIT_FILES}, {@link FT_FILES}); at other models they are scaled from
 * gpt2-xl's by the documented rules below. A JSON file (EasyEdit's YAML keys, snake_case)
 * overrides any field; unknown keys are errors.
 */
import { ConfigError, InputError } from "../errors.ts";
import { excerpt, kindOf } from "../io/excerpt.ts";
import { isJsonObject, parseStrictJson } from "../io/strict_json.ts";
import type { Family, ModelConfig } from "../model/config.ts";
import type { FactToken } from "./compute.ts";
import { COMMON_HPARAMS, IGNORED_HPARAMS, rule } from "../schema/hparams.ts";
import { z } from "../schema/zod.ts";
import { sameType } from "../schema/same_type.ts";
import { jsonPath } from "../schema/validate.ts";

/** Hyper-parameters shared by ROME's v-star and MEMIT's z optimisation and by the covariance statistics. */
export interface CommonHparams {
  /** Edited layers (ROME: one). */
  layers: number[];
  /** Where keys and values are read: the subject's last token (reference) or the prompt's last token. */
  fact_token: FactToken;
  /** Most loss evaluations of the value optimisation (the last takes no step); ends below early_stop_loss. */
  v_num_grad_steps: number;
  /** Adam learning rate of δ, the vector the value optimisation adds at the fact token. */
  v_lr: number;
  /** Layer whose output gives the loss logits (the last layer; ln_f and the head are applied to it). */
  v_loss_layer: number;
  /** Weight of the penalty ‖δ‖ / ‖target_init‖² added to the loss (‖δ‖ not squared, as in ROME). */
  v_weight_decay: number;
  /** After every step ‖δ‖ is clamped to at most this times ‖target_init‖ (the unedited value's norm). */
  clamp_norm_factor: number;
  /** Weight of KL(P_new ‖ P_init) at the lookup token of the "{subject} is a" prompt (P_init: δ = 0). */
  kl_factor: number;
  /** Use the second moment C of the keys (ROME: u = C⁻¹k; MEMIT always uses it). */
  mom2_adjustment: boolean;
  /** λ: C is weighted by it in the update (MEMIT: λC + KKᵀ; ROME: cancels, kept for structure). */
  mom2_update_weight: number;
  /**
   * Corpus for C: a JSONL file with "text" fields or plain text. "" (other shapes) and ROME's
   * "wikipedia" (published shapes) name no file: the corpus then comes from `--stats-corpus` or the
   * model folder's declaration, or prebuilt statistics from `--stats` (src/edit/stats.ts).
   */
  mom2_dataset: string;
  /** Maximum number of corpus records (JSONL lines / text chunks) used for C. */
  mom2_n_samples: number;
  /**
   * How C's sum is accumulated: "float32" (default, the reference files' value: a running f32 sum) or
   * "float64" (Kahan-compensated f32 on the GPU, src/edit/stats.ts; ROME's float64 runs the sum in f64).
   */
  mom2_dtype?: "float32" | "float64";
  /**
   * FastMEMIT's reduced sample: C from the first 10 × d_k tokens only (default false). The edit's log
   * names it (`statistics.reduced`).
   */
  mom2_reduced?: boolean;
  /** [length, count] pairs of sampled context prefixes, in tokens. */
  context_template_length_params: [number, number][];
  /** Early stop of the v-star / z optimisation when the loss falls below this (reference: 5e-2). */
  early_stop_loss: number;
  /**
   * Explicit BOS override for the editor's prompts (true: the tokenizer's BOS / end-of-text token, false:
   * none). Absent (the default): the model's BOS policy, decided at load (`--bos`, src/prompt).
   */
  prefix_eos?: boolean;
  /** Seed of the context-template sampler. */
  seed: number;
  /**
   * ROME only: which key the update's denominator and residual use. "original" (kmeng01/rome): the bare
   * prompt's key k₀, while u and v* come from the template average k*. "consistent" (r-ROME, Gupta et al.
   * 2024; EasyEdit `r_rome` with `enable_random_prefix_keys`): k* in both places, so W'k* + b = v* exactly.
   */
  key: "original" | "consistent";
  /**
   * engram's own: where the update's SPD solve runs (ROME's C⁻¹k, MEMIT's and EMMET's (λC + KKᵀ)⁻¹K).
   * Absent or "auto": the float64 host below 1024 rows, with over n/32 right-hand sides, and on CPU
   * adapters, else the GPU; "gpu": float32 Cholesky + float64 refinement (host fall-back with a warning);
   * "host": float64 (src/edit/solve_backend.ts).
   */
  solve_backend?: "auto" | "gpu" | "host";
  /** NAS norm anchoring of the solved value vectors (src/edit/nas.ts); absent: off. */
  nas?: boolean;
  /** NAS anchor norm (absent: the mean ‖v₀‖ of the call's requests on the model as given). */
  nas_norm?: number;
  /** NAS: drop an edit whose ‖v*‖ exceeds this multiple of the anchor (absent: 2, the reference; 0: never). */
  nas_skip_factor?: number;
}
// The zod schema validates this type's files; the interface is what the public API shows (deno doc
// cannot document a z.infer alias): the two must stay the same type.
sameType<CommonHparams, z.infer<typeof COMMON_HPARAMS>>(true);

/** ROME hyper-parameters. */
export type RomeHparams = CommonHparams;
/** MEMIT hyper-parameters. */
export type MemitHparams = CommonHparams;

/**
 * A model the reference repositories publish hparams files for, identified by its Hugging Face config
 * values: the family and, in the Llama family (where Llama, Mistral and Qwen2 share one family), the
 * checkpoint's `architectures[0]`; n_layer / num_hidden_layers, n_embd / hidden_size and n_inner /
 * intermediate_size; and, where published shapes would otherwise collide or a later release shares the
 * shape, the head counts, the vocabulary and the rotary base. Fields left out are not compared.
 */
export interface PublishedModel {
  name: string;
  family: Family;
  /** Llama family only: HF `architectures[0]` (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM). */
  architecture?: string;
  nLayer: number;
  nEmbd: number;
  nInner: number;
  /** num_attention_heads */
  nHead?: number;
  /** num_key_value_heads (a config without it has nHead) */
  nKvHead?: number;
  vocabSize?: number;
  /** rope_theta */
  ropeTheta?: number;
}

/**
 * The published models. GPT-2 family: kmeng01/rome; GPT-J and NeoX: kmeng01/rome and kmeng01/memit
 * (GPT-J also zjunlp/EasyEdit); the Llama family: zjunlp/EasyEdit `hparams/{ROME,MEMIT,FT}/*.yaml`
 * (commit 14cea8245f06715684592ab55184939b99d70784), whose config values are those of the checkpoints
 * the files name (docs/notes/issue-13-hparams.md says where each was read). The same shape is one entry: Llama-2-7b
 * (and LLaMA-1 7B, and the -chat tune) for EasyEdit's llama-7b files; Qwen2-7B and Qwen2.5-7B, whose
 * configs and EasyEdit files agree in every compared field; Llama-3-8B and Llama-3.1-8B.
 */
export const PUBLISHED_MODELS: ReadonlyArray<PublishedModel> = [
  { name: "gpt2-medium", family: "gpt2", nLayer: 24, nEmbd: 1024, nInner: 4096 },
  { name: "gpt2-large", family: "gpt2", nLayer: 36, nEmbd: 1280, nInner: 5120 },
  { name: "gpt2-xl", family: "gpt2", nLayer: 48, nEmbd: 1600, nInner: 6400 },
  { name: "EleutherAI/gpt-j-6B", family: "gptj", nLayer: 28, nEmbd: 4096, nInner: 16384 },
  { name: "EleutherAI/gpt-neox-20b", family: "neox", nLayer: 44, nEmbd: 6144, nInner: 24576 },
  {
    name: "meta-llama/Llama-2-7b",
    family: "llama",
    architecture: "LlamaForCausalLM",
    nLayer: 32,
    nEmbd: 4096,
    nInner: 11008,
    nHead: 32,
    nKvHead: 32,
    vocabSize: 32000,
    ropeTheta: 10000,
  },
  {
    name: "meta-llama/Meta-Llama-3-8B",
    family: "llama",
    architecture: "LlamaForCausalLM",
    nLayer: 32,
    nEmbd: 4096,
    nInner: 14336,
    nHead: 32,
    nKvHead: 8,
    vocabSize: 128256,
    ropeTheta: 500000,
  },
  {
    name: "meta-llama/Llama-3.2-3B",
    family: "llama",
    architecture: "LlamaForCausalLM",
    nLayer: 28,
    nEmbd: 3072,
    nInner: 8192,
    nHead: 24,
    nKvHead: 8,
    vocabSize: 128256,
    ropeTheta: 500000,
  },
  {
    // Llama-3-8B's numbers but Mistral's architecture and vocabulary; v0.2 (rope_theta 1e6) and v0.3
    // (vocab 32768) are other models.
    name: "mistralai/Mistral-7B-v0.1",
    family: "llama",
    architecture: "MistralForCausalLM",
    nLayer: 32,
    nEmbd: 4096,
    nInner: 14336,
    nHead: 32,
    nKvHead: 8,
    vocabSize: 32000,
    ropeTheta: 10000,
  },
  {
    name: "Qwen/Qwen2.5-7B",
    family: "llama",
    architecture: "Qwen2ForCausalLM",
    nLayer: 28,
    nEmbd: 3584,
    nInner: 18944,
    nHead: 28,
    nKvHead: 4,
    vocabSize: 152064,
    ropeTheta: 1000000,
  },
];

/** Whether `cfg` is published model `m`: every field `m` names equal (see {@link PublishedModel}). */
function isModel(m: PublishedModel, cfg: ModelConfig): boolean {
  const family = cfg.family ?? "gpt2";
  return family === m.family &&
    (m.family !== "llama" || cfg.architecture === m.architecture) &&
    m.nLayer === cfg.nLayer && m.nEmbd === cfg.nEmbd && m.nInner === cfg.nInner &&
    (m.nHead === undefined || m.nHead === cfg.nHead) &&
    (m.nKvHead === undefined || m.nKvHead === (cfg.nKvHead ?? cfg.nHead)) &&
    (m.vocabSize === undefined || m.vocabSize === cfg.vocabSize) &&
    (m.ropeTheta === undefined || m.ropeTheta === cfg.rope?.theta);
}

/** The published model `cfg` is ({@link PUBLISHED_MODELS}: family, architecture and shape), if any. */
export function publishedModel(cfg: ModelConfig): string | undefined {
  return PUBLISHED_MODELS.find((m) => isModel(m, cfg))?.name;
}

/** Values shared by every published ROME file. */
const ROME_FILE_COMMON: Partial<RomeHparams> = {
  fact_token: "subject_last",
  v_num_grad_steps: 20,
  v_lr: 0.5,
  v_weight_decay: 0.5,
  clamp_norm_factor: 4,
  kl_factor: 0.0625,
  mom2_adjustment: true,
  context_template_length_params: [[5, 10], [10, 10]],
  mom2_dataset: "wikipedia",
  mom2_n_samples: 100000,
  mom2_dtype: "float32",
};

/**
 * Values shared by zjunlp/EasyEdit's ROME files for the Llama family (`hparams/ROME/llama-7b.yaml`,
 * `llama3-8b.yaml`, `llama3.2-3b.yaml`, `mistral-7b.yaml`, `qwen2.5-7b.yaml`, commit
 * 14cea8245f06715684592ab55184939b99d70784): layer 5, 25 steps, weight decay 1e-3 and no covariance
 * (`mom2_adjustment: false`: u = k* / ‖k*‖).
 */
const ROME_FILE_EASYEDIT_LLAMA: Partial<RomeHparams> = {
  ...ROME_FILE_COMMON,
  layers: [5],
  v_num_grad_steps: 25,
  v_weight_decay: 1e-3,
  mom2_adjustment: false,
};

/**
 * The method fields of the published ROME files, by model: kmeng01/rome `hparams/ROME/*.json` (commit
 * 0874014cd9837e4365f3e6f3c71400ef11509e04), for gpt-neox-20b kmeng01/memit `hparams/ROME/` (commit
 * 80426fd9316cf9a50c5ba15e0912f2c2c5bfe84b), for the Llama family zjunlp/EasyEdit `hparams/ROME/*.yaml`
 * ({@link ROME_FILE_EASYEDIT_LLAMA}). Module templates and `mom2_dtype` ("float32", what engram computes
 * in) are not engram fields. At gpt2-xl and GPT-J, EasyEdit's own files differ from kmeng01's only in
 * `mom2_adjustment: false`; engram keeps the original authors' values there.
 */
export const ROME_FILES: Readonly<Record<string, Readonly<Partial<RomeHparams>>>> = {
  "gpt2-medium": { ...ROME_FILE_COMMON, layers: [8], v_loss_layer: 23, clamp_norm_factor: 3 },
  "gpt2-large": { ...ROME_FILE_COMMON, layers: [12], v_loss_layer: 35 },
  "gpt2-xl": { ...ROME_FILE_COMMON, layers: [17], v_loss_layer: 47 },
  "EleutherAI/gpt-j-6B": { ...ROME_FILE_COMMON, layers: [5], v_loss_layer: 27 },
  "EleutherAI/gpt-neox-20b": { ...ROME_FILE_COMMON, layers: [15], v_loss_layer: 43 },
  "meta-llama/Llama-2-7b": { ...ROME_FILE_EASYEDIT_LLAMA, v_loss_layer: 31 },
  "meta-llama/Meta-Llama-3-8B": { ...ROME_FILE_EASYEDIT_LLAMA, v_loss_layer: 31 },
  "meta-llama/Llama-3.2-3B": { ...ROME_FILE_EASYEDIT_LLAMA, v_loss_layer: 27 },
  "mistralai/Mistral-7B-v0.1": { ...ROME_FILE_EASYEDIT_LLAMA, v_loss_layer: 31 },
  "Qwen/Qwen2.5-7B": { ...ROME_FILE_EASYEDIT_LLAMA, v_loss_layer: 27 },
};

/** Values shared by every published MEMIT file. */
const MEMIT_FILE_COMMON: Partial<MemitHparams> = {
  clamp_norm_factor: 0.75,
  fact_token: "subject_last",
  v_lr: 0.5,
  v_weight_decay: 0.5,
  kl_factor: 0.0625,
  mom2_adjustment: true,
  mom2_dataset: "wikipedia",
  mom2_n_samples: 100000,
  mom2_dtype: "float32",
};

/**
 * Values shared by zjunlp/EasyEdit's MEMIT files for the Llama family (`hparams/MEMIT/llama-7b.yaml`,
 * `llama3.2-3b.yaml`, `mistral-7b.yaml`, `qwen2.5-7b.yaml`, commit
 * 14cea8245f06715684592ab55184939b99d70784; EasyEdit ships no MEMIT file for Llama-3-8B): layers 4-8,
 * 25 steps, weight decay 1e-3, λ 15000 and a clamp of 4 (not 0.75).
 */
const MEMIT_FILE_EASYEDIT_LLAMA: Partial<MemitHparams> = {
  ...MEMIT_FILE_COMMON,
  layers: [4, 5, 6, 7, 8],
  clamp_norm_factor: 4,
  v_num_grad_steps: 25,
  v_weight_decay: 1e-3,
  mom2_update_weight: 15000,
};

/**
 * The method fields of the published MEMIT files: kmeng01/memit `hparams/MEMIT/*.json` (commit
 * 80426fd9316cf9a50c5ba15e0912f2c2c5bfe84b; EasyEdit's gpt2-xl and gpt-j-6B files hold the same values)
 * and, for the Llama family, EasyEdit's ({@link MEMIT_FILE_EASYEDIT_LLAMA}). `layer_selection: "all"` is
 * what engram does. The context templates are not a file field: both repositories hard-code [[10, 5]].
 */
export const MEMIT_FILES: Readonly<Record<string, Readonly<Partial<MemitHparams>>>> = {
  "gpt2-xl": {
    ...MEMIT_FILE_COMMON,
    layers: [13, 14, 15, 16, 17],
    v_num_grad_steps: 20,
    v_loss_layer: 47,
    mom2_update_weight: 20000,
  },
  "EleutherAI/gpt-j-6B": {
    ...MEMIT_FILE_COMMON,
    layers: [3, 4, 5, 6, 7, 8],
    v_num_grad_steps: 25,
    v_loss_layer: 27,
    mom2_update_weight: 15000,
  },
  "meta-llama/Llama-2-7b": { ...MEMIT_FILE_EASYEDIT_LLAMA, v_loss_layer: 31 },
  "meta-llama/Llama-3.2-3B": { ...MEMIT_FILE_EASYEDIT_LLAMA, v_loss_layer: 27 },
  "mistralai/Mistral-7B-v0.1": { ...MEMIT_FILE_EASYEDIT_LLAMA, v_loss_layer: 31 },
  "Qwen/Qwen2.5-7B": { ...MEMIT_FILE_EASYEDIT_LLAMA, v_loss_layer: 27 },
};

/** A published FT file's method fields (reference keys; `norm_constraint: false` = unconstrained). */
export interface FtFile {
  layers: number[];
  num_steps: number;
  lr: number;
  weight_decay: number;
  kl_factor: number;
  norm_constraint: number | false;
}

/** Values shared by zjunlp/EasyEdit's FT files for the Llama family (the layer and ε differ). */
const EASYEDIT_FT: Omit<FtFile, "layers"> = {
  num_steps: 25,
  lr: 5e-4,
  weight_decay: 0,
  kl_factor: 0,
  norm_constraint: false,
};

/**
 * The published FT files, by model: kmeng01/rome `hparams/FT/<model>_constr.json` (FT-L: layer 0, an
 * L∞ radius ε per size, the same lr 5e-4 at every size) and `<model>_unconstr.json` (FT), commit
 * 0874014cd9837e4365f3e6f3c71400ef11509e04; kmeng01/memit holds the same files, and zjunlp/EasyEdit
 * `hparams/FT/gpt2-xl.yaml` and `gpt-j-6B.yaml` (commit 14cea8245f06715684592ab55184939b99d70784) repeat
 * gpt2-xl_constr and gpt-j-6B_unconstr. For the Llama family, EasyEdit's `hparams/FT/*.yaml` (same
 * commit): one file per model, filed here by its `norm_constraint` (a number: constr, FT-L; false:
 * unconstr, FT). EasyEdit names both "FT-L" with `objective_optimization: "prompt_last"` (every file's
 * value, engram's default objective) and "FT-M" with "target_new".
 */
export const FT_FILES: Readonly<Record<"constr" | "unconstr", Readonly<Record<string, FtFile>>>> = {
  constr: {
    "gpt2-medium": {
      layers: [0],
      num_steps: 25,
      lr: 5e-4,
      weight_decay: 0,
      kl_factor: 0,
      norm_constraint: 2e-3,
    },
    "gpt2-large": {
      layers: [0],
      num_steps: 25,
      lr: 5e-4,
      weight_decay: 0,
      kl_factor: 0,
      norm_constraint: 1e-3,
    },
    "gpt2-xl": { layers: [0], num_steps: 25, lr: 5e-4, weight_decay: 0, kl_factor: 0, norm_constraint: 5e-4 },
    "EleutherAI/gpt-j-6B": {
      layers: [0],
      num_steps: 25,
      lr: 5e-4,
      weight_decay: 0,
      kl_factor: 0,
      norm_constraint: 5e-5,
    },
    "mistralai/Mistral-7B-v0.1": { ...EASYEDIT_FT, layers: [21], norm_constraint: 5e-5 },
  },
  unconstr: {
    "gpt2-xl": {
      layers: [1],
      num_steps: 25,
      lr: 5e-4,
      weight_decay: 0,
      kl_factor: 0,
      norm_constraint: false,
    },
    "EleutherAI/gpt-j-6B": {
      layers: [21],
      num_steps: 25,
      lr: 5e-4,
      weight_decay: 0,
      kl_factor: 0,
      norm_constraint: false,
    },
    "meta-llama/Llama-2-7b": { ...EASYEDIT_FT, layers: [21] },
    "meta-llama/Meta-Llama-3-8B": { ...EASYEDIT_FT, layers: [21] },
    "meta-llama/Llama-3.2-3B": { ...EASYEDIT_FT, layers: [21] },
    "Qwen/Qwen2.5-7B": { ...EASYEDIT_FT, layers: [27] },
  },
};

/**
 * engram fields the reference files do not hold: ROME's λ (it cancels in ROME's update, kept so that
 * ROME and MEMIT share one covariance path), the early stop of the v* and z loops (hard-coded 5e-2 in ROME's
 * `compute_v.py` and MEMIT's `compute_z.py`) and the template sampler's seed. The BOS prefix has no
 * default here: `prefix_eos` is only an explicit override of the model's BOS policy (src/prompt).
 */
const ENGRAM_FIELDS = {
  mom2_update_weight: 15000,
  early_stop_loss: 5e-2,
  seed: 0,
  key: "original" as const, // kmeng01/rome's k₀ denominator; "consistent" is r-ROME
};

/** ROME's gpt2-xl defaults (kmeng01/rome `hparams/ROME/gpt2-xl.json`; methods.md 2(b)). */
export const ROME_GPT2_XL: RomeHparams = structuredClone({
  ...ENGRAM_FIELDS,
  ...ROME_FILES["gpt2-xl"],
}) as RomeHparams;

/**
 * MEMIT's gpt2-xl defaults (kmeng01/memit `hparams/MEMIT/gpt2-xl.json`; methods.md 2(c)). The context
 * templates, [[10, 5]], are hard-coded in MEMIT's `memit_main.py` (`get_context_templates`).
 */
export const MEMIT_GPT2_XL: MemitHparams = structuredClone({
  ...ROME_GPT2_XL,
  ...MEMIT_FILES["gpt2-xl"],
  context_template_length_params: [[10, 5]],
}) as MemitHparams;

/**
 * The ROME edit layer for a model: the published file's layer at a published model, otherwise
 * gpt2-xl's 17 of 48 scaled by depth (layer ⌊17/48 · nLayer⌋; this also gives the published 8 of
 * gpt2-medium, 12 of gpt2-large and 15 of gpt-neox-20b, but not gpt-j's 5). For the 2-layer world model
 * that is layer 0, the only usable one: a change at the subject's token in the last layer cannot reach
 * later positions (no attention runs after it), so its v* gradient is exactly zero.
 */
export function defaultRomeLayer(cfg: ModelConfig): number {
  const pub = publishedModel(cfg);
  if (pub && ROME_FILES[pub]) return ROME_FILES[pub].layers![0];
  return Math.min(cfg.nLayer - 1, Math.floor((17 / 48) * cfg.nLayer));
}

function scaledLengths(pairs: [number, number][], cfg: ModelConfig): [number, number][] {
  // Prefixes must leave room for the prompt: at most a quarter of the context each.
  const cap = Math.max(1, Math.floor(cfg.nPositions / 4));
  return pairs.map(([len, n]) => [Math.min(len, cap), n]);
}

/**
 * ROME defaults for `cfg`. At a published model ({@link PUBLISHED_MODELS}): that file's values exactly
 * ({@link ROME_FILES}). Otherwise gpt2-xl's values with the layer scaled by depth, the loss at the last
 * layer, the prefix lengths capped at a quarter of the context, and no data set (`mom2_dataset` "":
 * the corpus comes from the model folder or `--stats-corpus`, see src/edit/stats.ts).
 */
export function romeDefaults(cfg: ModelConfig): RomeHparams {
  const pub = publishedModel(cfg);
  if (pub && ROME_FILES[pub]) return structuredClone({ ...ROME_GPT2_XL, ...ROME_FILES[pub] });
  return {
    ...structuredClone(ROME_GPT2_XL),
    layers: [defaultRomeLayer(cfg)],
    v_loss_layer: cfg.nLayer - 1,
    mom2_dataset: "",
    context_template_length_params: scaledLengths(ROME_GPT2_XL.context_template_length_params, cfg),
  };
}

/** gpt2-xl's MLP width (the key dimension of MEMIT's reference λ). */
const GPT2_XL_N_INNER = 6400;

/**
 * MEMIT defaults for `cfg`. At a published model with a MEMIT file ({@link MEMIT_FILES}: gpt2-xl,
 * gpt-j-6B, Llama-2-7B, Llama-3.2-3B, Mistral-7B-v0.1, Qwen2.5-7B): that file's values exactly.
 * Otherwise gpt2-xl's values; the layers are a window of
 * consecutive layers ending at the ROME layer ({@link defaultRomeLayer}), 5/48 of the depth wide (at
 * least one layer), and λ (`mom2_update_weight`) scaled by the MLP width, nInner / 6400. Why: MEMIT
 * moves a key k by the fraction a / (1 + a) of its residual, with a = kᵀ(λC)⁻¹k, and for keys drawn
 * like the statistics E[kᵀC⁻¹k] = nInner exactly (C = E[kkᵀ]). So λ / nInner, not λ, is what sets how
 * strongly an edit overrides the prior; gpt2-xl's 20000 / 6400 keeps a ≈ 0.31 at any width, where an
 * unscaled 20000 would give a ≈ 0.02 at width 384 and edits that barely move (FT-L's norm bound is
 * scaled the same way). With only one edited layer, which must carry the whole residual, even the
 * scaled λ is too strong a prior: on the 2-layer world model MEMIT at layer 0 reached reliability 0
 * with λ 1200 and 0.9 with λ 12 (fixtures/world/model/hparams/memit.json).
 */
export function memitDefaults(cfg: ModelConfig): MemitHparams {
  const pub = publishedModel(cfg);
  if (pub && MEMIT_FILES[pub]) return structuredClone({ ...MEMIT_GPT2_XL, ...MEMIT_FILES[pub] });
  const last = defaultRomeLayer(cfg);
  const width = Math.max(1, Math.round((5 / 48) * cfg.nLayer));
  const layers: number[] = [];
  for (let l = Math.max(0, last - width + 1); l <= last; l++) layers.push(l);
  return {
    ...structuredClone(MEMIT_GPT2_XL),
    layers,
    v_loss_layer: cfg.nLayer - 1,
    mom2_dataset: pub ? MEMIT_GPT2_XL.mom2_dataset : "",
    mom2_update_weight: (MEMIT_GPT2_XL.mom2_update_weight * cfg.nInner) / GPT2_XL_N_INNER,
    context_template_length_params: scaledLengths(MEMIT_GPT2_XL.context_template_length_params, cfg),
  };
}

/**
 * One hparam's check, a zod schema whose every issue carries the noun phrase of what the value must be
 * (src/schema/hparams.ts `rule`). Rules are shared by every editor's hparams so that all of them accept
 * and refuse values the same way.
 */
export type HparamRule = z.ZodType;

/** The value checks hparam schemas are built from (src/schema/hparams.ts). */
export { rule };

/** An editor's hparams schema: key -> rule, or [stored key, rule] for an alias of another key. */
export type HparamSchema = Readonly<Record<string, HparamRule | readonly [string, HparamRule]>>;

function isRule(e: unknown): e is HparamRule {
  return e instanceof z.ZodType;
}

/**
 * Overrides `base` with the JSON object `over` (from `file`, for messages) by `schema`: every value is
 * checked by its rule, keys in `ignored` (reference keys naming modules or devices that engram fixes
 * itself) are skipped, any other key is a {@link ConfigError} listing the known ones, and `layers` is
 * checked against the model.
 */
export function mergeBySchema<T extends { layers: number[] }>(
  base: T,
  over: unknown,
  schema: HparamSchema,
  ignored: ReadonlySet<string>,
  cfg: ModelConfig,
  file?: string,
): T {
  // Without a file (inline JSON, a library call) errors name the flag instead.
  const where = file === undefined ? { field: "--hparams" } : { file };
  if (typeof over !== "object" || over === null || Array.isArray(over)) {
    throw new ConfigError(`hparams must be a JSON object, got ${kindOf(over)}`, where);
  }
  const out = structuredClone(base);
  const o = out as unknown as Record<string, unknown>;
  const cut = (k: string) => (k.length > 40 ? k.slice(0, 40) + "…" : k);
  // Own keys only, looked up as own keys: a key named like an Object.prototype member ("valueOf",
  // "constructor", "__proto__") is an unknown key, never an inherited function taken for a rule.
  for (const k of Object.keys(over)) {
    const v = (over as Record<string, unknown>)[k];
    if (ignored.has(k)) continue; // a Set holds values, not inherited members
    const entry = Object.hasOwn(schema, k) ? schema[k] : undefined;
    if (entry === undefined || (!isRule(entry) && !Array.isArray(entry))) {
      const known = Object.keys(schema).filter((x) => isRule(schema[x]));
      // The three closest names, not the whole list: the message stays short whatever the schema.
      const near = known.map((x) => [editDistance(cut(k), x), x] as const).sort((a, b) => a[0] - b[0])
        .slice(0, 3).map(([, x]) => x);
      throw new ConfigError(
        `unknown hparam '${cut(k)}' (closest: ${near.join(", ")}; ${known.length} known)`,
        {
          file,
          field: file === undefined ? "--hparams" : cut(k),
        },
      );
    }
    const [key, check] = isRule(entry) ? [k, entry] : entry;
    const r = check.safeParse(v);
    if (!r.success) {
      // The message names the JSON path of the first bad value too (`$.layers[1]` inside a list).
      const path = jsonPath([k, ...(r.error.issues[0].path ?? [])]);
      const msg = `hparam '${k}' must be ${r.error.issues[0].message}, got ${excerpt(v, 60)} (at ${path})`;
      throw new ConfigError(msg, {
        file,
        field: file === undefined ? "--hparams" : k,
      });
    }
    o[key] = r.data;
  }
  checkLayers(out.layers, cfg, file ? "layers" : "--layers", file);
  return out;
}

/** Levenshtein distance, for suggesting the known hparam closest to a misspelt one. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

const SCHEMA: HparamSchema = COMMON_HPARAMS.shape;

/**
 * Keys of reference hparam files that name modules or data sets engram fixes itself, and a free-text
 * "comment": accepted, ignored (src/schema/hparams.ts).
 */
export { IGNORED_HPARAMS };

/**
 * Overrides ROME / MEMIT `base` with a JSON object (from `file`, for error messages), checking every
 * value's type and range and the layers against the model. Unknown keys are a {@link ConfigError}.
 * `extra` adds the rules of a method's own keys (AlphaEdit's, EMMET's) to the shared ones.
 */
export function mergeHparams<T extends CommonHparams>(
  base: T,
  over: unknown,
  cfg: ModelConfig,
  file?: string,
  extra: HparamSchema = {},
): T {
  const out = mergeBySchema(base, over, { ...SCHEMA, ...extra }, IGNORED_HPARAMS, cfg, file);
  if (out.v_loss_layer !== cfg.nLayer - 1) {
    throw new ConfigError(
      `v_loss_layer ${out.v_loss_layer} is not supported: engram computes the loss from the last layer (${
        cfg.nLayer - 1
      })`,
      { file, field: "v_loss_layer" },
    );
  }
  return out;
}

/**
 * MEMIT draws `count / 5` context templates from each of its 5 seed words ("The", "Therefore", ...); a
 * pair whose count is below 5 would make an empty template group, whose mean key is undefined (NaN in the
 * reference). Refused here, before any work.
 */
export function checkMemitTemplates(hp: CommonHparams, file?: string): void {
  for (const [len, n] of hp.context_template_length_params) {
    if (n > 0 && n < 5) {
      throw new ConfigError(
        `MEMIT's context_template_length_params [${len}, ${n}]: the count must be 0 or at least 5 ` +
          `(count / 5 texts are drawn from each of MEMIT's 5 seed words)`,
        { file, field: "context_template_length_params" },
      );
    }
  }
}

/** Checks edited layers: integers within the model, strictly increasing. */
export function checkLayers(layers: number[], cfg: ModelConfig, field = "--layers", file?: string): void {
  if (layers.length === 0) throw new InputError("no layers to edit", { file, field });
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= cfg.nLayer) {
      throw new InputError(`layer ${l} out of range: the model has layers 0..${cfg.nLayer - 1}`, {
        file,
        field,
      });
    }
  }
  for (let i = 1; i < layers.length; i++) {
    if (layers[i] <= layers[i - 1]) {
      throw new InputError(`layers must be strictly increasing, got [${layers}]`, { file, field });
    }
  }
}

/** Parses "--layers 3,4,5" or "3-5". */
export function parseLayers(s: string): number[] {
  const t = s.trim();
  const range = /^(\d+)\s*-\s*(\d+)$/.exec(t);
  if (range) {
    const a = Number(range[1]), b = Number(range[2]);
    if (b < a) throw new InputError(`--layers range ${t} is empty`, { field: "--layers" });
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  }
  const parts = t.split(",").map((p) => p.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) {
    throw new InputError(`--layers must be comma-separated layer indices or a range A-B, got '${s}'`, {
      field: "--layers",
    });
  }
  return parts.map(Number);
}

/**
 * Parses hparams JSON text (from `file`, for messages) strictly: a duplicate key or nesting deeper than
 * 32 levels is a {@link ConfigError} naming the file, and objects own only their keys.
 */
export function parseHparamsText(text: string, file?: string): unknown {
  const where = file === undefined ? "--hparams" : undefined;
  const v = parseStrictJson(text, {
    file,
    maxDepth: 32,
    error: (message, field) => new ConfigError(`hparams: ${message}`, { file, field: where ?? field }),
  });
  if (!isJsonObject(v)) {
    throw new ConfigError(`hparams must be a JSON object, got ${kindOf(v)}`, { file, field: where });
  }
  return v;
}

/** Reads a hparams JSON file (see {@link parseHparamsText}). */
export async function readHparamsFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new InputError(`cannot read hparams: ${(e as Error).message}`, { file });
  }
  return parseHparamsText(text, file);
}
