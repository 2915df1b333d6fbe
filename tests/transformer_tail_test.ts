/**
 * The float64 tail of every family (src/reference/transformer_tail.ts) against the independent float64
 * forward (src/reference/transformer.ts): tail logits from a captured residual stream equal the full
 * forward's; the tail backward equals central finite differences of `transformerLossRef` with respect
 * to the token embedding (start = 0, through every block) and of the tail's own loss with respect to
 * the residual stream entering block 1. For GPT-2 the tail is bit-identical to ./gpt2_tail.ts.
 * Configurations are those of tests/families_test.ts (copied: importing it would register its GPU tests).
 */
import assert from "node:assert/strict";
import type { ModelConfig, WeightMap } from "../src/model/config.ts";
import { familySpec } from "../src/model/families/mod.ts";
import { randomGPT2, randomWeights } from "../src/model/random.ts";
import { tailBackwardRef, tailForwardRef } from "../src/reference/gpt2_tail.ts";
import { transformerForwardRef, transformerLossRef } from "../src/reference/transformer.ts";
import { transformerTailBackwardRef, transformerTailForwardRef } from "../src/reference/transformer_tail.ts";
import { rng } from "./_util.ts";

const base = { nLayer: 2, vocabSize: 37, nPositions: 32, layerNormEpsilon: 1e-5 };
const rope = (dim: number, extra: Partial<NonNullable<ModelConfig["rope"]>> = {}) => ({
  dim,
  style: "half" as const,
  theta: 10000,
  maxPositionEmbeddings: 32,
  ...extra,
});
const llama = {
  ...base,
  family: "llama" as const,
  norm: "rmsnorm" as const,
  activation: "silu" as const,
  qkvBias: false,
  attnOutBias: false,
  mlpBias: false,
};

/** tests/families_test.ts VARIANTS, plus GPT-2; `untied` as there. */
const VARIANTS: Record<string, { cfg: ModelConfig; untied: boolean }> = {
  "gpt2": {
    cfg: {
      nLayer: 2,
      nHead: 3,
      nEmbd: 15,
      vocabSize: 29,
      nPositions: 16,
      nInner: 19,
      layerNormEpsilon: 1e-5,
    },
    untied: false,
  },
  "llama GQA untied": {
    cfg: { ...llama, nHead: 4, nKvHead: 2, headDim: 6, nEmbd: 22, nInner: 29, rope: rope(6) },
    untied: true,
  },
  "llama tied, llama3 scaling, attention bias": {
    cfg: {
      ...llama,
      nHead: 3,
      nKvHead: 1,
      headDim: 8,
      nEmbd: 21,
      nInner: 17,
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
    },
    untied: false,
  },
  "llama dynamic scaling past the original context": {
    cfg: {
      ...llama,
      nHead: 2,
      nKvHead: 2,
      headDim: 4,
      nEmbd: 9,
      nInner: 13,
      rope: rope(4, {
        maxPositionEmbeddings: 4,
        scaling: { type: "dynamic", factor: 2, originalMaxPositionEmbeddings: 4 },
      }),
    },
    untied: false,
  },
  "qwen2 biases": {
    cfg: {
      ...llama,
      nHead: 4,
      nKvHead: 2,
      headDim: 5,
      nEmbd: 20,
      nInner: 23,
      rope: rope(4, { theta: 1e6 }),
      qkvBias: true,
    },
    untied: true,
  },
  "qwen3 q/k norms": {
    cfg: { ...llama, nHead: 2, nKvHead: 1, headDim: 8, nEmbd: 18, nInner: 19, rope: rope(8), qkNorm: true },
    untied: false,
  },
  "mistral sliding window": {
    cfg: {
      ...llama,
      nHead: 4,
      nKvHead: 1,
      headDim: 4,
      nEmbd: 16,
      nInner: 21,
      rope: rope(4),
      slidingWindow: 3,
    },
    untied: true,
  },
  "neox parallel, partial rotary": {
    cfg: {
      ...base,
      family: "neox",
      nHead: 3,
      nEmbd: 18,
      nInner: 25,
      norm: "layernorm",
      activation: "gelu_erf",
      rope: rope(2),
      parallelResidual: "two_norms",
    },
    untied: true,
  },
  "neox sequential": {
    cfg: {
      ...base,
      family: "neox",
      nHead: 2,
      nEmbd: 14,
      nInner: 11,
      norm: "layernorm",
      activation: "gelu_erf",
      rope: rope(4),
      parallelResidual: "none",
    },
    untied: true,
  },
  "gptj interleaved rotary": {
    cfg: {
      ...base,
      family: "gptj",
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
    untied: true,
  },
};

const ids = [3, 17, 0, 26, 8, 8, 21];
const targets = ids.map((id, t) => (t % 2 === 0 ? (id * 7 + 3) % 29 : -1));

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}

/** Mean NLL at the target rows and its gradient with respect to the logits. */
function lossGrad(logits: Float64Array, V: number): { loss: number; dlogits: Float64Array } {
  const T = logits.length / V;
  const dlogits = new Float64Array(T * V);
  const n = targets.filter((y) => y >= 0).length;
  let loss = 0;
  for (let t = 0; t < T; t++) {
    if (targets[t] < 0) continue;
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, logits[t * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[t * V + v] - m);
    const lse = m + Math.log(s);
    loss += (lse - logits[t * V + targets[t]]) / n;
    for (let v = 0; v < V; v++) {
      dlogits[t * V + v] = (Math.exp(logits[t * V + v] - lse) - (v === targets[t] ? 1 : 0)) / n;
    }
  }
  return { loss, dlogits };
}

/** Weights whose head is a separate tensor (a copy of the embedding when tied): same model, untied. */
function untie(cfg: ModelConfig, w: WeightMap): WeightMap {
  const spec = familySpec(cfg);
  const out = new Map(w);
  if (!out.has(spec.head)) {
    const e = w.get(spec.embed)!;
    out.set(spec.head, { shape: [...e.shape], data: Float32Array.from(e.data) });
  }
  return out;
}

for (const [name, { cfg, untied }] of Object.entries(VARIANTS)) {
  const weights = () =>
    cfg.family === undefined
      ? randomGPT2(cfg, 5, { untiedHead: untied })
      : randomWeights(cfg, 23, { untiedHead: untied, std: 0.3 });

  Deno.test(`tail forward equals the full float64 forward from every start: ${name}`, () => {
    const w = weights();
    const T = ids.length;
    const sites = Array.from({ length: cfg.nLayer }, (_, l) => `resid_pre.${l}`);
    const full = transformerForwardRef(cfg, w, ids, { capture: [...sites, `resid_post.${cfg.nLayer - 1}`] });
    for (let s = 0; s <= cfg.nLayer; s++) {
      const x = full.sites.get(s < cfg.nLayer ? `resid_pre.${s}` : `resid_post.${cfg.nLayer - 1}`)!;
      const { logits } = transformerTailForwardRef(cfg, w, s, x, T);
      const e = relErr(logits, full.logits);
      assert.ok(e < 1e-12, `start ${s}: logits rel err ${e}`);
    }
  });

  Deno.test(`tail backward equals finite differences of transformerLossRef: ${name}`, () => {
    const w = untie(cfg, weights());
    const spec = familySpec(cfg);
    const C = cfg.nEmbd, V = cfg.vocabSize, T = ids.length;
    const x0 = transformerForwardRef(cfg, w, ids, { capture: ["resid_pre.0"] }).sites.get("resid_pre.0")!;
    const { logits, tape } = transformerTailForwardRef(cfg, w, 0, x0, T);
    const { loss, dlogits } = lossGrad(logits, V);
    assert.ok(Math.abs(loss - transformerLossRef(cfg, w, ids, targets)) < 1e-12, "loss");
    const dx = transformerTailBackwardRef(cfg, w, tape, dlogits);
    const emb = w.get(spec.embed)!;
    const r = rng(3);
    let worst = 0, at = "";
    let big = 0;
    for (let i = 1; i < dx.length; i++) if (Math.abs(dx[i]) > Math.abs(dx[big])) big = i;
    const probes = [big, ...Array.from({ length: 12 }, () => Math.floor(r() * T * C))];
    for (const i of probes) {
      const t = Math.floor(i / C), c = i % C, id = ids[t];
      // dL/dwte[id, c] = Σ over positions holding id of dL/dx[t, c].
      let g = 0;
      ids.forEach((v, s) => v === id && (g += dx[s * C + c]));
      const probe = (d: number) => {
        const data = Float64Array.from(emb.data);
        data[id * C + c] += d;
        const w2 = new Map(w);
        w2.set(spec.embed, { shape: emb.shape, data: data as unknown as Float32Array });
        return transformerLossRef(cfg, w2, ids, targets);
      };
      const h = 1e-5;
      const fd = (probe(h) - probe(-h)) / (2 * h);
      const err = Math.abs(g - fd) / Math.max(1e-3, Math.abs(fd));
      if (err > worst) (worst = err), (at = `wte[${id}, ${c}]: tail ${g} fd ${fd}`);
    }
    console.log(`${name}: worst tail-vs-FD error ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-6, `worst error ${worst} at ${at}`);
  });

  Deno.test(`tail backward from block 1 equals finite differences of the tail loss: ${name}`, () => {
    const w = weights();
    const C = cfg.nEmbd, V = cfg.vocabSize, T = ids.length;
    const x1 = transformerForwardRef(cfg, w, ids, { capture: ["resid_pre.1"] }).sites.get("resid_pre.1")!;
    const { logits, tape } = transformerTailForwardRef(cfg, w, 1, x1, T);
    const dx = transformerTailBackwardRef(cfg, w, tape, lossGrad(logits, V).dlogits);
    const r = rng(9);
    let worst = 0;
    for (let k = 0; k < 10; k++) {
      const i = Math.floor(r() * T * C);
      const probe = (d: number) => {
        const x = Float64Array.from(x1);
        x[i] += d;
        return lossGrad(transformerTailForwardRef(cfg, w, 1, x, T).logits, V).loss;
      };
      const h = 1e-5;
      const fd = (probe(h) - probe(-h)) / (2 * h);
      worst = Math.max(worst, Math.abs(dx[i] - fd) / Math.max(1e-3, Math.abs(fd)));
    }
    assert.ok(worst < 1e-6, `worst error ${worst}`);
  });
}

Deno.test("GPT-2: the family tail is bit-identical to gpt2_tail (logits and dx)", () => {
  for (const untied of [false, true]) {
    const cfg = VARIANTS.gpt2.cfg;
    const w = randomGPT2(cfg, 41, { untiedHead: untied });
    const T = ids.length;
    const x = transformerForwardRef(cfg, w, ids, { capture: ["resid_pre.1"] }).sites.get("resid_pre.1")!;
    const a = transformerTailForwardRef(cfg, w, 1, x, T);
    const b = tailForwardRef(cfg, w, 1, x, T);
    assert.ok(a.logits.every((v, i) => Object.is(v, b.logits[i])), "logits differ");
    const dl = lossGrad(a.logits, cfg.vocabSize).dlogits;
    const da = transformerTailBackwardRef(cfg, w, a.tape, dl), db = tailBackwardRef(cfg, w, b.tape, dl);
    assert.ok(da.every((v, i) => Object.is(v, db[i])), "dx differ");
  }
});
