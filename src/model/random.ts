/**
 * Seeded random configurations and weights of every family, for tests and benchmarks.
 *
 * Weights are deliberately larger than GPT-2's init (std 0.02) so that attention is not uniform and
 * next-token distributions are far from flat: a broken kernel then shows up as a large error.
 */
import { InputError } from "../errors.ts";
import { type Family, type HostTensor, type ModelConfig, resolveConfig, type WeightMap } from "./config.ts";
import { familySpec, type LinearSpec, type NormSpec, weightShapes } from "./families/mod.ts";
import type { RopeConfig } from "./rope.ts";

/** Mulberry32: small seeded PRNG returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal sample (Box–Muller). */
function normal(r: () => number): number {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

/** Integer uniform in [lo, hi]. */
function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** Options of {@link randomGPT2}. */
export interface RandomGPT2Options {
  /** Std of embeddings and linear weights (default 0.2; GPT-2's own init is 0.02). */
  std?: number;
  /** Std of linear and layer-norm biases (default 0.05). */
  biasStd?: number;
  /** Std of the noise around 1 of layer-norm weights (default 0.1). */
  lnStd?: number;
  /** Add a separate `lm_head.weight` [V, C] instead of tying the head to wte (default false). */
  untiedHead?: boolean;
}

/** Options of {@link randomWeights}. */
export interface RandomWeightsOptions {
  /** Std of embeddings and projection weights (default 0.2). */
  std?: number;
  /** Std of every bias (projections, norms, GPT-J's head; default 0.05). */
  biasStd?: number;
  /** Std of the noise around 1 of norm weights (layer norm, RMS norm, Qwen3's q/k norms; default 0.1). */
  normStd?: number;
  /** Give a family that may tie its head a separate head weight (default false). */
  untiedHead?: boolean;
}

/**
 * Random float32 weights of any family for `config`, fully determined by `seed` and `opts`, keyed by
 * engram name in {@link weightShapes} order: norm weights (found through the family spec's norm names)
 * ~ 1 + N(0, normStd²), biases ~ N(0, biasStd²), everything else ~ N(0, std²).
 */
export function randomWeights(config: ModelConfig, seed: number, opts: RandomWeightsOptions = {}): WeightMap {
  const std = opts.std ?? 0.2;
  const biasStd = opts.biasStd ?? 0.05;
  const normStd = opts.normStd ?? 0.1;
  const rc = resolveConfig(config);
  const spec = familySpec(rc);
  const norms = new Set<string>(), biases = new Set<string>();
  const addNorm = (n: NormSpec | undefined) => {
    if (!n) return;
    norms.add(n.weight);
    if (n.bias) biases.add(n.bias);
  };
  const addLin = (p: LinearSpec | undefined) => {
    if (p?.bias) biases.add(p.bias);
  };
  for (let l = 0; l < rc.nLayer; l++) {
    const s = spec.layer(rc, l);
    [s.ln1, s.ln2, s.qNorm, s.kNorm].forEach(addNorm);
    [...s.qkv, s.o, s.gate, s.up, s.down].forEach(addLin);
  }
  addNorm(spec.finalNorm);
  if (spec.headBias) biases.add(spec.headBias);

  const r = mulberry32(seed);
  const m: WeightMap = new Map();
  for (const [name, shape] of weightShapes(config, opts.untiedHead ?? false)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const [mean, s] = norms.has(name) ? [1, normStd] : biases.has(name) ? [0, biasStd] : [0, std];
    for (let i = 0; i < n; i++) data[i] = mean + s * normal(r);
    const t: HostTensor = { shape: shape.slice(), data };
    m.set(name, t);
  }
  return m;
}

/**
 * Random float32 GPT-2 weights for `config` ({@link randomWeights} with `lnStd` as the norm noise):
 * matrices and embeddings ~ N(0, std²), biases ~ N(0, biasStd²), layer-norm weights ~ 1 + N(0, lnStd²).
 */
export function randomGPT2(config: ModelConfig, seed: number, opts: RandomGPT2Options = {}): WeightMap {
  return randomWeights(config, seed, {
    std: opts.std,
    biasStd: opts.biasStd,
    normStd: opts.lnStd,
    untiedHead: opts.untiedHead,
  });
}

/**
 * A small random but valid GPT-2 configuration determined by `seed`: 1–3 layers, 1–4 heads of
 * width 1–8 (odd widths included), odd vocabulary 5–299, context 8–64, nInner = 4 · nEmbd, eps 1e-5.
 */
export function randomConfig(seed: number): ModelConfig {
  const r = mulberry32(seed ^ 0x9e3779b9);
  const nLayer = randInt(r, 1, 3);
  const nHead = randInt(r, 1, 4);
  const headDim = randInt(r, 1, 8);
  const nEmbd = nHead * headDim;
  const vocabSize = 5 + 2 * randInt(r, 0, 147);
  const nPositions = randInt(r, 8, 64);
  return { nLayer, nHead, nEmbd, vocabSize, nPositions, nInner: 4 * nEmbd, layerNormEpsilon: 1e-5 };
}

/**
 * Variants of {@link randomFamilyConfig}:
 * - gpt2: "gpt2" ({@link randomConfig});
 * - llama: "llama" (GQA, no biases), "llama3", "linear", "dynamic" (rope scalings), "qwen2" (q/k/v
 *   biases), "qwen3" (q_norm / k_norm, head_dim ≠ width / heads), "mistral" (sliding window 3), "mha";
 * - neox: "parallel" (use_parallel_residual), "sequential";
 * - gptj: "gptj".
 */
export type FamilyVariant =
  | "gpt2"
  | "llama"
  | "llama3"
  | "linear"
  | "dynamic"
  | "qwen2"
  | "qwen3"
  | "mistral"
  | "mha"
  | "parallel"
  | "sequential"
  | "gptj";

const DEFAULT_VARIANT: Record<Family, FamilyVariant> = {
  gpt2: "gpt2",
  llama: "llama",
  neox: "parallel",
  gptj: "gptj",
};

/**
 * A small random but valid configuration of `family` (odd widths and vocabularies, 1–2 layers),
 * determined by `seed` and `variant` (default: the family's first variant in {@link FamilyVariant}).
 * Rope scalings are chosen so that they act on short prompts: "llama3" has all three frequency bands
 * for D = 6, "dynamic" has originalMaxPositionEmbeddings 5, so prompts of 6+ tokens rescale theta.
 */
export function randomFamilyConfig(family: Family, seed: number, variant?: FamilyVariant): ModelConfig {
  const v = variant ?? DEFAULT_VARIANT[family];
  const r = mulberry32(seed ^ 0x5bd1e995);
  const nLayer = randInt(r, 1, 2);
  const vocabSize = 7 + 2 * randInt(r, 0, 20);
  const nInner = 7 + 2 * randInt(r, 0, 8);
  const nPositions = randInt(r, 16, 32);
  const theta = [10000, 500000, 1000][randInt(r, 0, 2)];
  const base = { nLayer, vocabSize, nInner, nPositions };
  const bad = () => new InputError(`variant '${v}' is not one of family '${family}'`, { field: "variant" });
  if (family === "gpt2") {
    if (v !== "gpt2") throw bad();
    return randomConfig(seed);
  }
  if (family === "llama") {
    if (!["llama", "llama3", "linear", "dynamic", "qwen2", "qwen3", "mistral", "mha"].includes(v)) {
      throw bad();
    }
    // H = 4 query heads over KV = 2 kv heads of D = 6 (MHA: KV = H); width odd and ≠ H * D.
    const nHead = 4, nKvHead = v === "mha" ? 4 : 2, headDim = v === "qwen3" ? 8 : 6;
    const nEmbd = 9 + 2 * randInt(r, 0, 4);
    const rope: RopeConfig = { dim: headDim, style: "half", theta, maxPositionEmbeddings: nPositions };
    if (v === "llama3") {
      // wavelengths 2π θ^(2i/6) with θ = 10000: 6.3 (kept), 135 (smoothed), 2917 (divided by factor).
      rope.theta = 10000;
      rope.scaling = {
        type: "llama3",
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 256,
      };
    } else if (v === "linear") rope.scaling = { type: "linear", factor: 2.5 };
    else if (v === "dynamic") rope.scaling = { type: "dynamic", factor: 3, originalMaxPositionEmbeddings: 5 };
    return {
      ...base,
      family: "llama",
      architecture: v === "qwen2"
        ? "Qwen2ForCausalLM"
        : v === "qwen3"
        ? "Qwen3ForCausalLM"
        : v === "mistral"
        ? "MistralForCausalLM"
        : "LlamaForCausalLM",
      nHead,
      nKvHead,
      headDim,
      nEmbd,
      layerNormEpsilon: 1e-6,
      norm: "rmsnorm",
      activation: "silu",
      rope,
      parallelResidual: "none",
      qkvBias: v === "qwen2",
      attnOutBias: false,
      mlpBias: false,
      headBias: false,
      qkNorm: v === "qwen3",
      slidingWindow: v === "mistral" ? 3 : undefined,
    };
  }
  if (family === "neox") {
    if (v !== "parallel" && v !== "sequential") throw bad();
    // rotary_pct 0.5 of D = 8: the first 4 dims of each head rotate.
    const nHead = 3, headDim = 8;
    return {
      ...base,
      family: "neox",
      architecture: "GPTNeoXForCausalLM",
      nHead,
      nKvHead: nHead,
      headDim,
      nEmbd: nHead * headDim,
      layerNormEpsilon: 1e-5,
      norm: "layernorm",
      activation: "gelu_erf",
      rope: { dim: headDim / 2, style: "half", theta, maxPositionEmbeddings: nPositions },
      parallelResidual: v === "parallel" ? "two_norms" : "none",
      qkvBias: true,
      attnOutBias: true,
      mlpBias: true,
      headBias: false,
    };
  }
  if (v !== "gptj") throw bad();
  // rotary_dim 4 of D = 6, interleaved.
  const nHead = 3, headDim = 6;
  return {
    ...base,
    family: "gptj",
    architecture: "GPTJForCausalLM",
    nHead,
    nKvHead: nHead,
    headDim,
    nEmbd: nHead * headDim,
    layerNormEpsilon: 1e-5,
    norm: "layernorm",
    activation: "gelu_tanh",
    rope: { dim: 4, style: "interleaved", theta: 10000, maxPositionEmbeddings: nPositions },
    parallelResidual: "one_norm",
    qkvBias: false,
    attnOutBias: false,
    mlpBias: true,
    headBias: true,
  };
}
