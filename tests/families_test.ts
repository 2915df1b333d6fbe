/**
 * Every model family on the GPU against the independent float64 reference (src/reference/transformer.ts):
 * log-probabilities and every hook site of the forward pass, and the whole-model backward against
 * finite differences of the reference loss. Configurations are small, odd-sized and cover GQA, tied
 * and untied heads, rope scalings, Qwen2 biases, Qwen3 q/k norms, Mistral's sliding window, NeoX's
 * partial rotary with parallel and sequential residuals, and GPT-J's interleaved rotary.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { Gradients, lossAndGradients } from "../src/model/backward.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { hookSiteNames } from "../src/model/hooks.ts";
import { randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { transformerForwardRef, transformerLossRef } from "../src/reference/transformer.ts";
import { relErr } from "./_util.ts";

const base = { nLayer: 2, vocabSize: 37, nPositions: 32, layerNormEpsilon: 1e-5 };
const rope = (dim: number, extra: Partial<NonNullable<ModelConfig["rope"]>> = {}) => ({
  dim,
  style: "half" as const,
  theta: 10000,
  maxPositionEmbeddings: 32,
  ...extra,
});

/** The family variants under test. */
export const VARIANTS: Record<string, ModelConfig> = {
  "llama GQA untied": {
    ...base,
    family: "llama",
    architecture: "LlamaForCausalLM",
    nHead: 4,
    nKvHead: 2,
    headDim: 6,
    nEmbd: 22,
    nInner: 29,
    norm: "rmsnorm",
    activation: "silu",
    rope: rope(6),
    qkvBias: false,
    attnOutBias: false,
    mlpBias: false,
  },
  "llama tied, llama3 scaling, attention bias": {
    ...base,
    family: "llama",
    architecture: "LlamaForCausalLM",
    nHead: 3,
    nKvHead: 1,
    headDim: 8,
    nEmbd: 21,
    nInner: 17,
    norm: "rmsnorm",
    activation: "silu",
    rope: rope(8, {
      theta: 500000,
      scaling: {
        type: "llama3",
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 8,
      },
    }),
    qkvBias: true,
    attnOutBias: true,
    mlpBias: false,
  },
  "llama dynamic scaling past the original context": {
    ...base,
    family: "llama",
    architecture: "LlamaForCausalLM",
    nHead: 2,
    nKvHead: 2,
    headDim: 4,
    nEmbd: 9,
    nInner: 13,
    norm: "rmsnorm",
    activation: "silu",
    rope: rope(4, {
      maxPositionEmbeddings: 4,
      scaling: { type: "dynamic", factor: 2, originalMaxPositionEmbeddings: 4 },
    }),
    qkvBias: false,
    attnOutBias: false,
    mlpBias: false,
  },
  "qwen2 biases": {
    ...base,
    family: "llama",
    architecture: "Qwen2ForCausalLM",
    nHead: 4,
    nKvHead: 2,
    headDim: 5,
    nEmbd: 20,
    nInner: 23,
    norm: "rmsnorm",
    activation: "silu",
    rope: rope(4, { theta: 1000000 }),
    qkvBias: true,
    attnOutBias: false,
    mlpBias: false,
  },
  "qwen3 q/k norms": {
    ...base,
    family: "llama",
    architecture: "Qwen3ForCausalLM",
    nHead: 2,
    nKvHead: 1,
    headDim: 8,
    nEmbd: 18,
    nInner: 19,
    norm: "rmsnorm",
    activation: "silu",
    rope: rope(8),
    qkvBias: false,
    attnOutBias: false,
    mlpBias: false,
    qkNorm: true,
  },
  "mistral sliding window": {
    ...base,
    family: "llama",
    architecture: "MistralForCausalLM",
    nHead: 4,
    nKvHead: 1,
    headDim: 4,
    nEmbd: 16,
    nInner: 21,
    norm: "rmsnorm",
    activation: "silu",
    rope: rope(4),
    qkvBias: false,
    attnOutBias: false,
    mlpBias: false,
    slidingWindow: 3,
  },
  "neox parallel, partial rotary": {
    ...base,
    family: "neox",
    architecture: "GPTNeoXForCausalLM",
    nHead: 3,
    nEmbd: 18,
    nInner: 25,
    norm: "layernorm",
    activation: "gelu_erf",
    rope: rope(2),
    parallelResidual: "two_norms",
  },
  "neox sequential": {
    ...base,
    family: "neox",
    architecture: "GPTNeoXForCausalLM",
    nHead: 2,
    nEmbd: 14,
    nInner: 11,
    norm: "layernorm",
    activation: "gelu_erf",
    rope: rope(4),
    parallelResidual: "none",
  },
  "gptj interleaved rotary": {
    ...base,
    family: "gptj",
    architecture: "GPTJForCausalLM",
    nHead: 3,
    nEmbd: 18,
    nInner: 23,
    norm: "layernorm",
    activation: "gelu_tanh",
    rope: { ...rope(4), style: "interleaved" },
    parallelResidual: "one_norm",
    qkvBias: false,
    attnOutBias: false,
    mlpBias: true,
    headBias: true,
  },
};

const UNTIED = new Set([
  "llama GQA untied",
  "qwen2 biases",
  "mistral sliding window",
  "neox parallel, partial rotary",
  "neox sequential",
  "gptj interleaved rotary",
]);

function logSoftmaxRow(logits: Float64Array, t: number, V: number): Float64Array {
  const row = logits.subarray(t * V, (t + 1) * V);
  let m = -Infinity;
  for (const x of row) m = Math.max(m, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - m);
  const lse = m + Math.log(s);
  return Float64Array.from(row, (x) => x - lse);
}

const ids = [3, 17, 0, 36, 8, 8, 21];

for (const [name, cfg] of Object.entries(VARIANTS)) {
  Deno.test(`family forward matches the float64 reference: ${name}`, async () => {
    const gpu = await getGpu();
    const weights = randomWeights(cfg, 11, { untiedHead: UNTIED.has(name) });
    const model = TransformerModel.create(gpu, cfg, weights);
    try {
      const sites = [
        ...hookSiteNames(cfg.nLayer),
        ...Array.from({ length: cfg.nLayer }, (_, l) => `attn_pattern.${l}`),
      ];
      const ref = transformerForwardRef(cfg, weights, ids, { capture: sites });
      const got = await model.forward([ids], { hooks: { capture: sites }, allLogits: true });
      const V = cfg.vocabSize, T = ids.length;
      const want = logSoftmaxRow(ref.logits, T - 1, V);
      assert.ok(relErr(got.logprobs[0], want) < 2e-5, `logprobs rel err ${relErr(got.logprobs[0], want)}`);
      assert.ok(relErr(got.logits!, ref.logits) < 2e-5, `logits rel err ${relErr(got.logits!, ref.logits)}`);
      let worstSite = 0;
      for (const s of sites) {
        const e = relErr(got.captured.get(s)!.data, ref.sites.get(s)!);
        worstSite = Math.max(worstSite, e);
        assert.ok(e < 2e-5, `${s}: rel err ${e}`);
      }
      console.log(
        `${name}: logprobs ${relErr(got.logprobs[0], want).toExponential(2)}, logits ${
          relErr(got.logits!, ref.logits).toExponential(2)
        }, worst site ${worstSite.toExponential(2)}`,
      );
    } finally {
      model.destroy();
    }
  });

  Deno.test(`family backward matches finite differences of the float64 reference: ${name}`, async () => {
    const gpu = await getGpu();
    const weights = randomWeights(cfg, 23, { untiedHead: UNTIED.has(name), std: 0.3 });
    const model = TransformerModel.create(gpu, cfg, weights);
    const grads = new Gradients(model);
    try {
      const targets = ids.map((_, t) => (t % 2 === 0 ? (ids[t] * 7 + 3) % cfg.vocabSize : -1));
      const res = await lossAndGradients(model, [ids], { targets: [targets] }, { grads });
      const loss0 = transformerLossRef(cfg, weights, ids, targets);
      assert.ok(
        Math.abs(res.loss - loss0) < 1e-4 * Math.max(1, Math.abs(loss0)),
        `loss ${res.loss} vs ${loss0}`,
      );
      let worst = 0, worstAt = "";
      let seed = 7;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
      for (const [wName, t] of weights) {
        const g = await grads.read(wName);
        // Three elements per tensor, plus its largest-gradient element.
        let big = 0;
        for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[big])) big = i;
        for (const i of [big, ...Array.from({ length: 3 }, () => Math.floor(rnd() * t.data.length))]) {
          const w = new Map(weights);
          const probe = (d: number) => {
            const data = Float32Array.from(t.data);
            // The reference is float64: probe it with a float64 copy so h is not rounded away.
            const d64 = Float64Array.from(data);
            d64[i] += d;
            w.set(wName, { shape: t.shape, data: d64 as unknown as Float32Array });
            return transformerLossRef(cfg, w, ids, targets);
          };
          const h = 1e-4;
          const fd = (probe(h) - probe(-h)) / (2 * h);
          const err = Math.abs(g[i] - fd) / Math.max(1e-2, Math.abs(fd));
          if (err > worst) (worst = err), (worstAt = `${wName}[${i}]: gpu ${g[i]} fd ${fd}`);
        }
      }
      console.log(`${name}: worst gradient error vs float64 FD ${worst.toExponential(2)} (${worstAt})`);
      assert.ok(worst < 2e-3, `worst gradient error ${worst} at ${worstAt}`);
    } finally {
      grads.destroy();
      model.destroy();
    }
  });
}
