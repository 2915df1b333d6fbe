/**
 * Seconds per edit call on the trained world model (fixtures/world/model) at batch 1, 10 and 100
 * requests of fixtures/world/counterfact.json (divide by the batch for seconds per edit), edited at the
 * traced site with the folder's hparams (hparams/rome.json for ROME, hparams/memit.json for MEMIT,
 * AlphaEdit and EMMET: last token, layer 0, λ 12) and FT-L's defaults at layer 0 — the costs of issue 15,
 * where the δ optimisation stops early as it does on real facts (a random model never reaches
 * early_stop_loss, which benchmarks/editors_bench.ts measures). Statistics and AlphaEdit's projection
 * are computed beforehand into a temporary cache, so the figures are of the edits. ROME edits one request
 * after another (as its reference does): batch 1 and 10 only (100 would take 100 ROME edits).
 * `deno bench -P benchmarks/edit_world_bench.ts [--filter "batch 10"]`.
 */
import { loadModel } from "../src/model/load.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { readRequests } from "../src/edit/requests.ts";
import { readHparamsFile } from "../src/edit/hparams.ts";
import { declaredStatsCorpus } from "../src/edit/stats.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const { model, tokenizer } = await loadModel(`${WORLD}/model`, { requireTokenizer: true });
const requests = await readRequests(`${WORLD}/counterfact.json`);
const statsDir = await Deno.makeTempDir({ prefix: "engram_edit_world_bench_" });
const statsCorpus = await declaredStatsCorpus(`${WORLD}/model`);
const rome = (await readHparamsFile(`${WORLD}/model/hparams/rome.json`)) as Record<string, unknown>;
const memit = (await readHparamsFile(`${WORLD}/model/hparams/memit.json`)) as Record<string, unknown>;
const OPTS: Record<string, Record<string, unknown>> = {
  rome: { hparams: rome },
  memit: { hparams: memit },
  alphaedit: { hparams: memit },
  emmet: { hparams: memit },
  "ft-l": { layers: [0] },
};
// Statistics (and AlphaEdit's null space) once, into the cache every call then reads.
for (const method of ["rome", "memit", "alphaedit"]) {
  (await applyEdit(model, tokenizer, method, requests.slice(0, 1), {
    statsDir,
    statsCorpus,
    ...OPTS[method],
  }))
    .restore();
}

for (const batch of [1, 10, 100]) {
  for (const method of Object.keys(OPTS)) {
    if (batch === 100 && method === "rome") continue;
    Deno.bench(`world model: ${method}, batch ${batch} (seconds per call of ${batch} edits)`, {
      group: `world batch ${batch}`,
      baseline: method === (batch === 1 ? "rome" : "memit"),
      n: batch === 100 ? 1 : 2,
      warmup: batch === 1 ? 1 : 0,
    }, async () => {
      const h = await applyEdit(model, tokenizer, method, requests.slice(0, batch), {
        statsDir,
        statsCorpus,
        ...OPTS[method],
      });
      h.restore();
    });
  }
}
