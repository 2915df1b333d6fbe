/**
 * The training configuration file of `engram train --config` (snake_case keys; paths relative to the
 * file's folder) and a model folder's `engram_stats.json` (the corpus of its key statistics), as zod
 * schemas. Every issue of a field carries the noun phrase of what it must be ("an integer >= 1"), which
 * the readers quote as `must be <phrase>, got <value>`. Defaults are the ones `engram train` has always
 * used; they also appear in `schemas/train_config.json`.
 *
 * @module
 */
import { z } from "./zod.ts";

const int = (min: number) => {
  const want = `an integer >= ${min}`;
  return z.int({ error: want }).min(min, { error: want });
};
const num = (min: number) => {
  const want = `a number >= ${min}`;
  return z.number({ error: want }).min(min, { error: want });
};
const PATH_WANT = "a non-empty path";
const path = z.string({ error: PATH_WANT }).min(1, { error: PATH_WANT })
  .refine((v) => !v.includes("\0"), { error: PATH_WANT });

/** The architecture of a model trained from scratch (the vocabulary size comes from the tokenizer). */
export const TRAIN_MODEL = z.strictObject({
  n_layer: int(1).default(2),
  n_head: int(1).default(4),
  n_embd: int(1).default(64),
  n_positions: int(2).default(32),
  /** MLP width (absent: 4 · n_embd). */
  n_inner: int(1).optional(),
  /**
   * "gpt2" (learned positions, LayerNorm, GELU MLP, biases) or "llama" (rotary positions, RMSNorm, gated
   * SiLU MLP, no biases; the head tied to the embedding as GPT-2's).
   */
  family: z.enum(["gpt2", "llama"], { error: '"gpt2" or "llama"' }).default("gpt2"),
  /** Key/value heads of a "llama" model (grouped-query attention; absent: n_head). */
  n_kv_head: int(1).optional(),
  /** Rotary base of a "llama" model. */
  rope_theta: num(1).optional(),
  comment: z.unknown().optional(),
}, { error: "an object" });

/** `engram train --config FILE`. */
export const TRAIN_CONFIG_FILE = z.strictObject({
  /** The training corpus (JSONL with "text" fields). */
  corpus: path,
  /** Folder holding tokenizer.json (or vocab.json + merges.txt), copied into the trained model. */
  tokenizer: path,
  /** Where the trained model is written. */
  out: path,
  /** Architecture of a model trained from scratch. */
  model: TRAIN_MODEL.default({ n_layer: 2, n_head: 4, n_embd: 64, n_positions: 32, family: "gpt2" }),
  /** Continue from this Hugging Face folder instead of a fresh initialization. */
  init: path.optional(),
  epochs: int(1).default(10),
  batch_size: int(1).default(32),
  lr: num(0).default(1e-3),
  warmup_steps: int(0).default(0),
  /** The cosine schedule decays the learning rate to lr · min_lr_ratio (at most 1). */
  min_lr_ratio: num(0).default(0.1),
  weight_decay: num(0).default(0.01),
  /** Global gradient-norm clip (0 disables). */
  grad_clip: num(0).default(1),
  seed: int(0).default(1),
  /** Save an intermediate checkpoint every this many steps (0: only at epoch ends). */
  checkpoint_every: int(0).default(0),
  /** Also save a checkpoint at the end of every epoch (TracIn uses them). */
  checkpoint_epochs: z.boolean({ error: "true or false" }).default(true),
  init_std: num(0).default(0.02),
  /** Batches are cut from windows of this many batches sorted by length (1: plain random batches). */
  length_buckets: int(1).default(1),
  comment: z.unknown().optional(),
});

/** A model folder's `engram_stats.json`: the corpus its key statistics C = E[kkᵀ] are computed from. */
export const STATS_DECLARATION_FILE = z.strictObject({
  /** The corpus file, relative to the model folder (or absolute). */
  corpus: z.string({ error: "the corpus file, relative to the folder" })
    .min(1, { error: "the corpus file, relative to the folder" }),
  /** Frame each record [eos] text [eos], as in training (default false). */
  eos_delimit: z.boolean({ error: "true or false" }).optional(),
  comment: z.unknown().optional(),
});

/**
 * One line of a training corpus (`engram train`, `attribute --train`): `{"id"?, "text", ...}`; other
 * fields (subject, relation, object in the fixture world) are kept by the readers that use them.
 */
export const CORPUS_RECORD = z.looseObject({
  /** The record's id (absent: `line<N>`); unique in the file. */
  id: z.union([z.string(), z.int()], { error: "a string or an integer" }).optional(),
  /** The training text. */
  text: z.string({ error: "a non-empty string" }).min(1, { error: "a non-empty string" }).refine(
    (t) => t.trim() !== "",
    {
      error: "a non-empty string",
    },
  ),
});
