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

/** A validated training configuration with absolute paths. */
export interface TrainConfig {
  corpus: string;
  /** Folder holding tokenizer.json (or vocab.json + merges.txt), copied into the trained model. */
  tokenizer: string;
  out: string;
  /** Architecture of a model trained from scratch (vocab size comes from the tokenizer). */
  model: { nLayer: number; nHead: number; nEmbd: number; nPositions: number; nInner?: number };
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
 * activations the backward pass keeps (9·C + 2·inner + heads·T floats) and per token the final layer
 * norm, logits and their gradient (2·C + 2·V). A lower bound of what the trainer allocates.
 */
export function trainingMemory(
  model: TrainConfig["model"],
  vocabSize: number,
  batchSize: number,
): TrainingMemory {
  const L = model.nLayer, C = model.nEmbd, H = model.nHead, T = model.nPositions;
  const I = model.nInner ?? 4 * C, V = vocabSize;
  const perLayer = 4 * C * C + 2 * C * I + 9 * C + I;
  const params = L * perLayer + (V + T) * C + 2 * C;
  const stateBytes = params * 4 * 4;
  const perToken = L * (9 * C + 2 * I + H * T) + 2 * C + 2 * V;
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

function num(
  o: Record<string, unknown>,
  key: string,
  file: string,
  dflt: number | undefined,
  min: number,
  integer = false,
  prefix = "",
): number {
  const v = own(o, key);
  if (v === undefined) {
    if (dflt === undefined) throw new ConfigError(`required field is missing`, { file, field: prefix + key });
    return dflt;
  }
  if (
    typeof v !== "number" || !Number.isFinite(v) || v < min || (integer && !Number.isSafeInteger(v))
  ) {
    throw new ConfigError(
      `must be ${integer ? "an integer" : "a number"} >= ${min}, got ${excerpt(v)}`,
      { file, field: prefix + key },
    );
  }
  return v;
}

function path(
  o: Record<string, unknown>,
  key: string,
  file: string,
  base: string,
  required = true,
): string | undefined {
  const v = own(o, key);
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string" || v === "" || v.includes("\0")) {
    throw new ConfigError(`must be a non-empty path, got ${excerpt(v)}`, { file, field: key });
  }
  return isAbsolute(v) ? v : join(base, v);
}

const KNOWN = new Set([
  "corpus",
  "tokenizer",
  "out",
  "model",
  "init",
  "epochs",
  "batch_size",
  "lr",
  "warmup_steps",
  "min_lr_ratio",
  "weight_decay",
  "grad_clip",
  "seed",
  "checkpoint_every",
  "checkpoint_epochs",
  "init_std",
  "length_buckets",
  "comment",
]);

const KNOWN_MODEL = new Set(["n_layer", "n_head", "n_embd", "n_positions", "n_inner", "comment"]);

function checkKeys(o: Record<string, unknown>, known: Set<string>, file: string, prefix: string): void {
  for (const k of Object.keys(o)) {
    if (!known.has(k)) {
      throw new ConfigError(`unknown field (known: ${[...known].join(", ")})`, {
        file,
        field: prefix + (k.length > 40 ? k.slice(0, 40) + "…" : k),
      });
    }
  }
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
  const o = json as Record<string, unknown>;
  checkKeys(o, KNOWN, file, "");
  const base = dirname(file);
  const mv = own(o, "model") ?? {};
  if (typeof mv !== "object" || mv === null || Array.isArray(mv)) {
    throw new ConfigError(`must be an object, got ${kindOf(mv)}`, { file, field: "model" });
  }
  const m = mv as Record<string, unknown>;
  checkKeys(m, KNOWN_MODEL, file, "model.");
  const model = {
    nLayer: num(m, "n_layer", file, 2, 1, true, "model."),
    nHead: num(m, "n_head", file, 4, 1, true, "model."),
    nEmbd: num(m, "n_embd", file, 64, 1, true, "model."),
    nPositions: num(m, "n_positions", file, 32, 2, true, "model."),
    nInner: own(m, "n_inner") === undefined
      ? undefined
      : num(m, "n_inner", file, undefined, 1, true, "model."),
  };
  if (model.nEmbd % model.nHead !== 0) {
    throw new ConfigError(`n_embd ${model.nEmbd} is not divisible by n_head ${model.nHead}`, {
      file,
      field: "model.n_head",
    });
  }
  const ce = own(o, "checkpoint_epochs");
  if (ce !== undefined && typeof ce !== "boolean") {
    throw new ConfigError(`must be true or false, got ${excerpt(ce)}`, { file, field: "checkpoint_epochs" });
  }
  const cfg: TrainConfig = {
    corpus: path(o, "corpus", file, base)!,
    tokenizer: path(o, "tokenizer", file, base)!,
    out: path(o, "out", file, base)!,
    init: path(o, "init", file, base, false),
    model,
    epochs: num(o, "epochs", file, 10, 1, true),
    batchSize: num(o, "batch_size", file, 32, 1, true),
    lr: num(o, "lr", file, 1e-3, 0),
    warmupSteps: num(o, "warmup_steps", file, 0, 0, true),
    minLrRatio: num(o, "min_lr_ratio", file, 0.1, 0),
    weightDecay: num(o, "weight_decay", file, 0.01, 0),
    gradClip: num(o, "grad_clip", file, 1, 0),
    seed: num(o, "seed", file, 1, 0, true),
    checkpointEvery: num(o, "checkpoint_every", file, 0, 0, true),
    checkpointEpochs: ce === undefined ? true : ce,
    initStd: num(o, "init_std", file, 0.02, 0),
    lengthBuckets: num(o, "length_buckets", file, 1, 1, true),
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
