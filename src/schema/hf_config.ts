/**
 * The fields of a Hugging Face `config.json` that engram reads, as zod rules: the one source of the type
 * checks src/io/hf_config.ts runs on them (its `Fields` readers look each rule up here) and of
 * `schemas/hf_config.json`. A `null` value means absent, as in transformers. Every other field passes
 * through unread. Which fields a family requires, their defaults and the checks across fields
 * (n_embd divisible by n_head, rotary dimensions, supported rope_scaling types) stay in hf_config.ts.
 *
 * @module
 */
import { z } from "./zod.ts";

/** What each kind of field must be, as the messages quote it. */
export const HF_WANT = {
  posInt: "a positive integer",
  posNum: "a positive number",
  posIntOrZero: "a non-negative integer",
  bool: "true or false",
  str: "a string",
} as const;

/** A kind of config field. */
export type HfFieldKind = keyof typeof HF_WANT;

/** The rule of each kind. */
export const HF_RULES: { readonly [K in HfFieldKind]: z.ZodType } = {
  posInt: z.int({ error: HF_WANT.posInt }).positive({ error: HF_WANT.posInt }),
  posNum: z.number({ error: HF_WANT.posNum }).positive({ error: HF_WANT.posNum }),
  posIntOrZero: z.int({ error: HF_WANT.posIntOrZero }).min(0, { error: HF_WANT.posIntOrZero }),
  bool: z.boolean({ error: HF_WANT.bool }),
  str: z.string({ error: HF_WANT.str }),
};

/** Top-level fields engram reads, by kind (GPT-2 / GPT-J / NeoX / Llama / Mistral / Qwen2 / Qwen3 names). */
export const HF_CONFIG_FIELDS: Readonly<Record<string, HfFieldKind>> = {
  n_layer: "posInt",
  n_head: "posInt",
  n_embd: "posInt",
  n_inner: "posInt",
  n_positions: "posInt",
  n_ctx: "posInt",
  vocab_size: "posInt",
  num_hidden_layers: "posInt",
  num_attention_heads: "posInt",
  num_key_value_heads: "posInt",
  hidden_size: "posInt",
  intermediate_size: "posInt",
  max_position_embeddings: "posInt",
  head_dim: "posInt",
  rotary_dim: "posInt",
  sliding_window: "posInt",
  max_window_layers: "posIntOrZero",
  layer_norm_epsilon: "posNum",
  layer_norm_eps: "posNum",
  rms_norm_eps: "posNum",
  rope_theta: "posNum",
  rotary_emb_base: "posNum",
  rotary_pct: "posNum",
  partial_rotary_factor: "posNum",
  activation_function: "str",
  hidden_act: "str",
  attention_bias: "bool",
  mlp_bias: "bool",
  tie_word_embeddings: "bool",
  use_parallel_residual: "bool",
  use_sliding_window: "bool",
};

/** Fields of `rope_scaling` / `rope_parameters` engram reads, by kind. */
export const HF_ROPE_FIELDS: Readonly<Record<string, HfFieldKind>> = {
  rope_type: "str",
  type: "str",
  factor: "posNum",
  original_max_position_embeddings: "posInt",
  low_freq_factor: "posNum",
  high_freq_factor: "posNum",
  rope_theta: "posNum",
};

const fields = (table: Readonly<Record<string, HfFieldKind>>) =>
  Object.fromEntries(Object.entries(table).map(([k, kind]) => [k, HF_RULES[kind].nullish()]));

const ROPE = z.looseObject(fields(HF_ROPE_FIELDS)).nullish();

/** A `config.json` (the fields engram reads; the rest pass through). */
export const HF_CONFIG = z.looseObject({
  /** The family (gpt2, gptj, gpt_neox, llama, mistral, qwen2, qwen3); else found from `architectures`. */
  model_type: z.unknown().optional(),
  /** Class names; the family's is looked for when `model_type` is absent. */
  architectures: z.unknown().optional(),
  ...fields(HF_CONFIG_FIELDS),
  rope_scaling: ROPE,
  rope_parameters: ROPE,
  /** Qwen3: "full_attention" or "sliding_attention" per layer. */
  layer_types: z.unknown().optional(),
});
