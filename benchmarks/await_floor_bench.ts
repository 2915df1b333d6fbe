/**
 * The units of issue 15 whose completion waits were cut, on the trained world model (fixtures/world):
 * - group "fluency": generate_fast texts of 10 CounterFact prompts one prompt at a time (the old path,
 *   the baseline) against one generateFastBatch (the path fluency uses now), same texts;
 * - group "units": one 4-byte readback (one completion wait, the baseline: the other figures read as
 *   "so many waits"), integrated gradients (20 steps, both layers), FT-L (10 steps, norm constraint),
 *   instance gradients (16 examples, c_proj) and the key-statistics pass (200 records, a fresh cache).
 * `deno bench -A benchmarks/await_floor_bench.ts [--filter fluency]`.
 */
import { loadModel } from "../src/model/load.ts";
import { readRequests } from "../src/edit/requests.ts";
import { filledPrompt } from "../src/edit/requests.ts";
import { bosPrefix, encodeFact } from "../src/prompt/encode.ts";
import { generateFast } from "../src/model/generate_fast.ts";
import { generateFastBatch } from "../src/model/generate_batch.ts";
import { promptSeed } from "../src/evaluate/fluency.ts";
import { integratedGradients } from "../src/attribute/neurons.ts";
import { forEachExampleGradient } from "../src/attribute/instances.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { declaredStatsCorpus, layerStats } from "../src/edit/stats.ts";
import { createTensor, readTensor } from "../src/gpu/tensor.ts";

/** Iterations of the slow units (seconds each on llvmpipe): the bench stays a few minutes. */
const FEW = { n: 6, warmup: 1 };
const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const { model, tokenizer } = await loadModel(`${WORLD}/model`, { requireTokenizer: true });
const requests = await readRequests(`${WORLD}/counterfact.json`);
const samples = requests.slice(0, 10).map((r) => {
  const text = filledPrompt(r);
  return {
    ids: [...bosPrefix(tokenizer), ...tokenizer.encode(text)],
    maxOutLen: 100,
    seed: promptSeed(0, text),
  };
});

Deno.bench(
  "fluency texts, 10 prompts one by one (old path)",
  { group: "fluency", baseline: true, ...FEW },
  async () => {
    for (const s of samples) {
      await generateFast(model, tokenizer, s.ids, {
        maxOutLen: s.maxOutLen,
        seed: s.seed,
      });
    }
  },
);
Deno.bench("fluency texts, 10 prompts, generateFastBatch", { group: "fluency", ...FEW }, async () => {
  await generateFastBatch(model, tokenizer, samples);
});

const one = createTensor(model.gpu, [1], { name: "floor", data: new Float32Array([1]) });
Deno.bench("one 4-byte readback (one completion wait)", { group: "units", baseline: true }, async () => {
  await readTensor(one);
});
const fact = { prompt: "{} was born in", subject: "Purvox Arun", target: "Pellinor" };
const enc = encodeFact(tokenizer, fact, { nPositions: model.config.nPositions });
const ids = enc.ids.slice(0, enc.promptLength);
Deno.bench("integrated gradients, 20 steps, 2 layers", { group: "units", ...FEW }, async () => {
  await integratedGradients(model, ids, enc.target![0], { steps: 20 });
});
const req = { prompt: fact.prompt, subject: fact.subject, target_new: fact.target };
Deno.bench("FT-L, 10 steps, norm constraint, layers 0 and 1", { group: "units", ...FEW }, async () => {
  (await applyEdit(model, tokenizer, "ft", [req], {
    hparams: { num_steps: 10, norm_constraint: 5e-4, early_stop_loss: 0, layers: [0, 1] },
  })).restore();
});
const exs = requests.slice(0, 16).map((r) => {
  const e = encodeFact(tokenizer, { prompt: r.prompt, subject: r.subject, target: r.target_new }, {
    nPositions: model.config.nPositions,
  });
  const full = [...e.ids.slice(0, e.promptLength), ...e.target!];
  const input = full.slice(0, -1);
  return { input, targets: input.map((_, i) => (i >= e.promptLength - 1 ? full[i + 1] : -1)) };
});
const down = [0, 1].map((l) => model.spec.layer(model.config, l).down.weight);
Deno.bench("instance gradients, 16 examples, c_proj of both layers", { group: "units", ...FEW }, async () => {
  await forEachExampleGradient(model, exs, down, () => {});
});
const corpus = await declaredStatsCorpus(`${WORLD}/model`);
Deno.bench("key statistics, 2 layers, 200 records (fresh cache)", { group: "units", ...FEW }, async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "engram-bench-stats" });
  try {
    await layerStats(model, tokenizer, [0, 1], { corpus, cacheDir, maxSamples: 200 });
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});
