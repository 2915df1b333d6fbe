/** Throughput of a full forward pass, shared by `deno bench` and `engram bench --json`. */
import type { Gpu } from "../gpu/device.ts";
import type { Family, ModelConfig } from "./config.ts";
import { TransformerModel } from "./transformer.ts";
import { randomWeights } from "./random.ts";

/** One forward-pass measurement. */
export interface ForwardMeasurement {
  config: { family: Family; nLayer: number; nHead: number; nEmbd: number; vocabSize: number };
  batch: number;
  tokens: number;
  msPerForward: number;
  tokensPerSecond: number;
}

/** A GPT-2-shaped configuration for benchmarks (random weights). */
export function benchConfig(
  nLayer: number,
  nEmbd: number,
  nHead: number,
  vocabSize: number,
  nPositions = 256,
): ModelConfig {
  return { nLayer, nHead, nEmbd, vocabSize, nPositions, nInner: 4 * nEmbd, layerNormEpsilon: 1e-5 };
}

/**
 * A benchmark configuration of `family` at GPT-2's sizes (same layers, width, heads, vocabulary), each
 * with its family's shape: Llama with 4:1 grouped-query attention, a SwiGLU MLP of width 8/3 · C rounded
 * to 8, full rotary and an untied head; NeoX with parallel residuals and rotary on a quarter of each head
 * (Pythia's rotary_pct); GPT-J with interleaved rotary on a quarter of each head. Tokens per second of
 * these, relative to the GPT-2 of the same sizes, show what each family's block costs.
 */
export function familyBenchConfig(
  family: Family,
  nLayer: number,
  nEmbd: number,
  nHead: number,
  vocabSize: number,
  nPositions = 256,
): ModelConfig {
  const g = benchConfig(nLayer, nEmbd, nHead, vocabSize, nPositions);
  const D = nEmbd / nHead;
  const rope = (dim: number, style: "half" | "interleaved") => ({
    dim,
    style,
    theta: 10000,
    maxPositionEmbeddings: nPositions,
  });
  const quarter = Math.max(2, 2 * Math.floor(D / 8));
  switch (family) {
    case "gpt2":
      return g;
    case "llama":
      return {
        ...g,
        family,
        architecture: "LlamaForCausalLM",
        nKvHead: Math.max(1, nHead / 4),
        nInner: 8 * Math.ceil((8 * nEmbd) / 3 / 8),
        norm: "rmsnorm",
        activation: "silu",
        rope: rope(D, "half"),
        qkvBias: false,
        attnOutBias: false,
        mlpBias: false,
      };
    case "neox":
      return {
        ...g,
        family,
        architecture: "GPTNeoXForCausalLM",
        activation: "gelu_erf",
        rope: rope(quarter, "half"),
        parallelResidual: "two_norms",
      };
    case "gptj":
      return {
        ...g,
        family,
        architecture: "GPTJForCausalLM",
        rope: rope(quarter, "interleaved"),
        parallelResidual: "one_norm",
        qkvBias: false,
        attnOutBias: false,
        headBias: true,
      };
  }
}

/** Times `iters` forward passes of B sequences of T tokens after one warm-up pass. */
export async function measureForward(
  gpu: Gpu,
  config: ModelConfig,
  B: number,
  T: number,
  iters = 3,
): Promise<ForwardMeasurement> {
  // NeoX and GPT-J never tie the head; the others are measured with the tied head GPT-2 has.
  const untied = config.family === "neox" || config.family === "gptj";
  const model = TransformerModel.create(gpu, config, randomWeights(config, 1, { untiedHead: untied }));
  const batch = Array.from(
    { length: B },
    (_, b) => Array.from({ length: T }, (_, t) => (b * 31 + t * 7) % config.vocabSize),
  );
  await model.forward(batch);
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await model.forward(batch);
  const ms = (performance.now() - t0) / iters;
  model.destroy();
  return {
    config: {
      family: config.family ?? "gpt2",
      nLayer: config.nLayer,
      nHead: config.nHead,
      nEmbd: config.nEmbd,
      vocabSize: config.vocabSize,
    },
    batch: B,
    tokens: B * T,
    msPerForward: ms,
    tokensPerSecond: (B * T) / (ms / 1000),
  };
}
