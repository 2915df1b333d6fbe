/**
 * Loading and saving Hugging Face GPT-2 model folders: `config.json` + `model.safetensors` (+ tokenizer).
 *
 * Weights are returned under engram's canonical names (HF GPT-2 names without `transformer.`, Conv1D
 * [in, out] layout; see ../model/config.ts). The loader is strict: the config must describe a GPT-2
 * engram can run, every expected tensor must be present with the shape the config implies, and unknown
 * tensors are an error rather than silently ignored.
 */
import { excerpt } from "./excerpt.ts";
import { join } from "node:path";
import { ConfigError, EngramError, SafetensorsError } from "../errors.ts";
import type { HostTensor, ModelConfig, WeightMap } from "../model/config.ts";
import { weightShapes } from "../model/families/mod.ts";
import { writeDirAtomic } from "./atomic.ts";
import { readSafetensors, serializeSafetensors } from "./safetensors.ts";
import type { SafetensorsTensor } from "./safetensors.ts";
import { loadTokenizerIfPresent } from "./tokenizer.ts";
import type { BosMode, Tokenizer } from "./tokenizer.ts";

/** GELU variants accepted in `activation_function`. engram computes the tanh approximation for all. */
export const SUPPORTED_ACTIVATIONS = ["gelu_new", "gelu_pytorch_tanh", "gelu"] as const;
/** One of {@link SUPPORTED_ACTIVATIONS}. */
export type ActivationFunction = typeof SUPPORTED_ACTIVATIONS[number];

/** What {@link parseHFConfig} extracts from a `config.json`. */
export interface HFConfigInfo {
  config: ModelConfig;
  /** `activation_function` (default "gelu_new"). "gelu" (erf) is run with the tanh approximation. */
  activationFunction: ActivationFunction;
  /** `tie_word_embeddings` (default true). */
  tieWordEmbeddings: boolean;
  /** `bos_token_id` / `eos_token_id`, when given as integers. */
  bosTokenId?: number;
  eosTokenId?: number;
}

/** A loaded Hugging Face GPT-2 folder. */
export interface HFModel {
  config: ModelConfig;
  /** Canonical names; `lm_head.weight` [V, C] only when the head is not tied to wte. */
  weights: WeightMap;
  /** True when the head is wte (no `lm_head.weight`, or one identical to wte). */
  tiedLmHead: boolean;
  /** The folder's tokenizer, or undefined when it has no tokenizer files. */
  tokenizer?: Tokenizer;
  activationFunction: ActivationFunction;
  /** The raw config.json object. */
  hfConfig: Record<string, unknown>;
  dir: string;
}

const GPT2_ARCHS = ["GPT2LMHeadModel", "TransformerModel"];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Validates a parsed `config.json` and converts it. `file` names it in errors ({@link ConfigError} with
 * the offending field). Requires model_type "gpt2" (or architectures naming GPT2LMHeadModel/TransformerModel);
 * n_layer, n_head, n_embd, vocab_size and n_positions (or n_ctx) positive integers with n_embd % n_head
 * == 0; n_inner null/absent (4 * n_embd) or a positive integer; layer_norm_epsilon a positive number
 * (default 1e-5); activation_function one of {@link SUPPORTED_ACTIVATIONS}; and none of the GPT-2
 * options engram does not implement (cross-attention, unscaled or layer-scaled attention).
 */
export function parseHFConfig(json: unknown, file = "config.json"): HFConfigInfo {
  if (!isObject(json)) throw new ConfigError("must hold a JSON object", { file });
  const archs = Array.isArray(json.architectures)
    ? json.architectures.filter((a) => typeof a === "string")
    : [];
  const mt = json.model_type;
  const isGpt2 = mt === "gpt2" || (mt === undefined && archs.some((a) => GPT2_ARCHS.includes(a)));
  if (!isGpt2) {
    const what = mt !== undefined
      ? `model_type ${excerpt(mt, 60)}`
      : archs.length
      ? `architectures ${excerpt(archs, 80)}`
      : "no model_type";
    throw new ConfigError(`unknown architecture (${what}); engram supports GPT-2 (model_type "gpt2")`, {
      file,
      field: mt !== undefined || !archs.length ? "model_type" : "architectures",
    });
  }
  const posInt = (field: string, v: unknown): number => {
    if (v === undefined || v === null) throw new ConfigError("required field is missing", { file, field });
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      throw new ConfigError(`must be a positive integer, got ${excerpt(v, 60)}`, { file, field });
    }
    return v;
  };
  const nLayer = posInt("n_layer", json.n_layer);
  const nHead = posInt("n_head", json.n_head);
  const nEmbd = posInt("n_embd", json.n_embd);
  const vocabSize = posInt("vocab_size", json.vocab_size);
  const nPositions = json.n_positions !== undefined && json.n_positions !== null
    ? posInt("n_positions", json.n_positions)
    : json.n_ctx !== undefined && json.n_ctx !== null
    ? posInt("n_ctx", json.n_ctx)
    : posInt("n_positions", undefined);
  if (nEmbd % nHead !== 0) {
    throw new ConfigError(`n_embd ${nEmbd} is not divisible by n_head ${nHead}`, { file, field: "n_embd" });
  }
  const nInner = json.n_inner === undefined || json.n_inner === null
    ? 4 * nEmbd
    : posInt("n_inner", json.n_inner);
  let layerNormEpsilon = 1e-5;
  if (json.layer_norm_epsilon !== undefined && json.layer_norm_epsilon !== null) {
    const e = json.layer_norm_epsilon;
    if (typeof e !== "number" || !(e > 0) || !Number.isFinite(e)) {
      throw new ConfigError(`must be a positive number, got ${excerpt(e, 60)}`, {
        file,
        field: "layer_norm_epsilon",
      });
    }
    layerNormEpsilon = e;
  }
  const act = json.activation_function ?? "gelu_new";
  if (typeof act !== "string" || !(SUPPORTED_ACTIVATIONS as readonly string[]).includes(act)) {
    throw new ConfigError(
      `unsupported activation ${excerpt(act, 60)}; engram implements GELU (${
        SUPPORTED_ACTIVATIONS.join(", ")
      })`,
      { file, field: "activation_function" },
    );
  }
  const unsupported: [string, unknown, string][] = [
    ["add_cross_attention", true, "cross-attention is not implemented"],
    ["scale_attn_weights", false, "unscaled attention is not implemented"],
    ["scale_attn_by_inverse_layer_idx", true, "layer-index attention scaling is not implemented"],
  ];
  for (const [field, bad, why] of unsupported) {
    if (json[field] === bad) throw new ConfigError(`${field}=${bad}: ${why}`, { file, field });
  }
  const tie = json.tie_word_embeddings;
  if (tie !== undefined && typeof tie !== "boolean") {
    throw new ConfigError(`must be true or false, got ${excerpt(tie, 60)}`, {
      file,
      field: "tie_word_embeddings",
    });
  }
  const optId = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) ? v : undefined);
  return {
    config: { nLayer, nHead, nEmbd, vocabSize, nPositions, nInner, layerNormEpsilon },
    activationFunction: act as ActivationFunction,
    tieWordEmbeddings: tie ?? true,
    bosTokenId: optId(json.bos_token_id),
    eosTokenId: optId(json.eos_token_id),
  };
}

/** The {@link ModelConfig} of a parsed `config.json` (see {@link parseHFConfig} for the checks). */
export function configFromHF(json: unknown, file = "config.json"): ModelConfig {
  return parseHFConfig(json, file).config;
}

/**
 * A Hugging Face `config.json` object for `config` (model_type "gpt2", architectures
 * ["GPT2LMHeadModel"], HF field names). `extra` fields are added on top (e.g. bos_token_id).
 */
export function configToHF(
  config: ModelConfig,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    activation_function: "gelu_new",
    architectures: ["GPT2LMHeadModel"],
    attn_pdrop: 0.1,
    embd_pdrop: 0.1,
    initializer_range: 0.02,
    layer_norm_epsilon: config.layerNormEpsilon,
    model_type: "gpt2",
    n_ctx: config.nPositions,
    n_embd: config.nEmbd,
    n_head: config.nHead,
    n_inner: config.nInner === 4 * config.nEmbd ? null : config.nInner,
    n_layer: config.nLayer,
    n_positions: config.nPositions,
    reorder_and_upcast_attn: false,
    resid_pdrop: 0.1,
    scale_attn_by_inverse_layer_idx: false,
    scale_attn_weights: true,
    torch_dtype: "float32",
    use_cache: true,
    vocab_size: config.vocabSize,
    ...extra,
  };
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length),
    ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

/** Which config field determines each dimension, for "config says ..." messages. */
function shapeReason(name: string, c: ModelConfig): string {
  if (name === "wte.weight" || name === "lm_head.weight") {
    return `vocab_size=${c.vocabSize}, n_embd=${c.nEmbd}`;
  }
  if (name === "wpe.weight") return `n_positions=${c.nPositions}, n_embd=${c.nEmbd}`;
  if (name.includes("mlp.")) return `n_embd=${c.nEmbd}, n_inner=${c.nInner}`;
  return `n_embd=${c.nEmbd}`;
}

/** Matches HF's non-persistent attention buffers, which engram does not need. */
const IGNORED = /^h\.\d+\.attn\.(bias|masked_bias)$/;

/**
 * Bounds n_layer by the layers actually in the file, before any per-layer map is built: a config.json
 * with `n_layer: 3000000` would otherwise make a 36-million-entry expected-shape map (29 s, 2.6 GB) only to
 * report the first missing tensor. The other sizes (n_embd, n_inner, vocab_size, n_positions) only enter
 * the expected shapes, which are compared with the file's tensors one by one without allocating.
 */
function boundLayers(byName: Map<string, SafetensorsTensor>, c: ModelConfig, file: string): void {
  let layers = 0;
  for (const name of byName.keys()) {
    const m = /^h\.(\d{1,9})\./.exec(name);
    if (m) layers = Math.max(layers, Number(m[1]) + 1);
  }
  if (c.nLayer > layers) {
    // The same error the full check gives for the first missing layer, found without building the map.
    const name = `h.${layers}.ln_1.weight`;
    throw new SafetensorsError(
      `missing tensor '${name}' (expected shape [${c.nEmbd}]): config says n_layer=${c.nLayer}, the weights hold ${
        layers === 0 ? "no layers" : `layers 0..${layers - 1}`
      }`,
      { file, field: name },
    );
  }
}

/**
 * Maps the tensors of a GPT-2 safetensors file to canonical weights for `config`: strips `transformer.`,
 * drops `h.N.attn.bias`/`masked_bias` buffers, and checks presence and shape of every tensor
 * {@link weightShapes} expects. `lm_head.weight` identical to wte is dropped (tied); a different one
 * is kept. Missing tensor -> {@link SafetensorsError}; wrong shape or unknown extra tensor ->
 * {@link ConfigError}; both name the tensor and `file`.
 */
export function weightsFromSafetensors(
  tensors: Map<string, SafetensorsTensor>,
  config: ModelConfig,
  file: string,
  opts: { tieWordEmbeddings?: boolean } = {},
): { weights: WeightMap; tiedLmHead: boolean } {
  const byName = new Map<string, SafetensorsTensor>();
  for (const [raw, t] of tensors) {
    const name = raw.startsWith("transformer.") ? raw.slice("transformer.".length) : raw;
    if (IGNORED.test(name)) continue;
    if (byName.has(name)) {
      throw new SafetensorsError(
        `tensor '${name}' is stored twice (with and without the 'transformer.' prefix)`,
        { file, field: raw },
      );
    }
    byName.set(name, t);
  }
  boundLayers(byName, config, file);
  const weights: WeightMap = new Map();
  for (const [name, shape] of weightShapes(config)) {
    const t = byName.get(name);
    if (!t) {
      throw new SafetensorsError(`missing tensor '${name}' (expected shape ${shapeStr(shape)})`, {
        file,
        field: name,
      });
    }
    if (!sameShape(t.shape, shape)) {
      throw new ConfigError(
        `config says '${name}' is ${shapeStr(shape)} (${shapeReason(name, config)}) but weights have ${
          shapeStr(t.shape)
        }`,
        { file, field: name },
      );
    }
    weights.set(name, { shape: [...shape], data: t.data });
    byName.delete(name);
  }
  let tiedLmHead = true;
  const head = byName.get("lm_head.weight");
  if (head) {
    byName.delete("lm_head.weight");
    const want = [config.vocabSize, config.nEmbd];
    if (!sameShape(head.shape, want)) {
      throw new ConfigError(
        `config says 'lm_head.weight' is ${shapeStr(want)} (${
          shapeReason("lm_head.weight", config)
        }) but weights have ${shapeStr(head.shape)}`,
        { file, field: "lm_head.weight" },
      );
    }
    if (!sameBits(head.data, weights.get("wte.weight")!.data)) {
      tiedLmHead = false;
      weights.set("lm_head.weight", { shape: want, data: head.data });
    }
  } else if (opts.tieWordEmbeddings === false) {
    throw new SafetensorsError(
      "missing tensor 'lm_head.weight' (config.json has tie_word_embeddings=false)",
      {
        file,
        field: "lm_head.weight",
      },
    );
  }
  if (byName.size > 0) {
    const extra = [...byName.keys()];
    const list = extra.slice(0, 8).map((n) => `'${n}'`).join(", ") +
      (extra.length > 8 ? ` and ${extra.length - 8} more` : "");
    throw new ConfigError(`unexpected tensor(s) ${list} not part of a GPT-2 with n_layer=${config.nLayer}`, {
      file,
      field: extra[0],
    });
  }
  return { weights, tiedLmHead };
}

async function readConfigJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError("config.json not found", { file: path, cause: e });
    }
    throw new ConfigError(`cannot read: ${(e as Error).message}`, { file: path, cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`not valid JSON: ${(e as Error).message}`, { file: path, cause: e });
  }
  if (!isObject(json)) throw new ConfigError("must hold a JSON object", { file: path });
  return json;
}

/** Options of {@link loadHFModel}. */
export interface LoadHFModelOptions {
  /**
   * BOS policy of the prompts engram encodes with the folder's tokenizer (default "auto": what the
   * tokenizer itself does, read from its files; config.json's bos_token_id does not decide it).
   */
  bos?: BosMode;
}

/**
 * Loads a Hugging Face GPT-2 folder: `config.json` (validated by {@link parseHFConfig}), `model.safetensors`
 * (mapped by {@link weightsFromSafetensors}) and the tokenizer if the folder has one. Errors are
 * {@link EngramError}s naming the file and field or tensor.
 */
export async function loadHFModel(dir: string, opts: LoadHFModelOptions = {}): Promise<HFModel> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new EngramError("config", "model folder not found", { file: dir, cause: e });
    }
    throw new EngramError("config", `cannot access model folder: ${(e as Error).message}`, {
      file: dir,
      cause: e,
    });
  }
  if (!st.isDirectory) throw new EngramError("config", "not a folder (give the model folder)", { file: dir });
  const cfgPath = join(dir, "config.json");
  const hfConfig = await readConfigJson(cfgPath);
  const info = parseHFConfig(hfConfig, cfgPath);
  const stPath = join(dir, "model.safetensors");
  try {
    await Deno.stat(stPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new SafetensorsError(`cannot access: ${(e as Error).message}`, { file: stPath });
    }
    let hint = "";
    for (const alt of ["model.safetensors.index.json", "pytorch_model.bin"]) {
      try {
        await Deno.stat(join(dir, alt));
        hint = ` (found ${alt}: ${
          alt.endsWith(".bin") ? "PyTorch pickles are" : "sharded checkpoints are"
        } not supported; convert to a single model.safetensors)`;
        break;
      } catch { /* not there */ }
    }
    throw new SafetensorsError(`model.safetensors not found${hint}`, { file: stPath, cause: e });
  }
  const file = await readSafetensors(stPath);
  const { weights, tiedLmHead } = weightsFromSafetensors(file.tensors, info.config, stPath, {
    tieWordEmbeddings: info.tieWordEmbeddings,
  });
  const tokenizer = await loadTokenizerIfPresent(dir, { bos: opts.bos });
  return {
    config: info.config,
    weights,
    tiedLmHead,
    tokenizer,
    activationFunction: info.activationFunction,
    hfConfig,
    dir,
  };
}

/** What {@link saveHFModel} writes. */
export interface SaveHFModelInput {
  config: ModelConfig;
  /** Canonical weights; include `lm_head.weight` for an untied head. */
  weights: WeightMap;
  /** Folder to copy tokenizer files from (tokenizer.json, vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json — those present). */
  tokenizerFrom?: string;
  /** Recorded as activation_function (default "gelu_new"). */
  activationFunction?: ActivationFunction;
  /** Extra config.json fields (e.g. bos_token_id, eos_token_id). */
  extraConfig?: Record<string, unknown>;
  /**
   * The source folder's config.json: its fields (unknown ones included) are kept, in their order, under
   * the ones engram writes. A tied head is written as `tie_word_embeddings: true`.
   */
  baseConfig?: Record<string, unknown>;
  /** Further files of the folder (name -> content), e.g. from src/io/model_folder.ts otherModelFiles. */
  otherFiles?: Record<string, Uint8Array | string>;
}

/** config.json fields that describe the weights engram writes: always engram's values. */
const STRUCTURAL = new Set([
  "model_type",
  "n_layer",
  "n_head",
  "n_embd",
  "n_inner",
  "n_positions",
  "n_ctx",
  "vocab_size",
  "layer_norm_epsilon",
]);

/**
 * The source config's fields in its order, with engram's values for the structural fields and `extra`,
 * and engram's defaults for what the source lacks.
 */
function mergeConfig(
  base: Record<string, unknown> | undefined,
  written: Record<string, unknown>,
  extra: Record<string, unknown>,
): Record<string, unknown> {
  if (!base) return written;
  // No prototype: a key named "__proto__" in the source config stays a plain key.
  const out: Record<string, unknown> = Object.create(null);
  for (const k of Object.keys(base)) out[k] = base[k];
  for (const [k, v] of Object.entries(written)) {
    if (!Object.hasOwn(base, k) || STRUCTURAL.has(k) || Object.hasOwn(extra, k)) out[k] = v;
  }
  return out;
}

/**
 * Writes a Hugging Face GPT-2 folder atomically (see {@link writeDirAtomic}): config.json
 * ({@link configToHF}), model.safetensors (F32, `transformer.`-prefixed names as GPT2LMHeadModel saves
 * them, plus `lm_head.weight` when untied) and tokenizer files copied from `tokenizerFrom`. Weights are
 * checked against the config first. Refuses an existing `dir` (code "exists") unless `overwrite`.
 */
export async function saveHFModel(
  dir: string,
  model: SaveHFModelInput,
  opts: { overwrite?: boolean } = {},
): Promise<void> {
  await writeDirAtomic(dir, await hfModelFiles(dir, model), { ...opts, kind: "model" });
}

/**
 * The files of the folder {@link saveHFModel} writes (name -> content), for callers that stage several
 * folders as one unit (src/io/atomic.ts stageDir). `dir` only names the folder in errors.
 */
export async function hfModelFiles(
  dir: string,
  model: SaveHFModelInput,
): Promise<Record<string, Uint8Array | string>> {
  const label = join(dir, "model.safetensors");
  const expected = weightShapes(model.config);
  const untied = model.weights.has("lm_head.weight");
  if (untied) expected.set("lm_head.weight", [model.config.vocabSize, model.config.nEmbd]);
  for (const [name, shape] of expected) {
    const t = model.weights.get(name);
    if (!t) {
      throw new SafetensorsError(`missing tensor '${name}' in the weights to save`, {
        file: label,
        field: name,
      });
    }
    if (!sameShape(t.shape, shape)) {
      throw new ConfigError(
        `config says '${name}' is ${shapeStr(shape)} but weights have ${shapeStr(t.shape)}`,
        {
          file: label,
          field: name,
        },
      );
    }
  }
  for (const name of model.weights.keys()) {
    if (!expected.has(name)) {
      throw new ConfigError(`unexpected tensor '${name}' in the weights to save`, {
        file: label,
        field: name,
      });
    }
  }
  const out = new Map<string, HostTensor>();
  for (const [name, t] of model.weights) out.set(name === "lm_head.weight" ? name : `transformer.${name}`, t);
  const extra: Record<string, unknown> = { ...model.extraConfig };
  if (model.activationFunction) extra.activation_function = model.activationFunction;
  if (untied) extra.tie_word_embeddings = false;
  else if (model.baseConfig?.tie_word_embeddings === false) extra.tie_word_embeddings = true;
  const files: Record<string, Uint8Array | string> = {
    ...model.otherFiles,
    "config.json":
      JSON.stringify(mergeConfig(model.baseConfig, configToHF(model.config, extra), extra), null, 2) +
      "\n",
    "model.safetensors": serializeSafetensors(out, { format: "pt" }),
  };
  if (model.tokenizerFrom !== undefined) {
    let copied = 0;
    for (
      const f of [
        "tokenizer.json",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
      ]
    ) {
      const p = join(model.tokenizerFrom, f);
      try {
        files[f] = await Deno.readFile(p);
        if (f !== "tokenizer_config.json" && f !== "special_tokens_map.json") copied++;
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) {
          throw new EngramError("tokenizer", `cannot read: ${(e as Error).message}`, { file: p, cause: e });
        }
      }
    }
    if (copied === 0) {
      throw new EngramError(
        "tokenizer",
        "no tokenizer files (tokenizer.json, or vocab.json + merges.txt) to copy",
        {
          file: model.tokenizerFrom,
        },
      );
    }
  }
  return files;
}
