/**
 * Editing cost: seconds per edit for each method (ROME, the baseline of the group, FT-L, FT, KN) and
 * MEMIT's seconds per edit as the
 * batch grows (1, 10, 100 requests in one call), on a world-sized random GPT-2 (2 layers, width 96,
 * context 24) with the world tokenizer and requests from fixtures/world/counterfact.json. Statistics
 * are computed once beforehand (cached in a temporary folder) so the timings are of the edits alone.
 * Each bench runs one edit call and restores the weights.
 */
import { getGpu } from "../src/gpu/device.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { readRequests } from "../src/edit/requests.ts";
import { layerStats } from "../src/edit/stats.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const tokenizer = await loadTokenizer(WORLD);
const cfg = {
  nLayer: 2,
  nHead: 4,
  nEmbd: 96,
  vocabSize: tokenizer.vocabSize,
  nPositions: 24,
  nInner: 384,
  layerNormEpsilon: 1e-5,
};
const gpu = await getGpu();
const model = TransformerModel.create(gpu, cfg, randomGPT2(cfg, 1, { std: 0.02 }));
const requests = await readRequests(`${WORLD}/counterfact.json`);
const statsDir = await Deno.makeTempDir({ prefix: "engram_edit_bench_" });
const statsCorpus = `${WORLD}/train.jsonl`;
await layerStats(model, tokenizer, [0], { cacheDir: statsDir, corpus: statsCorpus });
const opts = { statsDir, statsCorpus, layers: [0] };

for (const method of ["rome", "ft-l", "ft", "kn"]) {
  Deno.bench(`${method}, 1 edit (seconds per edit)`, {
    group: "one edit",
    baseline: method === "rome",
    n: 3,
    warmup: 1,
  }, async () => {
    const h = await applyEdit(model, tokenizer, method, requests.slice(0, 1), method === "kn" ? {} : opts);
    h.restore();
  });
}

for (const n of [1, 10, 100]) {
  Deno.bench(`MEMIT, batch of ${n} (divide by ${n} for seconds per edit)`, {
    group: "memit",
    n: 2,
    warmup: 0,
  }, async () => {
    const h = await applyEdit(model, tokenizer, "memit", requests.slice(0, n), opts);
    h.restore();
  });
}
