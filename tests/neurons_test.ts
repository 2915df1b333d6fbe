import assert from "node:assert/strict";
import { InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { GPT2Model } from "../src/model/gpt2.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import {
  coarseNeurons,
  faithfulness,
  integratedGradients,
  maskedProbs,
  neuronMask,
  rankNeurons,
  refineNeurons,
  suppressAmplify,
} from "../src/attribute/neurons.ts";
import { freshSeed, rng } from "./_util.ts";

const CONFIG = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 12,
  vocabSize: 31,
  nPositions: 16,
  nInner: 48,
  layerNormEpsilon: 1e-5,
};

async function setup(seed: number) {
  const gpu = await getGpu();
  const weights = randomGPT2(CONFIG, seed, { std: 0.3 });
  const model = GPT2Model.create(gpu, CONFIG, weights);
  const r = rng(seed);
  const ids = Array.from({ length: 5 }, () => Math.floor(r() * CONFIG.vocabSize));
  const { logprobs } = await model.forward([ids]);
  let target = 0;
  for (let v = 1; v < CONFIG.vocabSize; v++) if (logprobs[0][v] > logprobs[0][target]) target = v;
  return { model, weights, ids, target };
}

Deno.test("IG completeness: sum of attributions -> p(x) - p(baseline) with error falling as steps grow", async () => {
  const seed = freshSeed();
  const { model, weights, ids, target } = await setup(seed);
  const errs: number[][] = [];
  for (const m of [2, 8, 32, 128]) {
    const a = await integratedGradients(model, ids, target, { steps: m });
    errs.push(a.layers.map((_, li) => {
      const sum = a.scores[li].reduce((x, y) => x + y, 0);
      const delta = a.prob - a.baselineProb[li];
      return Math.abs(sum - delta) / Math.max(Math.abs(delta), 1e-3);
    }));
    // f(x) and f(baseline) against the float64 reference model.
    const ref = gpt2ForwardRef(CONFIG, weights, ids);
    assert.ok(Math.abs(a.prob - Math.exp(ref.logprobsLast[target])) < 1e-4, `p(x) ${a.prob} (seed ${seed})`);
    const refBase = gpt2ForwardRef(CONFIG, weights, ids, {
      hooks: { patch: { [`mlp_post.1`]: (v, T, w) => v.fill(0, (T - 1) * w, T * w) } },
    });
    assert.ok(
      Math.abs(a.baselineProb[1] - Math.exp(refBase.logprobsLast[target])) < 1e-4,
      `p(baseline) (seed ${seed})`,
    );
  }
  console.log(
    `completeness relative error by steps 2/8/32/128: ${
      errs.map((e) => e.map((x) => x.toExponential(1)).join(",")).join(" | ")
    }`,
  );
  for (let l = 0; l < CONFIG.nLayer; l++) {
    // Left Riemann error is O(1/m): 64x more steps must cut it substantially, and 128 steps must be close.
    assert.ok(
      errs[3][l] < 0.03 || errs[3][l] < errs[0][l] / 8,
      `layer ${l}: ${errs.map((e) => e[l])} (seed ${seed})`,
    );
    assert.ok(
      errs[3][l] <= errs[1][l] + 1e-3,
      `layer ${l} error did not fall: ${errs.map((e) => e[l])} (seed ${seed})`,
    );
  }
  model.destroy();
});

Deno.test("IG batched and one-step-at-a-time agree; thresholds, refinement and ranking", async () => {
  const seed = freshSeed();
  const { model, ids, target } = await setup(seed);
  const a = await integratedGradients(model, ids, target, { steps: 6 });
  const b = await integratedGradients(model, ids, target, { steps: 6, batched: false, layers: [1, 0] });
  for (let i = 0; i < CONFIG.nInner; i++) {
    assert.ok(Math.abs(a.scores[0][i] - b.scores[1][i]) < 1e-6, `neuron ${i} (seed ${seed})`);
  }
  const ranked = rankNeurons(a);
  assert.equal(ranked.length, CONFIG.nLayer * CONFIG.nInner);
  for (let i = 1; i < ranked.length; i++) assert.ok(ranked[i - 1].score >= ranked[i].score);
  const coarse = coarseNeurons(a, 0.2);
  assert.ok(coarse.length >= 1);
  assert.ok(coarse.every((n) => n.score >= 0.2 * ranked[0].score));
  assert.equal(coarse.length, ranked.filter((n) => n.score >= 0.2 * ranked[0].score).length);
  const x = { layer: 0, neuron: 1, score: 1 },
    y = { layer: 1, neuron: 2, score: 1 },
    z = { layer: 1, neuron: 3, score: 1 };
  const refined = refineNeurons([[x, y], [x, z], [x, y], [z]], 0.7);
  assert.deepEqual(refined.map((n) => [n.layer, n.neuron, n.count]), [[0, 1, 3]]);
  assert.deepEqual(refineNeurons([[x, y], [x, z], [x, y], [z]], 0.5).map((n) => n.neuron), [1, 2, 3]);
  assert.throws(() => refineNeurons([], 0.5), InputError);
  await assert.rejects(() => integratedGradients(model, ids, CONFIG.vocabSize), InputError);
  await assert.rejects(() => integratedGradients(model, ids, target, { layers: [2] }), InputError);
  model.destroy();
});

Deno.test("ablation: suppress/amplify, sufficiency and comprehensiveness match float64 masked forwards", async () => {
  const seed = freshSeed();
  const { model, weights, ids, target } = await setup(seed);
  const a = await integratedGradients(model, ids, target, { steps: 8 });
  const ranked = rankNeurons(a);
  const top = ranked.slice(0, 3);
  const rep = await suppressAmplify(model, ids, target, top);
  // Float64 reference: zero (×0) the three neurons at the last token, layer by layer, downstream recomputed.
  const refScaled = (f: number) => {
    const patch: Record<string, (v: Float64Array, T: number, w: number) => void> = {};
    for (let l = 0; l < CONFIG.nLayer; l++) {
      patch[`mlp_post.${l}`] = (v, T, w) => {
        for (const n of top) if (n.layer === l) v[(T - 1) * w + n.neuron] *= f;
      };
    }
    return Math.exp(gpt2ForwardRef(CONFIG, weights, ids, { hooks: { patch } }).logprobsLast[target]);
  };
  assert.ok(
    Math.abs(rep.suppressed - refScaled(0)) < 1e-4,
    `suppressed ${rep.suppressed} vs ${refScaled(0)} (seed ${seed})`,
  );
  assert.ok(
    Math.abs(rep.amplified - refScaled(2)) < 1e-4,
    `amplified ${rep.amplified} vs ${refScaled(2)} (seed ${seed})`,
  );
  const all = CONFIG.nLayer * CONFIG.nInner;
  const rows = await faithfulness(model, ids, target, ranked, [1, 10, all], { randomTrials: 2, seed });
  // Keeping every neuron is the unablated model; ablating every neuron equals sufficiency with k = 0.
  assert.ok(Math.abs(rows[2].sufficiency - 1) < 1e-5, `sufficiency(all) ${rows[2].sufficiency}`);
  const [none] = await maskedProbs(model, ids, target, [neuronMask(model, [], 1, 0)]);
  assert.ok(Math.abs(rows[2].comprehensiveness - none / rep.prob) < 1e-5);
  for (const r of rows) {
    assert.ok(Number.isFinite(r.sufficiency) && Number.isFinite(r.randomComprehensiveness));
  }
  model.destroy();
});
