/**
 * Hugging Face `config.json` <-> {@link ModelConfig}, for every family engram runs: GPT-2, the Llama
 * family (llama, mistral, qwen2, qwen3), GPT-NeoX / Pythia (gpt_neox) and GPT-J (gptj).
 *
 * Fields are read as transformers' configuration and modeling classes read them (defaults included);
 * options engram does not implement are refused by name with a {@link ConfigError} rather than ignored,
 * so a folder either runs as transformers runs it or does not load.
 */
import { ConfigError } from "../errors.ts";
import type { Activation, Family, ModelConfig } from "../model/config.ts";
import { resolveConfig } from "../model/config.ts";
import type { RopeConfig, RopeScaling } from "../model/rope.ts";
import { excerpt } from "./excerpt.ts";
import {
  HF_CONFIG_FIELDS,
  HF_ROPE_FIELDS,
  HF_RULES,
  HF_WANT,
  type HfFieldKind,
} from "../schema/hf_config.ts";

/** GPT-2 `activation_function` values accepted (HF ACT2FN names of the GELU forms). */
export const SUPPORTED_ACTIVATIONS = ["gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu"] as const;
/** One of {@link SUPPORTED_ACTIVATIONS}. */
export type ActivationFunction = typeof SUPPORTED_ACTIVATIONS[number];

/** The `model_type`s engram loads. */
export const SUPPORTED_MODEL_TYPES = [
  "gpt2",
  "llama",
  "mistral",
  "qwen2",
  "qwen3",
  "gpt_neox",
  "gptj",
] as const;
/** One of {@link SUPPORTED_MODEL_TYPES}. */
export type ModelType = typeof SUPPORTED_MODEL_TYPES[number];

/** The causal-LM class transformers builds for each model_type (recorded as `ModelConfig.architecture`). */
export const ARCHITECTURES: Readonly<Record<ModelType, string>> = {
  gpt2: "GPT2LMHeadModel",
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
  gpt_neox: "GPTNeoXForCausalLM",
  gptj: "GPTJForCausalLM",
};

/** The engram family of each model_type. */
export const FAMILY_OF: Readonly<Record<ModelType, Family>> = {
  gpt2: "gpt2",
  llama: "llama",
  mistral: "llama",
  qwen2: "llama",
  qwen3: "llama",
  gpt_neox: "neox",
  gptj: "gptj",
};

/** What {@link parseHFConfig} extracts from a `config.json`. */
export interface HFConfigInfo {
  /** The model (GPT-2: the seven core numbers, plus `activation` when it is the erf GELU). */
  config: ModelConfig;
  /** `model_type` (from `architectures` when absent). */
  modelType: ModelType;
  /** The activation as config.json names it (`activation_function` / `hidden_act`, or its default). */
  activationFunction: string;
  /** `tie_word_embeddings` (default: true for GPT-2, false for every other family, as in transformers). */
  tieWordEmbeddings: boolean;
  /** `bos_token_id` / `eos_token_id`, when given as integers. */
  bosTokenId?: number;
  eosTokenId?: number;
  /** Every `eos_token_id` when it is a list of integers (Llama 3 instruct), else the one id. */
  eosTokenIds?: number[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const own = (o: Record<string, unknown>, k: string): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);

/** Typed readers of one config object, each naming `file` and the field in its errors. */
class Fields {
  constructor(readonly json: Record<string, unknown>, readonly file: string, readonly prefix = "") {}

  err(field: string, msg: string): ConfigError {
    return new ConfigError(msg, { file: this.file, field: this.prefix + field });
  }
  get(field: string): unknown {
    return own(this.json, field);
  }
  /** Absent or null. */
  unset(field: string): boolean {
    const v = this.get(field);
    return v === undefined || v === null;
  }
  /**
   * `field` read as `kind` (its rule in src/schema/hf_config.ts): absent or null gives `dflt`, or a
   * "required field is missing" error without one; a value the rule refuses is an error quoting it.
   */
  read<T>(field: string, kind: HfFieldKind, dflt?: T): T {
    const table = this.prefix === "" ? HF_CONFIG_FIELDS : HF_ROPE_FIELDS;
    // The schema lists every field read here, with the same kind: a mismatch is a bug, not bad input.
    if (table[field] !== kind) throw new Error(`internal: config field '${field}' is not a ${kind} field`);
    const v = this.get(field);
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      throw this.err(field, "required field is missing");
    }
    if (!HF_RULES[kind].safeParse(v).success) {
      throw this.err(field, `must be ${HF_WANT[kind]}, got ${excerpt(v, 60)}`);
    }
    return v as T;
  }
  posInt(field: string, dflt?: number): number {
    return this.read(field, "posInt", dflt);
  }
  posNum(field: string, dflt?: number): number {
    return this.read(field, "posNum", dflt);
  }
  /** A non-negative integer (0 allowed). */
  posIntOrZero(field: string, dflt: number): number {
    return this.read(field, "posIntOrZero", dflt);
  }
  bool(field: string, dflt: boolean): boolean {
    return this.read(field, "bool", dflt);
  }
  str(field: string, dflt: string): string {
    return this.read(field, "str", dflt);
  }
}

/** The model_type of `json`: its `model_type`, or the family its `architectures` name. */
function modelTypeOf(json: Record<string, unknown>, file: string): ModelType {
  const mt = own(json, "model_type");
  const archs = Array.isArray(json.architectures)
    ? json.architectures.filter((a): a is string => typeof a === "string")
    : [];
  if (typeof mt === "string" && (SUPPORTED_MODEL_TYPES as readonly string[]).includes(mt)) {
    return mt as ModelType;
  }
  if (mt === undefined) {
    if (archs.includes("TransformerModel")) return "gpt2";
    for (const [t, a] of Object.entries(ARCHITECTURES)) if (archs.includes(a)) return t as ModelType;
  }
  const what = mt !== undefined
    ? `model_type ${excerpt(mt, 60)}`
    : archs.length
    ? `architectures ${excerpt(archs, 80)}`
    : "no model_type";
  throw new ConfigError(
    `unknown architecture (${what}); engram supports model_type ${SUPPORTED_MODEL_TYPES.join(", ")}`,
    { file, field: mt !== undefined || !archs.length ? "model_type" : "architectures" },
  );
}

/**
 * Validates a parsed `config.json` of any supported family and converts it (see the module comment).
 * `file` names it in errors: a {@link ConfigError} naming the offending field (HF's name).
 */
export function parseHFConfig(json: unknown, file = "config.json"): HFConfigInfo {
  if (!isObject(json)) throw new ConfigError("must hold a JSON object", { file });
  const modelType = modelTypeOf(json, file);
  const f = new Fields(json, file);
  const parsed = modelType === "gpt2"
    ? parseGpt2(f)
    : modelType === "gpt_neox"
    ? parseNeox(f)
    : modelType === "gptj"
    ? parseGptj(f)
    : parseLlama(f, modelType);
  const family = FAMILY_OF[modelType];
  const tieWordEmbeddings = f.bool("tie_word_embeddings", family === "gpt2");
  if (tieWordEmbeddings && (family === "neox" || family === "gptj")) {
    throw f.err(
      "tie_word_embeddings",
      `tie_word_embeddings=true: engram runs ${ARCHITECTURES[modelType]} with its own untied head only`,
    );
  }
  // The generic checks (sizes fit together) as a backstop; the family parsers named HF fields first.
  resolveConfig(parsed.config, file);
  const optId = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined);
  const eos = own(json, "eos_token_id");
  const eosList = Array.isArray(eos) && eos.length > 0 && eos.every((x) => optId(x) !== undefined)
    ? (eos as number[]).slice()
    : optId(eos) !== undefined
    ? [eos as number]
    : undefined;
  return {
    config: parsed.config,
    modelType,
    activationFunction: parsed.activationFunction,
    tieWordEmbeddings,
    bosTokenId: optId(own(json, "bos_token_id")),
    eosTokenId: optId(eos),
    eosTokenIds: eosList,
  };
}

interface Parsed {
  config: ModelConfig;
  activationFunction: string;
}

/** GELU variants by HF ACT2FN name: "gelu" is exact (erf); the others are the tanh approximation. */
function gelu(f: Fields, field: string, dflt: string, allowed: readonly string[]): [Activation, string] {
  const act = f.str(field, dflt);
  if (!allowed.includes(act)) {
    throw f.err(field, `unsupported activation ${excerpt(act, 60)}; engram implements ${allowed.join(", ")}`);
  }
  return [act === "gelu" ? "gelu_erf" : "gelu_tanh", act];
}

function parseGpt2(f: Fields): Parsed {
  const nLayer = f.posInt("n_layer");
  const nHead = f.posInt("n_head");
  const nEmbd = f.posInt("n_embd");
  const vocabSize = f.posInt("vocab_size");
  const nPositions = !f.unset("n_positions")
    ? f.posInt("n_positions")
    : !f.unset("n_ctx")
    ? f.posInt("n_ctx")
    : f.posInt("n_positions");
  if (nEmbd % nHead !== 0) throw f.err("n_embd", `n_embd ${nEmbd} is not divisible by n_head ${nHead}`);
  const nInner = f.posInt("n_inner", 4 * nEmbd);
  const layerNormEpsilon = f.posNum("layer_norm_epsilon", 1e-5);
  const [activation, act] = gelu(f, "activation_function", "gelu_new", SUPPORTED_ACTIVATIONS);
  const unsupported: [string, unknown, string][] = [
    ["add_cross_attention", true, "cross-attention is not implemented"],
    ["scale_attn_weights", false, "unscaled attention is not implemented"],
    ["scale_attn_by_inverse_layer_idx", true, "layer-index attention scaling is not implemented"],
  ];
  for (const [field, bad, why] of unsupported) {
    if (f.get(field) === bad) throw f.err(field, `${field}=${bad}: ${why}`);
  }
  const config: ModelConfig = { nLayer, nHead, nEmbd, vocabSize, nPositions, nInner, layerNormEpsilon };
  // GPT-2 keeps its seven-number form; only the exact GELU is a departure from the defaults.
  if (activation === "gelu_erf") config.activation = "gelu_erf";
  return { config, activationFunction: act };
}

/** Default rope_theta (every family here uses 10000 unless config.json says otherwise). */
const ROPE_THETA = 10000;

/**
 * `rope_scaling` (or transformers 5's `rope_parameters`) as engram's {@link RopeScaling}: types
 * "linear", "dynamic" and "llama3" ("default" = none); any other type is refused by name.
 */
function ropeScaling(f: Fields, nPositions: number): RopeScaling | undefined {
  const field = !f.unset("rope_scaling")
    ? "rope_scaling"
    : !f.unset("rope_parameters")
    ? "rope_parameters"
    : "";
  if (!field) return undefined;
  const v = f.get(field);
  if (!isObject(v)) throw f.err(field, `must be an object, got ${excerpt(v, 60)}`);
  const s = new Fields(v, f.file, field + ".");
  const typeField = !s.unset("rope_type") ? "rope_type" : "type";
  const type = s.str(typeField, "");
  const factor = () => s.posNum("factor");
  switch (type) {
    case "default":
      return undefined;
    case "linear":
      return { type: "linear", factor: factor() };
    case "dynamic":
      return {
        type: "dynamic",
        factor: factor(),
        originalMaxPositionEmbeddings: s.posInt("original_max_position_embeddings", nPositions),
      };
    case "llama3": {
      const r: RopeScaling = {
        type: "llama3",
        factor: factor(),
        lowFreqFactor: s.posNum("low_freq_factor"),
        highFreqFactor: s.posNum("high_freq_factor"),
        originalMaxPositionEmbeddings: s.posInt("original_max_position_embeddings"),
      };
      if (!(r.highFreqFactor > r.lowFreqFactor)) {
        throw s.err("high_freq_factor", "must be greater than low_freq_factor");
      }
      return r;
    }
    case "":
      throw f.err(field, `has no rope_type (engram implements linear, dynamic, llama3)`);
    default:
      throw f.err(
        field,
        `unsupported rope_scaling type ${excerpt(type, 40)}; engram implements linear, dynamic, llama3`,
      );
  }
}

/** rope_theta (or `rope_parameters.rope_theta`). */
function ropeTheta(f: Fields, field = "rope_theta"): number {
  if (!f.unset(field)) return f.posNum(field);
  const p = f.get("rope_parameters");
  if (isObject(p) && own(p, "rope_theta") !== undefined) {
    return new Fields(p, f.file, "rope_parameters.").posNum("rope_theta");
  }
  return ROPE_THETA;
}

/**
 * The number of kv heads, dividing the attention heads. null means one per head; an absent field takes
 * the configuration class's default (MistralConfig 8, Qwen2Config and Qwen3Config 32, LlamaConfig one
 * per head).
 */
function kvHeads(f: Fields, nHead: number, absent: number | undefined): number {
  const dflt = f.get("num_key_value_heads") === undefined ? absent ?? nHead : nHead;
  const kv = f.posInt("num_key_value_heads", dflt);
  if (nHead % kv !== 0) {
    throw f.err(
      "num_key_value_heads",
      `num_key_value_heads ${kv}${
        f.unset("num_key_value_heads") ? " (transformers' default)" : ""
      } does not divide num_attention_heads ${nHead}`,
    );
  }
  return kv;
}

function parseLlama(f: Fields, mt: "llama" | "mistral" | "qwen2" | "qwen3"): Parsed {
  const nLayer = f.posInt("num_hidden_layers");
  const nHead = f.posInt("num_attention_heads");
  const nEmbd = f.posInt("hidden_size");
  const vocabSize = f.posInt("vocab_size");
  const nPositions = f.posInt("max_position_embeddings");
  const nInner = f.posInt("intermediate_size");
  // Qwen3Config's head_dim defaults to 128; the others derive it from the width.
  const headDim = f.unset("head_dim") && mt === "qwen3" && f.get("head_dim") === undefined
    ? 128
    : f.posInt("head_dim", nEmbd / nHead);
  if (!Number.isSafeInteger(headDim)) {
    throw f.err(
      "num_attention_heads",
      `hidden_size ${nEmbd} is not divisible by num_attention_heads ${nHead}`,
    );
  }
  const nKvHead = kvHeads(f, nHead, mt === "mistral" ? 8 : mt === "llama" ? undefined : 32);
  const act = f.str("hidden_act", "silu");
  if (act !== "silu" && act !== "swish") {
    throw f.err("hidden_act", `unsupported activation ${excerpt(act, 60)}; the Llama family runs silu`);
  }
  if (!f.unset("partial_rotary_factor") && f.get("partial_rotary_factor") !== 1) {
    const p = f.posNum("partial_rotary_factor");
    throw f.err(
      "partial_rotary_factor",
      p > 1
        ? `partial_rotary_factor ${p} is outside (0, 1]`
        : `partial_rotary_factor ${p}: ${ARCHITECTURES[mt]} rotates the whole head`,
    );
  }
  const rope: RopeConfig = {
    dim: headDim,
    style: "half",
    theta: ropeTheta(f),
    maxPositionEmbeddings: nPositions,
  };
  const scaling = ropeScaling(f, nPositions);
  if (scaling) rope.scaling = scaling;
  let qkvBias = false, attnOutBias = false, mlpBias = false;
  if (mt === "llama") {
    qkvBias = attnOutBias = f.bool("attention_bias", false);
    mlpBias = f.bool("mlp_bias", false);
  } else if (mt === "qwen3") {
    qkvBias = attnOutBias = f.bool("attention_bias", false);
  } else if (mt === "qwen2") {
    qkvBias = true; // Qwen2's q/k/v projections always have biases, o_proj never
  }
  const slidingWindow = mt === "mistral"
    ? (f.get("sliding_window") === null ? undefined : f.posInt("sliding_window", 4096))
    : mt === "qwen2" || mt === "qwen3"
    ? qwenWindow(f, nLayer)
    : undefined;
  const config: ModelConfig = {
    nLayer,
    nHead,
    nEmbd,
    vocabSize,
    nPositions,
    nInner,
    layerNormEpsilon: f.posNum("rms_norm_eps", 1e-6),
    family: "llama",
    architecture: ARCHITECTURES[mt],
    nKvHead,
    headDim,
    norm: "rmsnorm",
    activation: "silu",
    rope,
    parallelResidual: "none",
    qkvBias,
    attnOutBias,
    mlpBias,
    headBias: false,
    qkNorm: mt === "qwen3",
  };
  if (slidingWindow !== undefined) config.slidingWindow = slidingWindow;
  return { config, activationFunction: act };
}

/**
 * Qwen2/Qwen3's window: with use_sliding_window, layers l >= max_window_layers attend through
 * sliding_window, the others fully (transformers' layer_types). engram applies one window to every
 * layer, so only "none slide" and "all slide" are accepted.
 */
function qwenWindow(f: Fields, nLayer: number): number | undefined {
  const lt = f.get("layer_types");
  if (lt !== undefined && lt !== null) {
    if (
      !Array.isArray(lt) || lt.length !== nLayer ||
      !lt.every((t) => t === "full_attention" || t === "sliding_attention")
    ) {
      throw f.err(
        "layer_types",
        `must list "full_attention" or "sliding_attention" for each of ${nLayer} layers`,
      );
    }
  }
  // transformers sets sliding_window to None unless use_sliding_window, whatever layer_types says.
  if (!f.bool("use_sliding_window", false)) return undefined;
  const sliding = new Set(lt as string[] | null | undefined ?? []);
  if (f.get("sliding_window") === null) return undefined;
  const window = f.posInt("sliding_window", 4096);
  if (lt !== undefined && lt !== null) {
    if (sliding.size > 1) {
      throw f.err(
        "layer_types",
        "mixes full and sliding-window layers: engram applies one window to all layers",
      );
    }
    return sliding.has("sliding_attention") ? window : undefined;
  }
  const from = f.posIntOrZero("max_window_layers", 28);
  if (from >= nLayer) return undefined;
  if (from > 0) {
    throw f.err(
      "max_window_layers",
      `max_window_layers=${from} < num_hidden_layers=${nLayer}: layers ${from}.. slide and the first ${from} do not; engram applies one window to all layers`,
    );
  }
  return window;
}

function parseNeox(f: Fields): Parsed {
  const nLayer = f.posInt("num_hidden_layers");
  const nHead = f.posInt("num_attention_heads");
  const nEmbd = f.posInt("hidden_size");
  const vocabSize = f.posInt("vocab_size");
  const nPositions = f.posInt("max_position_embeddings");
  const nInner = f.posInt("intermediate_size");
  if (nEmbd % nHead !== 0) {
    throw f.err("hidden_size", `hidden_size ${nEmbd} is not divisible by num_attention_heads ${nHead}`);
  }
  const headDim = nEmbd / nHead;
  if (!f.unset("num_key_value_heads") && f.get("num_key_value_heads") !== nHead) {
    throw f.err("num_key_value_heads", `GPT-NeoX has one key/value head per attention head (${nHead})`);
  }
  const [activation, act] = gelu(f, "hidden_act", "gelu", [
    "gelu",
    "gelu_new",
    "gelu_fast",
    "gelu_pytorch_tanh",
  ]);
  const pctField = !f.unset("rotary_pct")
    ? "rotary_pct"
    : !f.unset("partial_rotary_factor")
    ? "partial_rotary_factor"
    : "rotary_pct";
  const pct = f.posNum(pctField, 0.25);
  if (pct > 1) throw f.err(pctField, `${pctField} ${pct} is outside (0, 1]`);
  const dim = Math.floor(headDim * pct);
  if (dim <= 0 || dim % 2 !== 0) {
    throw f.err(pctField, `rotary dimension int(${headDim} * ${pct}) = ${dim} must be even and positive`);
  }
  if (f.get("attention_bias") === false) {
    throw f.err(
      "attention_bias",
      "attention_bias=false: engram runs GPT-NeoX with query_key_value and dense biases",
    );
  }
  const rope: RopeConfig = {
    dim,
    style: "half",
    theta: !f.unset("rotary_emb_base") ? f.posNum("rotary_emb_base") : ropeTheta(f),
    maxPositionEmbeddings: nPositions,
  };
  const scaling = ropeScaling(f, nPositions);
  if (scaling) rope.scaling = scaling;
  return {
    config: {
      nLayer,
      nHead,
      nEmbd,
      vocabSize,
      nPositions,
      nInner,
      layerNormEpsilon: f.posNum("layer_norm_eps", 1e-5),
      family: "neox",
      architecture: ARCHITECTURES.gpt_neox,
      nKvHead: nHead,
      headDim,
      norm: "layernorm",
      activation,
      rope,
      parallelResidual: f.bool("use_parallel_residual", true) ? "two_norms" : "none",
      qkvBias: true,
      attnOutBias: true,
      mlpBias: true,
      headBias: false,
      qkNorm: false,
    },
    activationFunction: act,
  };
}

function parseGptj(f: Fields): Parsed {
  const nLayer = f.posInt("n_layer");
  const nHead = f.posInt("n_head");
  const nEmbd = f.posInt("n_embd");
  const vocabSize = f.posInt("vocab_size");
  const nPositions = f.posInt("n_positions");
  if (nEmbd % nHead !== 0) throw f.err("n_embd", `n_embd ${nEmbd} is not divisible by n_head ${nHead}`);
  const headDim = nEmbd / nHead;
  const nInner = f.posInt("n_inner", 4 * nEmbd);
  const [activation, act] = gelu(f, "activation_function", "gelu_new", SUPPORTED_ACTIVATIONS);
  let dim: number;
  if (f.get("rotary_dim") === null) {
    // transformers then builds its sin/cos table over n_embd, which fits the heads only when n_head = 1.
    if (nHead !== 1) {
      throw f.err("rotary_dim", "rotary_dim=null with n_head > 1 does not run in transformers");
    }
    dim = headDim;
  } else dim = f.posInt("rotary_dim", 64);
  if (dim % 2 !== 0 || dim > headDim) {
    throw f.err("rotary_dim", `rotary_dim ${dim} must be even and at most the head size ${headDim}`);
  }
  return {
    config: {
      nLayer,
      nHead,
      nEmbd,
      vocabSize,
      nPositions,
      nInner,
      layerNormEpsilon: f.posNum("layer_norm_epsilon", 1e-5),
      family: "gptj",
      architecture: ARCHITECTURES.gptj,
      nKvHead: nHead,
      headDim,
      norm: "layernorm",
      activation,
      rope: { dim, style: "interleaved", theta: ROPE_THETA, maxPositionEmbeddings: nPositions },
      parallelResidual: "one_norm",
      qkvBias: false,
      attnOutBias: false,
      mlpBias: true,
      headBias: true,
      qkNorm: false,
    },
    activationFunction: act,
  };
}

/** The {@link ModelConfig} of a parsed `config.json` (see {@link parseHFConfig} for the checks). */
export function configFromHF(json: unknown, file = "config.json"): ModelConfig {
  return parseHFConfig(json, file).config;
}

/** The model_type engram writes for `config` (its family; for the Llama family, from its architecture). */
export function modelTypeFor(config: ModelConfig): ModelType {
  const family = config.family ?? "gpt2";
  if (family === "llama") {
    for (const t of ["llama", "mistral", "qwen2", "qwen3"] as const) {
      if (ARCHITECTURES[t] === config.architecture) return t;
    }
    return config.qkNorm ? "qwen3" : "llama";
  }
  return family === "neox" ? "gpt_neox" : family;
}

function ropeScalingToHF(s: RopeScaling | undefined): Record<string, unknown> | null {
  if (!s) return null;
  switch (s.type) {
    case "linear":
      return { rope_type: "linear", factor: s.factor };
    case "dynamic":
      return {
        rope_type: "dynamic",
        factor: s.factor,
        original_max_position_embeddings: s.originalMaxPositionEmbeddings,
      };
    case "llama3":
      return {
        rope_type: "llama3",
        factor: s.factor,
        low_freq_factor: s.lowFreqFactor,
        high_freq_factor: s.highFreqFactor,
        original_max_position_embeddings: s.originalMaxPositionEmbeddings,
      };
  }
}

/**
 * The config.json fields that describe the architecture of `config` (HF names, engram's values), and
 * cosmetic defaults a fresh HF config carries. {@link parseHFConfig} of the result gives `config` back.
 */
export function hfConfigFields(
  config: ModelConfig,
): { structural: Record<string, unknown>; cosmetic: Record<string, unknown> } {
  const c = resolveConfig(config);
  const mt = modelTypeFor(config);
  const arch = { model_type: mt, architectures: [ARCHITECTURES[mt]] };
  const tanh = c.activation === "gelu_erf" ? "gelu" : "gelu_new";
  if (mt === "gpt2") {
    return {
      structural: {
        ...arch,
        n_layer: c.nLayer,
        n_head: c.nHead,
        n_embd: c.nEmbd,
        n_inner: c.nInner === 4 * c.nEmbd ? null : c.nInner,
        n_positions: c.nPositions,
        n_ctx: c.nPositions,
        vocab_size: c.vocabSize,
        layer_norm_epsilon: c.layerNormEpsilon,
      },
      cosmetic: {
        activation_function: tanh,
        attn_pdrop: 0.1,
        embd_pdrop: 0.1,
        initializer_range: 0.02,
        reorder_and_upcast_attn: false,
        resid_pdrop: 0.1,
        scale_attn_by_inverse_layer_idx: false,
        scale_attn_weights: true,
        torch_dtype: "float32",
        use_cache: true,
      },
    };
  }
  if (mt === "gptj") {
    return {
      structural: {
        ...arch,
        activation_function: tanh,
        n_layer: c.nLayer,
        n_head: c.nHead,
        n_embd: c.nEmbd,
        n_inner: c.nInner === 4 * c.nEmbd ? null : c.nInner,
        n_positions: c.nPositions,
        rotary_dim: c.rope!.dim,
        vocab_size: c.vocabSize,
        layer_norm_epsilon: c.layerNormEpsilon,
        tie_word_embeddings: false,
      },
      cosmetic: {
        attn_pdrop: 0,
        embd_pdrop: 0,
        resid_pdrop: 0,
        initializer_range: 0.02,
        torch_dtype: "float32",
        use_cache: true,
      },
    };
  }
  const common = {
    ...arch,
    num_hidden_layers: c.nLayer,
    num_attention_heads: c.nHead,
    hidden_size: c.nEmbd,
    intermediate_size: c.nInner,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.nPositions,
    rope_scaling: ropeScalingToHF(c.rope?.scaling),
  };
  if (mt === "gpt_neox") {
    return {
      structural: {
        ...common,
        hidden_act: c.activation === "gelu_erf" ? "gelu" : "gelu_new",
        layer_norm_eps: c.layerNormEpsilon,
        rotary_pct: c.rope!.dim / c.headDim,
        rotary_emb_base: c.rope!.theta,
        use_parallel_residual: c.parallelResidual === "two_norms",
        attention_bias: true,
        tie_word_embeddings: false,
      },
      cosmetic: {
        attention_dropout: 0,
        hidden_dropout: 0,
        initializer_range: 0.02,
        torch_dtype: "float32",
        use_cache: true,
      },
    };
  }
  const structural: Record<string, unknown> = {
    ...common,
    hidden_act: "silu",
    num_key_value_heads: c.nKvHead,
    head_dim: c.headDim,
    rms_norm_eps: c.layerNormEpsilon,
    rope_theta: c.rope!.theta,
  };
  if (mt === "llama") {
    structural.attention_bias = c.qkvBias;
    structural.mlp_bias = c.mlpBias;
  } else if (mt === "qwen3") structural.attention_bias = c.qkvBias;
  if (mt === "mistral") structural.sliding_window = c.slidingWindow ?? null;
  if (mt === "qwen2" || mt === "qwen3") {
    structural.use_sliding_window = c.slidingWindow !== undefined;
    if (c.slidingWindow !== undefined) {
      structural.sliding_window = c.slidingWindow;
      structural.max_window_layers = 0;
    }
    structural.layer_types = Array.from(
      { length: c.nLayer },
      () => (c.slidingWindow !== undefined ? "sliding_attention" : "full_attention"),
    );
  }
  return {
    structural,
    cosmetic: { attention_dropout: 0, initializer_range: 0.02, torch_dtype: "float32", use_cache: true },
  };
}

/**
 * A Hugging Face `config.json` object for `config` (its family's model_type and architectures, HF
 * field names). `extra` fields are added on top (e.g. bos_token_id).
 */
export function configToHF(
  config: ModelConfig,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const { structural, cosmetic } = hfConfigFields(config);
  const out: Record<string, unknown> = { ...cosmetic, ...structural, ...extra };
  return Object.fromEntries(Object.keys(out).sort().map((k) => [k, out[k]]));
}
