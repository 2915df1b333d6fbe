/**
 * Training configuration, read from a JSON file. Paths are relative to the file's folder.
 *
 * ```json
 * { "corpus": "train.jsonl", "tokenizer": "fixtures/world", "out": "out/model",
 *   "model": { "n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 32 },
 *   "epochs": 20, "batch_size": 32, "lr": 0.003, "warmup_steps": 50, "min_lr_ratio": 0.1,
 *   "weight_decay": 0.01, "grad_clip": 1.0, "seed": 1, "checkpoint_every": 500, "init_std": 0.02,
 *   "length_buckets": 16 }
 * ```
 */
import { dirname, isAbsolute, join } from "node:path";
import { ConfigError } from "../errors.ts";
import { excerpt, kindOf } from "../io/excerpt.ts";
import { own, parseStrictJson } from "../io/strict_json.ts";
import { TRAIN_CONFIG_FILE, TRAIN_MODEL } from "../schema/train.ts";
import { safeParseInput } from "../schema/validate.ts";
import type { z } from "../schema/zod.ts";
import { type ModelConfig, resolveConfig } from "../model/config.ts";

/** A validated training configuration with absolute paths. */
export interface TrainConfig {
  corpus: string;
  /** Folder holding tokenizer.json (or vocab.json + merges.txt), copied into the trained model. */
  tokenizer: string;
  out: string;
  /** Architecture of a model trained from scratch (vocab size comes from the tokenizer). */
  model: TrainModel;
  /** Continue from this Hugging Face folder instead of a fresh initialization. */
  init?: string;
  epochs: number;
  batchSize: number;
  lr: number;
  warmupSteps: number;
  /** The cosine schedule decays the learning rate to lr * minLrRatio. */
  minLrRatio: number;
  weightDecay: number;
  /** Global gradient-norm clip (0 disables). */
  gradClip: number;
  seed: number;
  /** Save an intermediate checkpoint every this many steps (0: only at epoch ends). */
  checkpointEvery: number;
  /** Also save a checkpoint at the end of every epoch (TracIn uses them). */
  checkpointEpochs: boolean;
  initStd: number;
  /**
   * Batches are cut from windows of this many batches sorted by length (1: plain random batches), which
   * cuts padding; see `epochBatches`.
   */
  lengthBuckets: number;
}

/** The architecture of a model trained from scratch (the vocabulary comes from the tokenizer). */
export interface TrainModel {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  nPositions: number;
  /** MLP width (default 4 · nEmbd). */
  nInner?: number;
  /** Default "gpt2"; "llama": rotary positions, RMSNorm, gated SiLU MLP, no biases, tied head. */
  family?: "gpt2" | "llama";
  /** Key/value heads of a "llama" model (default nHead). */
  nKvHead?: number;
  /** Rotary base of a "llama" model (default 10000). */
  ropeTheta?: number;
}

/** Config-file names of the {@link resolveConfig} fields a {@link TrainModel} sets. */
const MODEL_FIELDS: Record<string, string> = {
  nLayer: "model.n_layer",
  nHead: "model.n_head",
  nEmbd: "model.n_embd",
  nPositions: "model.n_positions",
  nInner: "model.n_inner",
  nKvHead: "model.n_kv_head",
  headDim: "model.n_head",
  "rope.dim": "model.n_head",
};
/**
 * The model configuration of a fresh training run: GPT-2's, or for family "llama" rotary positions over
 * the whole head (Llama's "half" pairing, base `ropeTheta`, default 10000), RMSNorm, a gated SiLU MLP, no
 * biases and the head tied to the embedding.
 */
export function trainedModelConfig(m: TrainModel, vocabSize: number): ModelConfig {
  const base: ModelConfig = {
    nLayer: m.nLayer,
    nHead: m.nHead,
    nEmbd: m.nEmbd,
    nPositions: m.nPositions,
    nInner: m.nInner ?? 4 * m.nEmbd,
    vocabSize,
    layerNormEpsilon: 1e-5,
  };
  if (m.family !== "llama") return base;
  const headDim = m.nEmbd / m.nHead;
  return {
    ...base,
    family: "llama",
    architecture: "LlamaForCausalLM",
    nKvHead: m.nKvHead ?? m.nHead,
    headDim,
    norm: "rmsnorm",
    activation: "silu",
    rope: { dim: headDim, style: "half", theta: m.ropeTheta ?? 10000, maxPositionEmbeddings: m.nPositions },
    qkvBias: false,
    attnOutBias: false,
    mlpBias: false,
  };
}

/** Limits a training run must fit: the GPU adapter's buffer limits and the host memory. */
export interface TrainingLimits {
  /** The adapter's maxBufferSize (bytes); no per-buffer check when absent. */
  maxBufferSize?: number;
  /** The adapter's maxStorageBufferBindingSize (bytes); no per-buffer check when absent. */
  maxStorageBufferBindingSize?: number;
  /** Host memory bound (bytes); default {@link hostMemoryBytes}. */
  hostBytes?: number;
}

/** What a training run will allocate, estimated from the architecture alone (see {@link trainingMemory}). */
export interface TrainingMemory {
  /** Number of parameters. */
  params: number;
  /** Bytes of weights + gradients + two AdamW moments (float32). */
  stateBytes: number;
  /** Bytes of the activations kept for the backward pass of one full-length batch. */
  activationBytes: number;
  /** stateBytes + activationBytes. */
  totalBytes: number;
  /** Bytes of the largest single buffer (a weight matrix, the logits or the attention probabilities). */
  largestBufferBytes: number;
}

/**
 * Memory of training `model` with a vocabulary of `vocabSize` and `batchSize` sequences of
 * `model.nPositions` tokens, in closed form (no per-layer map is built, so an absurd `nLayer` costs
 * nothing): parameters × 4 bytes × (weights + gradients + 2 Adam moments), plus per token and layer the
 * activations the backward pass keeps (9·C + 2·inner + heads·T floats; a gated MLP 3·inner) and per
 * token the final norm, logits and their gradient (2·C + 2·V). A lower bound of what the trainer
 * allocates. A "llama" model has no biases and no position table, k / v of nKvHead heads and three MLP
 * matrices.
 */
export function trainingMemory(
  model: TrainConfig["model"],
  vocabSize: number,
  batchSize: number,
): TrainingMemory {
  const L = model.nLayer, C = model.nEmbd, H = model.nHead, T = model.nPositions;
  const I = model.nInner ?? 4 * C, V = vocabSize;
  const llama = model.family === "llama";
  const kv = (model.nKvHead ?? H) * (C / H);
  const perLayer = llama ? 2 * C * C + 2 * C * kv + 3 * C * I + 2 * C : 4 * C * C + 2 * C * I + 9 * C + I;
  const params = L * perLayer + (llama ? V * C + C : (V + T) * C + 2 * C);
  const stateBytes = params * 4 * 4;
  const perToken = L * (9 * C + (llama ? 3 : 2) * I + H * T) + 2 * C + 2 * V;
  const activationBytes = batchSize * T * perToken * 4;
  const largestBufferBytes = 4 *
    Math.max(V * C, T * C, C * I, 3 * C * C, batchSize * T * V, batchSize * H * T * T);
  return {
    params,
    stateBytes,
    activationBytes,
    totalBytes: stateBytes + activationBytes,
    largestBufferBytes,
  };
}

/** Total host memory in bytes (Deno.systemMemoryInfo), or 64 GiB when it cannot be read (no --allow-sys). */
export function hostMemoryBytes(): number {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return 64 * 2 ** 30;
  }
}

function gb(n: number): string {
  return n >= 1e15 ? `${n.toExponential(2)} bytes` : `${(n / 1e9).toFixed(n < 1e9 ? 3 : 1)} GB`;
}

/**
 * Throws a {@link ConfigError} naming the bytes needed and the limit when training `cfg.model` with
 * `vocabSize` tokens cannot fit the host memory or a single buffer exceeds the GPU adapter's limits.
 * `parseTrainConfig` runs it with vocabSize 0 (the tokenizer is not read yet), which can only
 * under-estimate; the trainer should run it again with the tokenizer's size and the adapter's limits.
 */
export function checkTrainingMemory(
  cfg: Pick<TrainConfig, "model" | "batchSize">,
  vocabSize: number,
  limits: TrainingLimits,
  file: string,
): TrainingMemory {
  const m = trainingMemory(cfg.model, vocabSize, cfg.batchSize);
  const host = limits.hostBytes ?? hostMemoryBytes();
  if (!(m.totalBytes <= host)) {
    throw new ConfigError(
      `training this model needs about ${gb(m.totalBytes)} (${
        m.params.toExponential(2)
      } parameters × 4 bytes × 4 ` +
        `for weights, gradients and two Adam moments, plus ${
          gb(m.activationBytes)
        } of activations for a batch of ` +
        `${cfg.batchSize} × ${cfg.model.nPositions} tokens), more than the ${gb(host)} of host memory`,
      { file, field: "model" },
    );
  }
  const gpuLimit = Math.min(limits.maxBufferSize ?? Infinity, limits.maxStorageBufferBindingSize ?? Infinity);
  if (!(m.largestBufferBytes <= gpuLimit)) {
    throw new ConfigError(
      `the largest buffer of this model needs ${
        gb(m.largestBufferBytes)
      }, more than the GPU adapter's limit of ` +
        `${gb(gpuLimit)} per buffer (maxBufferSize / maxStorageBufferBindingSize)`,
      { file, field: "model" },
    );
  }
  return m;
}

/** Options of {@link parseTrainConfig}. */
export interface ParseTrainConfigOptions {
  /** Limits the model must fit (default: host memory only). */
  limits?: TrainingLimits;
}

/** The dotted field name of a zod issue path (`model.n_layer`), as the messages have always named it. */
function dotted(path: ReadonlyArray<PropertyKey>): string {
  return path.map((p) => {
    const k = String(p);
    return k.length > 40 ? k.slice(0, 40) + "…" : k;
  }).join(".");
}

/** The {@link ConfigError} of a schema failure: an unknown field first, else the first bad value. */
function configError(error: z.ZodError, json: unknown, file: string): ConfigError {
  const unknown = error.issues.find((i) => i.code === "unrecognized_keys");
  if (unknown && unknown.code === "unrecognized_keys") {
    const known = Object.keys(unknown.path.length ? TRAIN_MODEL.shape : TRAIN_CONFIG_FILE.shape);
    return new ConfigError(`unknown field (known: ${known.join(", ")})`, {
      file,
      field: dotted([...unknown.path, unknown.keys[0]]),
    });
  }
  const iss = error.issues[0];
  let v: unknown = json;
  for (const p of iss.path) {
    v = v !== null && typeof v === "object" ? own(v as Record<string, unknown>, String(p)) : undefined;
  }
  const got = iss.code === "invalid_type" && iss.expected === "object" ? kindOf(v) : excerpt(v);
  return new ConfigError(`must be ${iss.message}, got ${got}`, { file, field: dotted(iss.path) });
}

/**
 * Parses and validates a training configuration object; `file` names it in errors. Only the object's own
 * keys count (a key named `valueOf` or `__proto__` is an unknown field, never an inherited member); every
 * value's type is checked, never coerced; unknown keys, at the top level and in `model`, are refused; the
 * model must fit the host memory (and `opts.limits`), see {@link checkTrainingMemory}.
 */
export function parseTrainConfig(
  json: unknown,
  file: string,
  opts: ParseTrainConfigOptions = {},
): TrainConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(`must hold a JSON object, got ${kindOf(json)}`, { file });
  }
  // The schema's own keys only: a key named `valueOf` or `__proto__` is an unknown field.
  const r = safeParseInput(TRAIN_CONFIG_FILE, json);
  if (!r.success) throw configError(r.error, json, file);
  const o = r.data;
  const base = dirname(file);
  const at = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const model: TrainModel = {
    nLayer: o.model.n_layer,
    nHead: o.model.n_head,
    nEmbd: o.model.n_embd,
    nPositions: o.model.n_positions,
    nInner: o.model.n_inner,
    family: o.model.family,
    nKvHead: o.model.n_kv_head,
    ropeTheta: o.model.rope_theta,
  };
  if (model.nEmbd % model.nHead !== 0) {
    throw new ConfigError(`n_embd ${model.nEmbd} is not divisible by n_head ${model.nHead}`, {
      file,
      field: "model.n_head",
    });
  }
  for (const [k, v] of [["n_kv_head", model.nKvHead], ["rope_theta", model.ropeTheta]] as const) {
    if (v !== undefined && model.family !== "llama") {
      throw new ConfigError(`applies to family "llama" only`, { file, field: `model.${k}` });
    }
  }
  // The sizes must fit together as the model layer checks them (kv heads divide heads, rotary needs an
  // even head size), named by the config file's fields.
  try {
    resolveConfig(trainedModelConfig(model, 1), file);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new ConfigError(e.message, { file, field: MODEL_FIELDS[e.field ?? ""] ?? "model" });
  }
  const cfg: TrainConfig = {
    corpus: at(o.corpus),
    tokenizer: at(o.tokenizer),
    out: at(o.out),
    init: o.init === undefined ? undefined : at(o.init),
    model,
    epochs: o.epochs,
    batchSize: o.batch_size,
    lr: o.lr,
    warmupSteps: o.warmup_steps,
    minLrRatio: o.min_lr_ratio,
    weightDecay: o.weight_decay,
    gradClip: o.grad_clip,
    seed: o.seed,
    checkpointEvery: o.checkpoint_every,
    checkpointEpochs: o.checkpoint_epochs,
    initStd: o.init_std,
    lengthBuckets: o.length_buckets,
  };
  if (cfg.minLrRatio > 1) throw new ConfigError("must be <= 1", { file, field: "min_lr_ratio" });
  // With `init` the architecture comes from that folder, checked when it is loaded.
  if (cfg.init === undefined) checkTrainingMemory(cfg, 0, opts.limits ?? {}, file);
  return cfg;
}

/** Parses training-configuration JSON text strictly (duplicate keys, deep nesting refused); see {@link parseTrainConfig}. */
export function parseTrainConfigText(
  text: string,
  file: string,
  opts: ParseTrainConfigOptions = {},
): TrainConfig {
  const json = parseStrictJson(text, {
    file,
    maxDepth: 32,
    error: (msg, field) => new ConfigError(msg, { file, field }),
  });
  return parseTrainConfig(json, file, opts);
}

/** Reads a training configuration file (see {@link parseTrainConfigText}). */
export async function readTrainConfig(
  file: string,
  opts: ParseTrainConfigOptions = {},
): Promise<TrainConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new ConfigError(`cannot read: ${(e as Error).message}`, { file });
  }
  return parseTrainConfigText(text, file, opts);
}
