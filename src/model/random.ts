/**
 * Seeded random GPT-2 configurations and weights, for tests and benchmarks.
 *
 * Weights are deliberately larger than GPT-2's init (std 0.02) so that attention is not uniform and
 * next-token distributions are far from flat: a broken kernel then shows up as a large error.
 */
import type { HostTensor, ModelConfig, WeightMap } from "./config.ts";
import { weightShapes } from "./families/mod.ts";

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

/**
 * Random float32 GPT-2 weights for `config`, fully determined by `seed` and `opts`, keyed by canonical
 * name (see config.ts): matrices and embeddings ~ N(0, std²), biases ~ N(0, biasStd²), layer-norm
 * weights ~ 1 + N(0, lnStd²).
 */
export function randomGPT2(config: ModelConfig, seed: number, opts: RandomGPT2Options = {}): WeightMap {
  const std = opts.std ?? 0.2;
  const biasStd = opts.biasStd ?? 0.05;
  const lnStd = opts.lnStd ?? 0.1;
  const r = mulberry32(seed);
  const shapes = weightShapes(config);
  if (opts.untiedHead) shapes.set("lm_head.weight", [config.vocabSize, config.nEmbd]);
  const m: WeightMap = new Map();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isLn = /(^|\.)ln_(1|2|f)\.weight$/.test(name);
    const isBias = name.endsWith(".bias");
    const [mean, s] = isLn ? [1, lnStd] : isBias ? [0, biasStd] : [0, std];
    for (let i = 0; i < n; i++) data[i] = mean + s * normal(r);
    const t: HostTensor = { shape: shape.slice(), data };
    m.set(name, t);
  }
  return m;
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
