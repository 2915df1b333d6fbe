import assert from "node:assert/strict";
import { InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { geluNewRef, gpt2ForwardRef } from "../src/reference/gpt2.ts";
import type { WeightMap } from "../src/model/config.ts";
import {
  type BlockStats,
  coarseNeurons,
  faithfulness,
  integratedGradients,
  poolFaithfulness,
  rankNeurons,
  refineNeurons,
  suppressAmplify,
} from "../src/attribute/neurons.ts";
import { freshSeed, relErr, rng } from "./_util.ts";

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
  const model = TransformerModel.create(gpu, CONFIG, weights);
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

/**
 * Independent float64 IG of the reference definition: p(target) from the float64 reference forward with
 * layer L's last-token activation replaced, its gradient by central finite differences, α_k from the
 * definition (Dai: k/m for k < m; EleutherAI: linspace(0, 1, m)), sum times value / m. With "pre" the
 * replaced value is the pre-GELU c_fc output h (computed here from the captured residual and attention
 * output), and the layer sees gelu_new(α h).
 */
function refIG(
  weights: WeightMap,
  ids: number[],
  target: number,
  layer: number,
  m: number,
  points: "left" | "linspace",
  activation: "post" | "pre",
): Float64Array {
  const { nInner: I, nEmbd: C } = CONFIG;
  const T = ids.length;
  const W = (n: string) => weights.get(n)!.data;
  const clean = gpt2ForwardRef(CONFIG, weights, ids, {
    hooks: { capture: new Set([`mlp_post.${layer}`, `resid_pre.${layer}`, `attn_out.${layer}`]) },
  });
  let w: Float64Array;
  if (activation === "post") w = clean.cache[`mlp_post.${layer}`].slice((T - 1) * I, T * I);
  else {
    const x = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      x[c] = clean.cache[`resid_pre.${layer}`][(T - 1) * C + c] +
        clean.cache[`attn_out.${layer}`][(T - 1) * C + c];
    }
    const mu = x.reduce((a, b) => a + b, 0) / C;
    const sd = Math.sqrt(x.reduce((a, b) => a + (b - mu) ** 2, 0) / C + CONFIG.layerNormEpsilon);
    const g = W(`h.${layer}.ln_2.weight`), bb = W(`h.${layer}.ln_2.bias`);
    const fw = W(`h.${layer}.mlp.c_fc.weight`), fb = W(`h.${layer}.mlp.c_fc.bias`);
    w = new Float64Array(I);
    for (let i = 0; i < I; i++) {
      let acc = fb[i];
      for (let c = 0; c < C; c++) acc += ((x[c] - mu) / sd * g[c] + bb[c]) * fw[c * I + i];
      w[i] = acc;
    }
    // Sanity: gelu(h) is the captured post-GELU activation.
    for (let i = 0; i < I; i++) {
      assert.ok(Math.abs(geluNewRef(w[i]) - clean.cache[`mlp_post.${layer}`][(T - 1) * I + i]) < 1e-9);
    }
  }
  const prob = (v: Float64Array) =>
    Math.exp(
      gpt2ForwardRef(CONFIG, weights, ids, {
        hooks: {
          patch: {
            [`mlp_post.${layer}`]: (val, TT, width) => {
              for (let i = 0; i < width; i++) {
                val[(TT - 1) * width + i] = activation === "post" ? v[i] : geluNewRef(v[i]);
              }
            },
          },
        },
      }).logprobsLast[target],
    );
  const eps = 1e-5;
  const sum = new Float64Array(I);
  for (let k = 0; k < m; k++) {
    const alpha = points === "left" ? k / m : k / (m - 1);
    const x = Float64Array.from(w, (v) => alpha * v);
    for (let i = 0; i < I; i++) {
      const x0 = x[i];
      x[i] = x0 + eps;
      const up = prob(x);
      x[i] = x0 - eps;
      const down = prob(x);
      x[i] = x0;
      sum[i] += (up - down) / (2 * eps);
    }
  }
  return Float64Array.from(sum, (g, i) => (w[i] * g) / m);
}

Deno.test("IG equals an independent float64 finite-difference IG: Dai (left, post-GELU) and EleutherAI (linspace, pre-GELU)", async () => {
  const seed = freshSeed();
  const { model, weights, ids, target } = await setup(seed);
  const m = 20;
  const variants = [["left", "post"], ["linspace", "pre"], ["linspace", "post"]] as const;
  const gpu: Float32Array[][] = [];
  const ref: Float64Array[][] = [];
  for (const [points, activation] of variants) {
    const a = await integratedGradients(model, ids, target, { steps: m, points, activation, batchSize: 7 });
    assert.equal(a.points, points);
    assert.equal(a.activation, activation);
    gpu.push(a.scores);
    ref.push(a.layers.map((l) => refIG(weights, ids, target, l, m, points, activation)));
  }
  const errs = variants.map((_, v) => [0, 1].map((l) => relErr(gpu[v][l], ref[v][l], 1e-6)));
  console.log(
    `IG vs float64 FD IG (rel. to max |IG|), layers 0/1: ${
      variants.map((x, v) => `${x.join("/")} ${errs[v].map((e) => e.toExponential(1)).join(",")}`).join("; ")
    }`,
  );
  for (const [v, e] of errs.entries()) {
    for (const [l, x] of e.entries()) assert.ok(x < 1e-4, `${variants[v]} layer ${l}: ${x} (seed ${seed})`);
  }
  // The test can tell the variants apart: each GPU result is far from the other definitions' references.
  for (let l = 0; l < CONFIG.nLayer; l++) {
    assert.ok(
      relErr(gpu[0][l], ref[2][l], 1e-6) > 10 * errs[0][l],
      `left vs linspace, layer ${l} (seed ${seed})`,
    );
    assert.ok(relErr(gpu[1][l], ref[2][l], 1e-6) > 10 * errs[1][l], `pre vs post, layer ${l} (seed ${seed})`);
  }
  model.destroy();
});

Deno.test("thresholds and refinement: Dai's >= and minimum count, EleutherAI's strict >", () => {
  const attr = {
    layers: [0, 1],
    scores: [Float32Array.from([1, 0.25, -3]), Float32Array.from([0.5, 0.125, 0])],
  };
  // max 1: >= 0.25 keeps 1, 0.5, 0.25; > 0.25 drops the tie (all exact in float32).
  assert.deepEqual(coarseNeurons(attr, 0.25).map((n) => [n.layer, n.neuron]), [[0, 0], [1, 0], [0, 1]]);
  assert.deepEqual(coarseNeurons(attr, 0.25, { strict: true }).map((n) => [n.layer, n.neuron]), [[0, 0], [
    1,
    0,
  ]]);
  const x = { layer: 0, neuron: 1, score: 1 }, y = { layer: 1, neuron: 2, score: 1 };
  // 10 prompts, x in 7, y in 3: share 0.7 keeps x (7 >= 7), strict (7 > 7) keeps nothing.
  const bag = Array.from({ length: 10 }, (_, i) => [...(i < 7 ? [x] : []), ...(i < 3 ? [y] : [])]);
  assert.deepEqual(refineNeurons(bag, 0.7).map((n) => n.neuron), [1]);
  assert.deepEqual(refineNeurons(bag, 0.7, { strict: true }), []);
  assert.deepEqual(refineNeurons(bag, 0.3).map((n) => n.neuron), [1, 2]);
  // Dai's minimum of 3 prompts: with 2 prompts nothing can pass; with 4 prompts, count 3 passes.
  assert.deepEqual(refineNeurons([[x], [x]], 0.7, { minCount: 3 }), []);
  assert.deepEqual(refineNeurons([[x], [x], [x], [y]], 0.5, { minCount: 3 }).map((n) => n.count), [3]);
  assert.throws(() => refineNeurons([[x]], 0.5, { minCount: -1 }), InputError);
});

Deno.test("ablation: suppress/amplify and Yu et al.'s faithfulness statistics match float64 masked forwards", async () => {
  const seed = freshSeed();
  const { model, weights, ids, target } = await setup(seed);
  const a = await integratedGradients(model, ids, target, { steps: 8 });
  const ranked = rankNeurons(a);
  const top = ranked.slice(0, 3);
  const rep = await suppressAmplify(model, ids, target, top);
  // Float64 reference: multiply the listed neurons' last-token activations by f (others by `rest`).
  const refLogprobs = (neurons: Array<{ layer: number; neuron: number }>, f: number, rest = 1) => {
    const patch: Record<string, (v: Float64Array, T: number, w: number) => void> = {};
    for (let l = 0; l < CONFIG.nLayer; l++) {
      patch[`mlp_post.${l}`] = (v, T, w) => {
        const keep = new Set(neurons.filter((n) => n.layer === l).map((n) => n.neuron));
        for (let i = 0; i < w; i++) v[(T - 1) * w + i] *= keep.has(i) ? f : rest;
      };
    }
    return gpt2ForwardRef(CONFIG, weights, ids, { hooks: { patch } }).logprobsLast;
  };
  const refScaled = (f: number) => Math.exp(refLogprobs(top, f)[target]);
  assert.ok(
    Math.abs(rep.suppressed - refScaled(0)) < 1e-4,
    `suppressed ${rep.suppressed} vs ${refScaled(0)} (seed ${seed})`,
  );
  assert.ok(
    Math.abs(rep.amplified - refScaled(2)) < 1e-4,
    `amplified ${rep.amplified} vs ${refScaled(2)} (seed ${seed})`,
  );
  // Yu et al.'s statistics by hand from float64 forwards: label = unblocked argmax.
  const argmax = (x: ArrayLike<number>) => {
    let b = 0;
    for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
    return b;
  };
  const base = gpt2ForwardRef(CONFIG, weights, ids).logprobsLast;
  const label = argmax(base);
  const want = (lp: Float64Array) => ({
    probDrop: Math.exp(base[label]) - Math.exp(lp[label]),
    flips: argmax(lp) === label ? 0 : 1,
    retainedRatio: Math.exp(lp[target] - base[target]),
  });
  const all = CONFIG.nLayer * CONFIG.nInner;
  // Poison: a target that is not the argmax, so label and target statistics differ.
  const other = (label + 1) % CONFIG.vocabSize;
  for (const tgt of [target, other]) {
    const res = await faithfulness(model, ids, tgt, ranked, [2, 11, all], { randomTrials: 2, seed });
    assert.equal(res.label, label, `label (seed ${seed})`);
    assert.ok(Math.abs(res.labelProb - Math.exp(base[label])) < 1e-5);
    for (const [j, k] of [2, 11, all].entries()) {
      const row = res.rows[j];
      assert.equal(row.k, k);
      const sel = ranked.slice(0, k);
      const wantBase = (lp: Float64Array) => ({ ...want(lp), retainedRatio: Math.exp(lp[tgt] - base[tgt]) });
      for (
        const [got, exp, what] of [
          [row.sufficiency, wantBase(refLogprobs(sel, 1, 0)), "sufficiency"],
          [row.comprehensiveness, wantBase(refLogprobs(sel, 0)), "comprehensiveness"],
        ] as Array<[BlockStats, ReturnType<typeof want>, string]>
      ) {
        assert.ok(
          Math.abs(got.probDrop - exp.probDrop) < 2e-5,
          `${what} k=${k} drop ${got.probDrop} vs ${exp.probDrop} (seed ${seed})`,
        );
        assert.equal(got.flips, exp.flips, `${what} k=${k} flips (seed ${seed})`);
        assert.ok(
          Math.abs(got.retainedRatio - exp.retainedRatio) < 1e-4 * Math.max(1, exp.retainedRatio),
          `${what} k=${k} ratio (seed ${seed})`,
        );
        assert.equal(got.runs, 1);
      }
      assert.equal(row.randomSufficiency.runs, 2);
      assert.ok(row.randomComprehensiveness.flips <= 2);
    }
    // Random draws of every neuron are the whole set: sufficiency changes nothing, comprehensiveness zeroes all.
    const last = res.rows[2];
    assert.ok(Math.abs(last.randomSufficiency.probDrop) < 1e-5 && last.randomSufficiency.flips === 0);
    assert.ok(Math.abs(last.randomComprehensiveness.probDrop - want(refLogprobs([], 1, 0)).probDrop) < 2e-5);
  }
  // Pooling: means weighted by runs, flips and runs summed.
  const row = (d: number, f: number, r: number, runs: number): BlockStats => ({
    probDrop: d,
    flips: f,
    retainedRatio: r,
    runs,
  });
  const mk = (s: BlockStats) => ({
    k: 2,
    sufficiency: s,
    comprehensiveness: s,
    randomSufficiency: s,
    randomComprehensiveness: s,
  });
  const pooled = poolFaithfulness([
    { target: 0, targetProb: 1, label: 0, labelProb: 1, rows: [mk(row(0.5, 1, 0.2, 1))] },
    { target: 0, targetProb: 1, label: 0, labelProb: 1, rows: [mk(row(0.2, 0, 0.8, 3))] },
  ]);
  const pc = pooled[0].comprehensiveness;
  assert.deepEqual([pc.flips, pc.runs], [1, 4]);
  assert.ok(
    Math.abs(pc.probDrop - (0.5 + 0.6) / 4) < 1e-12 && Math.abs(pc.retainedRatio - (0.2 + 2.4) / 4) < 1e-12,
  );
  model.destroy();
});
