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

function num(
  o: Record<string, unknown>,
  key: string,
  file: string,
  dflt: number | undefined,
  min: number,
  integer = false,
): number {
  const v = o[key];
  if (v === undefined) {
    if (dflt === undefined) throw new ConfigError(`required field is missing`, { file, field: key });
    return dflt;
  }
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    throw new ConfigError(
      `must be ${integer ? "an integer" : "a number"} >= ${min}, got ${JSON.stringify(v)}`,
      { file, field: key },
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
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string" || v === "") {
    throw new ConfigError(`must be a non-empty path`, { file, field: key });
  }
  return isAbsolute(v) ? v : join(base, v);
}

/** Parses and validates a training configuration object; `file` names it in errors. */
export function parseTrainConfig(json: unknown, file: string): TrainConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError("not a JSON object", { file });
  }
  const o = json as Record<string, unknown>;
  const known = new Set([
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
  for (const k of Object.keys(o)) {
    if (!known.has(k)) throw new ConfigError(`unknown field`, { file, field: k });
  }
  const base = dirname(file);
  const m = (o.model ?? {}) as Record<string, unknown>;
  if (typeof m !== "object" || Array.isArray(m)) {
    throw new ConfigError("must be an object", { file, field: "model" });
  }
  const model = {
    nLayer: num(m, "n_layer", file, 2, 1, true),
    nHead: num(m, "n_head", file, 4, 1, true),
    nEmbd: num(m, "n_embd", file, 64, 1, true),
    nPositions: num(m, "n_positions", file, 32, 2, true),
    nInner: m.n_inner === undefined ? undefined : num(m, "n_inner", file, undefined, 1, true),
  };
  if (model.nEmbd % model.nHead !== 0) {
    throw new ConfigError(`n_embd ${model.nEmbd} is not divisible by n_head ${model.nHead}`, {
      file,
      field: "model.n_head",
    });
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
    checkpointEpochs: o.checkpoint_epochs === undefined ? true : Boolean(o.checkpoint_epochs),
    initStd: num(o, "init_std", file, 0.02, 0),
    lengthBuckets: num(o, "length_buckets", file, 1, 1, true),
  };
  if (cfg.minLrRatio > 1) throw new ConfigError("must be <= 1", { file, field: "min_lr_ratio" });
  return cfg;
}

/** Reads a training configuration file. */
export async function readTrainConfig(file: string): Promise<TrainConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new ConfigError(`cannot read: ${(e as Error).message}`, { file });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`not valid JSON: ${(e as Error).message}`, { file });
  }
  return parseTrainConfig(json, file);
}
