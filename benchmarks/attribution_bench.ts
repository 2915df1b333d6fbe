/**
 * Attribution throughput on a world-sized GPT-2 (2 layers, width 96, 384 neurons, vocab 1923, 6-token
 * prompts): integrated-gradients prompts per second with the 20 steps batched vs one step at a time (same
 * run), and per-example gradients per second (batched c_proj route vs one instance at a time).
 */
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { integratedGradients } from "../src/attribute/neurons.ts";
import { defaultIaParams, exampleGradients, trainingExample } from "../src/attribute/instances.ts";

const gpu = await getGpu();
const cfg = {
  nLayer: 2,
  nHead: 4,
  nEmbd: 96,
  vocabSize: 1923,
  nPositions: 24,
  nInner: 384,
  layerNormEpsilon: 1e-5,
};
const model = TransformerModel.create(gpu, cfg, randomGPT2(cfg, 1, { std: 0.05 }));
const prompt = [0, 17, 230, 45, 991, 12];
const examples = Array.from(
  { length: 32 },
  (_, i) => trainingExample([0, 5 + i, 230, 45, 991 + i, 12, 7, 0]),
);
const params = defaultIaParams(cfg);

Deno.bench("IG, 20 steps batched (1 prompt, 2 layers)", { group: "ig", baseline: true }, async () => {
  await integratedGradients(model, prompt, 3, { steps: 20 });
});
Deno.bench("IG, 20 steps one at a time (1 prompt, 2 layers)", { group: "ig" }, async () => {
  await integratedGradients(model, prompt, 3, { steps: 20, batched: false });
});
Deno.bench(
  "per-example gradients, 32 instances, batched c_proj route",
  { group: "grads", baseline: true },
  async () => {
    await exampleGradients(model, examples, params);
  },
);
Deno.bench("per-example gradients, 32 instances, one at a time (Gradients)", { group: "grads" }, async () => {
  await exampleGradients(model, examples, [...params, "ln_f.bias"]);
});
