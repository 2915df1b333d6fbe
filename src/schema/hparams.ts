/**
 * The hyper-parameters of every editor as zod schemas: the one source of their TypeScript types
 * (`CommonHparams` = ROME / MEMIT, AlphaEdit, EMMET, FT / FT-L, KN; NAS's keys are part of the common
 * set), of the per-key checks `mergeBySchema` (src/edit/hparams.ts) runs on an override file, and of the
 * JSON Schema of each method's hparams file (`schemas/hparams_<method>.json`). Defaults are not here:
 * they depend on the model and live beside each editor (src/edit/*hparams*.ts, ft.ts, kn.ts).
 *
 * @module
 */
import { z } from "./zod.ts";

/**
 * The value checks hparam schemas are built from. Every issue of a rule carries the same message, the
 * noun phrase of what the value must be ("a positive integer"), which `mergeBySchema` quotes.
 */
export const rule = {
  /** An integer >= `min`. */
  int: (min = 0) => {
    const want = min === 0
      ? "a non-negative integer"
      : min === 1
      ? "a positive integer"
      : `an integer >= ${min}`;
    return z.int({ error: want }).min(min, { error: want });
  },
  /** A finite number >= 0. */
  num: () => z.number({ error: "a non-negative number" }).min(0, { error: "a non-negative number" }),
  /** Any finite number. */
  finite: () => z.number({ error: "a finite number" }),
  /** A number in [0, 1]. */
  unit: () => {
    const want = "a number in [0, 1]";
    return z.number({ error: want }).min(0, { error: want }).max(1, { error: want });
  },
  /** true or false. */
  bool: () => z.boolean({ error: "true or false" }),
  /** Any string. */
  str: () => z.string({ error: "a string" }),
  /** One of the given strings. */
  oneOf: <const T extends readonly [string, ...string[]]>(...values: T) =>
    z.enum(values, { error: values.map((x) => `"${x}"`).join(" or ") }),
  /** A non-empty list of layer indices (checked against the model after merging). */
  layers: () => {
    const want = "a non-empty list of layer indices";
    return z.array(z.int({ error: want }), { error: want }).min(1, { error: want });
  },
  /** A non-empty list of strings. */
  strings: (what: string) => {
    const want = `a non-empty list of ${what}`;
    return z.array(z.string({ error: want }), { error: want }).min(1, { error: want });
  },
  /** A list of [length, count] pairs of non-negative integers. */
  pairs: () => {
    const want = "a list of [length, count] integer pairs";
    const n = z.int({ error: want }).min(0, { error: want });
    return z.array(z.tuple([n, n], { error: want }), { error: want });
  },
};

/** ROME / MEMIT hyper-parameters, shared by AlphaEdit and EMMET (EasyEdit's YAML keys, snake_case). */
export const COMMON_HPARAMS = z.object({
  /** Edited layers (ROME: one). */
  layers: rule.layers(),
  /** Where keys and values are read: the subject's last token (reference) or the prompt's last token. */
  fact_token: rule.oneOf("subject_last", "last"),
  /** Most loss evaluations of the value optimisation (the last takes no step); ends below early_stop_loss. */
  v_num_grad_steps: rule.int(),
  /** Adam learning rate of δ, the vector the value optimisation adds at the fact token. */
  v_lr: rule.num(),
  /** Layer whose output gives the loss logits (the last layer; ln_f and the head are applied to it). */
  v_loss_layer: rule.int(),
  /** Weight of the penalty ‖δ‖ / ‖target_init‖² added to the loss (‖δ‖ not squared, as in ROME). */
  v_weight_decay: rule.num(),
  /** After every step ‖δ‖ is clamped to at most this times ‖target_init‖ (the unedited value's norm). */
  clamp_norm_factor: rule.num(),
  /** Weight of KL(P_new ‖ P_init) at the lookup token of the "{subject} is a" prompt (P_init: δ = 0). */
  kl_factor: rule.num(),
  /** Use the second moment C of the keys (ROME: u = C⁻¹k; MEMIT always uses it). */
  mom2_adjustment: rule.bool(),
  /** λ: C is weighted by it in the update (MEMIT: λC + KKᵀ; ROME: cancels, kept for structure). */
  mom2_update_weight: rule.num(),
  /**
   * Corpus for C: a JSONL file with "text" fields or plain text. "" (other shapes) and ROME's
   * "wikipedia" (published shapes) name no file: the corpus then comes from `--stats-corpus` or the
   * model folder's declaration, or prebuilt statistics from `--stats` (src/edit/stats.ts).
   */
  mom2_dataset: rule.str(),
  /** Maximum number of corpus records (JSONL lines / text chunks) used for C. */
  mom2_n_samples: rule.int(),
  /**
   * How C's sum is accumulated: "float32" (default, the reference files' value: a running f32 sum) or
   * "float64" (Kahan-compensated f32 on the GPU, src/edit/stats.ts; ROME's float64 runs the sum in f64).
   */
  mom2_dtype: rule.oneOf("float32", "float64").optional(),
  /**
   * FastMEMIT's reduced sample: C from the first 10 × d_k tokens only (default false). The edit's log
   * names it (`statistics.reduced`).
   */
  mom2_reduced: rule.bool().optional(),
  /** [length, count] pairs of sampled context prefixes, in tokens. */
  context_template_length_params: rule.pairs(),
  /** Early stop of the v-star / z optimisation when the loss falls below this (reference: 5e-2). */
  early_stop_loss: rule.num(),
  /**
   * Explicit BOS override for the editor's prompts (true: the tokenizer's BOS / end-of-text token, false:
   * none). Absent (the default): the model's BOS policy, decided at load (`--bos`, src/prompt).
   */
  prefix_eos: rule.bool().optional(),
  /** Seed of the context-template sampler. */
  seed: rule.int(),
  /**
   * ROME only: which key the update's denominator and residual use. "original" (kmeng01/rome): the bare
   * prompt's key k₀, while u and v* come from the template average k*. "consistent" (r-ROME, Gupta et al.
   * 2024; EasyEdit `r_rome` with `enable_random_prefix_keys`): k* in both places, so W'k* + b = v* exactly.
   */
  key: rule.oneOf("original", "consistent"),
  /**
   * engram's own: where the update's SPD solve runs (ROME's C⁻¹k, MEMIT's and EMMET's (λC + KKᵀ)⁻¹K).
   * Absent or "auto": the float64 host below 1024 rows, with over n/32 right-hand sides, and on CPU
   * adapters, else the GPU; "gpu": float32 Cholesky + float64 refinement (host fall-back with a warning);
   * "host": float64 (src/edit/solve_backend.ts).
   */
  solve_backend: rule.oneOf("auto", "gpu", "host").optional(),
  /** NAS norm anchoring of the solved value vectors (src/edit/nas.ts); absent: off. */
  nas: rule.bool().optional(),
  /** NAS anchor norm (absent: the mean ‖v₀‖ of the call's requests on the model as given). */
  nas_norm: rule.num().optional(),
  /** NAS: drop an edit whose ‖v*‖ exceeds this multiple of the anchor (absent: 2, the reference; 0: never). */
  nas_skip_factor: rule.num().optional(),
});

/** AlphaEdit's own keys (added to {@link COMMON_HPARAMS}). */
export const ALPHAEDIT_EXTRA = {
  /** τ: the null space is spanned by the eigenvectors of C whose |eigenvalue| is below it (absolute). */
  nullspace_threshold: rule.num(),
  /** α: Δᵀ = solve(P (K_p K_pᵀ + K Kᵀ) + α I, P K Rᵀ). */
  L2: rule.num(),
  /**
   * engram's own: where C's eigendecomposition runs. "host": float64 Householder + QL (src/edit/eigen.ts);
   * "gpu": float32 parallel Jacobi (src/gpu/jacobi_eigen.ts; EasyEdit's `torch.linalg.svd` runs at
   * cov's float32 too), falling back to the host when it does not converge or does not fit one binding;
   * "auto" (default): the GPU from `EIGEN_GPU_MIN` keys up on a hardware GPU, the host below and on
   * CPU adapters such as llvmpipe (src/edit/eigen.ts `resolveEigenBackend`).
   */
  eigen_backend: rule.oneOf("auto", "gpu", "host"),
  /** engram's own: Jacobi sweeps at most before falling back to the host (default 40). */
  eigen_max_sweeps: rule.int(0),
  /** engram's own: Jacobi stops at off-diagonal norm ≤ eigen_tolerance · ‖C‖_F (default 2e-6). */
  eigen_tolerance: rule.num(),
};
/** AlphaEdit hyper-parameters: MEMIT's and those of the null-space projection. */
export const ALPHAEDIT_HPARAMS = COMMON_HPARAMS.extend(ALPHAEDIT_EXTRA);

/** EMMET's own keys (added to {@link COMMON_HPARAMS}). */
export const EMMET_EXTRA = {
  /** λ_E: D = Kᵀ (wC + μI)⁻¹ K + λ_E I (EasyEdit: "to counter ill-conditioned D"). */
  emmet_lambda: rule.num(),
  /** μ: added to the weighted covariance wC before it is inverted. */
  update_norm_lambda: rule.num(),
};
/** EMMET hyper-parameters. */
export const EMMET_HPARAMS = COMMON_HPARAMS.extend(EMMET_EXTRA);

const ftObjective = rule.oneOf("prompt_last", "target_new");

/** Hyper-parameters of the fine-tuning editors FT / FT-L / FT-M (ROME `hparams/FT/*.json` names). */
export const FT_HPARAMS = z.object({
  /** Layers whose modules are trained. */
  layers: rule.layers(),
  /** Weight names relative to the block (`h.{layer}.`, `layers.{layer}.`) that are trained (default: the MLP output projection). */
  modules: rule.strings("weight names"),
  /** Adam steps (ROME: 25). */
  num_steps: rule.int(1),
  /** Learning rate (ROME: 5e-4). */
  lr: rule.num(),
  /** Decoupled weight decay of the AdamW kernel (ROME: 0). */
  weight_decay: rule.num(),
  /** L∞ radius of the change of every trained parameter; 0 = unconstrained (a file's `false` means 0). */
  norm_constraint: z.union([
    z.literal(false).transform(() => 0),
    z.number().min(0),
  ], { error: "a non-negative number or false" }),
  /** Stop when a step's loss is below this (ROME: 1e-2). */
  early_stop_loss: rule.num(),
  /** "prompt_last" (FT-L, ROME) or "target_new" (FT-M: teacher-forced target, prompt masked). */
  objective: ftObjective,
  /** Explicit BOS override (see CommonHparams.prefix_eos); absent: the model's BOS policy. */
  prefix_eos: rule.bool().optional(),
});
/** FT keys that are another key's name in a reference file: EasyEdit's `objective_optimization`. */
export const FT_ALIASES = { objective_optimization: ["objective", ftObjective] } as const;

/** Hyper-parameters of the KN editor (EasyEdit `hparams/KN/*.yaml` names where they exist). */
export const KN_HPARAMS = z.object({
  /** Layers searched for neurons (default: all). */
  layers: rule.layers(),
  /** Integrated-gradients steps m (reference: 20). */
  steps: rule.int(1),
  /** Keep neurons scoring above this × the maximum (reference: 0.2). */
  adaptive_threshold: rule.unit(),
  /** IG points: "linspace" (EleutherAI / EasyEdit, default) or "left" (Dai et al.'s α = k/m). */
  ig_points: rule.oneOf("linspace", "left"),
  /** What IG scales: the pre-GELU c_fc output ("pre", EleutherAI / EasyEdit, default) or "post" (Dai). */
  ig_activation: rule.oneOf("pre", "post"),
  /** Keep scores strictly above the threshold (EleutherAI / EasyEdit, default) or also equal (Dai). */
  ig_strict: rule.bool(),
  /** With `refine`, keep neurons found in more than this share of the prompts (reference: 0.4). */
  p: rule.unit(),
  /** Refine over the prompt and its rephrasings (reference: false). */
  refine: rule.bool(),
  /**
   * Multiple of the old prediction's embedding subtracted from each value vector for a one-token target
   * (reference: 2); with several target tokens each greedy token's embedding is subtracted
   * `erase_scale / 2` times (reference: once).
   */
  erase_scale: rule.finite(),
  /** Multiple of each target token's embedding added (reference: 1, i.e. once each). */
  add_scale: rule.finite(),
  /** Scale each embedding to the value vector's norm first (Dai et al.'s update; reference: false). */
  norm_scaled: rule.bool(),
  /** Keep at most this many neurons per request, highest score first (0: no cap; reference: no cap). */
  max_neurons: rule.int(),
  /** Explicit BOS override (see CommonHparams.prefix_eos); absent: the model's BOS policy. */
  prefix_eos: rule.bool().optional(),
});

/**
 * Keys of reference ROME / MEMIT / AlphaEdit / EMMET hparam files that name modules or data sets engram
 * fixes itself, and a free-text "comment": accepted, ignored.
 */
export const IGNORED_HPARAMS: ReadonlySet<string> = new Set([
  "comment",
  "alg_name",
  "model_name",
  "device",
  "rewrite_module_tmp",
  "layer_module_tmp",
  "mlp_module_tmp",
  "attn_module_tmp",
  "ln_f_module",
  "lm_head_module",
  "stats_dir",
  "layer_selection",
  "model_parallel",
  "batch_size",
  "max_length",
  "fp16",
]);

/** AlphaEdit's extra ignored key: `P_loc`, where EasyEdit saves its projection (engram keeps it in the edit state). */
export const IGNORED_ALPHAEDIT: ReadonlySet<string> = new Set([...IGNORED_HPARAMS, "P_loc"]);

/** Reference FT keys engram fixes itself (FT ignores ROME's `kl_factor`, which its files carry). */
export const IGNORED_FT: ReadonlySet<string> = new Set([
  "alg_name",
  "model_name",
  "device",
  "rewrite_module_tmp",
  "layer_module_tmp",
  "mlp_module_tmp",
  "attn_module_tmp",
  "ln_f_module",
  "lm_head_module",
  "batch_size",
  "max_length",
  "model_parallel",
  "fp16",
  "kl_factor",
]);

/** Reference KN keys engram fixes itself. */
export const IGNORED_KN: ReadonlySet<string> = new Set([
  "alg_name",
  "model_name",
  "device",
  "batch_size",
  "lr_scale",
  "max_length",
]);

/**
 * The schema of a hparams override file: every key of `shape` and of `aliases` optional, the `ignored`
 * reference keys accepted with any value, any other key refused.
 */
export function hparamsFileSchema(
  shape: Readonly<Record<string, z.ZodType>>,
  ignored: ReadonlySet<string>,
  aliases: Readonly<Record<string, readonly [string, z.ZodType]>> = {},
): z.ZodType {
  const keys: Record<string, z.ZodType> = {};
  for (const [k, s] of Object.entries(shape)) keys[k] = s.optional();
  for (const [k, [to, s]] of Object.entries(aliases)) keys[k] = s.optional().describe(`alias of ${to}`);
  for (const k of ignored) keys[k] = z.unknown().optional().describe("a reference key engram ignores");
  return z.strictObject(keys);
}

/** The hparams file schemas by method, for `schemas/hparams_<method>.json`. */
export const HPARAMS_FILE_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  rome: hparamsFileSchema(COMMON_HPARAMS.shape, IGNORED_HPARAMS),
  memit: hparamsFileSchema(COMMON_HPARAMS.shape, IGNORED_HPARAMS),
  alphaedit: hparamsFileSchema(ALPHAEDIT_HPARAMS.shape, IGNORED_ALPHAEDIT),
  emmet: hparamsFileSchema(EMMET_HPARAMS.shape, IGNORED_HPARAMS),
  ft: hparamsFileSchema(FT_HPARAMS.shape, IGNORED_FT, FT_ALIASES),
  kn: hparamsFileSchema(KN_HPARAMS.shape, IGNORED_KN),
};
