/** Throughput of a full forward pass, shared by `deno bench` and `engram bench --json`. */
import type { Gpu } from "../gpu/device.ts";
import type { ModelConfig } from "./config.ts";
import { TransformerModel } from "./transformer.ts";
import { randomGPT2 } from "./random.ts";

/** One forward-pass measurement. */
export interface ForwardMeasurement {
  config: { nLayer: number; nHead: number; nEmbd: number; vocabSize: number };
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

/** Times `iters` forward passes of B sequences of T tokens after one warm-up pass. */
export async function measureForward(
  gpu: Gpu,
  config: ModelConfig,
  B: number,
  T: number,
  iters = 3,
): Promise<ForwardMeasurement> {
  const model = TransformerModel.create(gpu, config, randomGPT2(config, 1));
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
    config: { nLayer: config.nLayer, nHead: config.nHead, nEmbd: config.nEmbd, vocabSize: config.vocabSize },
    batch: B,
    tokens: B * T,
    msPerForward: ms,
    tokensPerSecond: (B * T) / (ms / 1000),
  };
}
