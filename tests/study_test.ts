/**
 * The IA/NA study's wiring and the attribution commands' reports: the study attributes neurons with Yu et
 * al.'s settings, maps them through NA-Instances with the population z-score and compares the top-1
 * IA instance's top neuron; `neurons --json` names every faithfulness statistic.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { saveHFModel } from "../src/io/hf_model.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { naInstanceScores } from "../src/attribute/bridges.ts";
import { instanceScores, promptExample, topK, trainingExample } from "../src/attribute/instances.ts";
import { coarseNeurons, integratedGradients } from "../src/attribute/neurons.ts";
import { candidateNeurons, overlapStudy, studyNeurons } from "../src/attribute/study.ts";
import { engram, freshSeed, rng } from "./_util.ts";

const CONFIG = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 12,
  vocabSize: 29,
  nPositions: 12,
  nInner: 20,
  layerNormEpsilon: 1e-5,
};

Deno.test("study: Yu et al.'s NA settings, NA-Instances over the test's top-5 coarse neurons, IA-Neurons cutoff 1", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const model = TransformerModel.create(gpu, CONFIG, randomGPT2(CONFIG, seed, { std: 0.3 }));
  try {
    const r = rng(seed);
    const tok = () => Math.floor(r() * CONFIG.vocabSize);
    const cands = Array.from({ length: 4 }, (_, i) => ({
      id: `c${i}`,
      ids: Array.from({ length: 4 + (i % 2) }, tok),
    }));
    const prompts = cands.map((c) => ({ ids: c.ids.slice(0, -1), target: c.ids[c.ids.length - 1] }));
    const test = { name: "t", ids: [tok(), tok(), tok()], target: tok() };
    // Yu et al.: get_coarse_neurons(steps=20, adaptive_threshold=0.1) of their EleutherAI fork.
    const yu = async (ids: number[], target: number) =>
      coarseNeurons(
        await integratedGradients(model, ids, target, { steps: 20, points: "linspace", activation: "pre" }),
        0.1,
        { strict: true },
      );
    const want = await yu(test.ids, test.target);
    assert.deepEqual(await studyNeurons(model, test.ids, test.target), want);
    const dai = coarseNeurons(await integratedGradients(model, test.ids, test.target), 0.1);
    assert.notDeepEqual(dai.map((n) => n.score), want.map((n) => n.score), "the defaults must not be Dai's");
    const candN = await candidateNeurons(model, prompts);
    for (const [i, p] of prompts.entries()) assert.deepEqual(candN[i], await yu(p.ids, p.target));
    const [row] = await overlapStudy(
      model,
      cands.map((c, line) => ({ ...c, line, text: "" })),
      candN,
      [test],
      { k: 2 },
    );
    const ia = await instanceScores(
      model,
      cands.map((c) => trainingExample(c.ids)),
      promptExample(test.ids, test.target),
      { method: "grad-dot" },
    );
    assert.deepEqual(row.iaTop, topK(ia, 2), "default IA is grad-dot (Yu's grad-sim)");
    assert.deepEqual(row.naTop, topK(naInstanceScores(want.slice(0, 5), candN), 2));
    assert.deepEqual(row.naNeurons, want.slice(0, 1));
    assert.deepEqual(row.iaNeurons, candN[topK(ia, 1)[0]].slice(0, 1));
    assert.equal(
      row.neuronJaccard,
      row.naNeurons[0].layer === row.iaNeurons[0].layer &&
        row.naNeurons[0].neuron === row.iaNeurons[0].neuron
        ? 1
        : 0,
    );
  } finally {
    model.destroy();
  }
});

Deno.test("CLI neurons --json: faithfulness statistics are named, pooled over prompts, and Dai's minimum count is explained", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engram_neurons_cli_" });
  try {
    const world = new URL("../fixtures/world", import.meta.url).pathname;
    const { loadTokenizer } = await import("../src/io/tokenizer.ts");
    const vocabSize = (await loadTokenizer(world)).vocabSize;
    const cfg = {
      nLayer: 1,
      nHead: 1,
      nEmbd: 8,
      vocabSize,
      nPositions: 12,
      nInner: 16,
      layerNormEpsilon: 1e-5,
    };
    await saveHFModel(`${dir}/m`, { config: cfg, weights: randomGPT2(cfg, 5), tokenizerFrom: world });
    const args = ["--model", `${dir}/m`, "--target", "Sunmere", "--steps", "4", "--ks", "2,500"];
    const r = await engram(
      "neurons",
      ...args,
      "--prompt",
      "Gurnur Rulex was born in",
      "--prompt",
      "Gurnur Rulex is a native of",
      "--random-trials",
      "2",
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.schema, "engram-neurons/1");
    assert.equal(rep.points, "left");
    assert.equal(rep.activation, "post");
    assert.equal(rep.refine.min_count, 3);
    assert.match(r.stderr, /--min-count/);
    const f = rep.faithfulness;
    for (const k of ["prob_drop", "flips", "retained_ratio", "sufficiency", "comprehensiveness"]) {
      assert.equal(typeof f.statistics[k], "string", k);
    }
    assert.equal(f.per_prompt.length, 2);
    // k = 500 is clipped to the 16 neurons; comprehensiveness of all 16 = sufficiency of none.
    assert.deepEqual(f.pooled.map((x: { k: number }) => x.k), [2, 16]);
    const c = f.pooled[0].comprehensiveness;
    assert.equal(c.runs, 2);
    assert.equal(f.pooled[0].random_sufficiency.runs, 4);
    const mean = (f.per_prompt[0].rows[0].comprehensiveness.prob_drop +
      f.per_prompt[1].rows[0].comprehensiveness.prob_drop) / 2;
    assert.ok(Math.abs(c.prob_drop - mean) < 1e-12);
    assert.equal("comprehensiveness_retained" in c, false);
    const text = await engram("neurons", ...args, "--prompt", "Gurnur Rulex was born in");
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /prob_drop/);
    assert.match(text.stdout, /flips/);
    assert.match(text.stdout, /retained/);
    const bad = await engram("neurons", ...args, "--prompt", "Gurnur Rulex was born in", "--points", "mid");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--points must be one of left, linspace/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
