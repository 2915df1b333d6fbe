/**
 * Profiles one ROME edit and MEMIT batches on the world model (issue 15): wall time per phase (context
 * templates, keys, the δ optimisation, the whole edit) and the queue submits / buffer maps / flushes each
 * phase costs. `deno run -P scripts/profile_edit.ts [--memit 10,100] [--no-rome] [--no-edit] [--json FILE]`.
 */
import { loadModel } from "../src/model/load.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { readRequests } from "../src/edit/requests.ts";
import { memitContextTemplates, romeContextTemplates } from "../src/edit/templates.ts";
import { optimizeDeltas } from "../src/edit/compute_v.ts";
import { requestKeys } from "../src/edit/compute.ts";
import { romeHparams } from "../src/edit/rome.ts";
import { memitHparams } from "../src/edit/memit.ts";
import { readHparamsFile } from "../src/edit/hparams.ts";
import { declaredStatsCorpus } from "../src/edit/stats.ts";
import { gpuCallCounts } from "./gpu_call_counts.ts";

const args = Deno.args;
const flag = (n: string) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : undefined;
};
const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const counts = gpuCallCounts;
const out: Record<string, unknown> = { load: Deno.loadavg() };
async function phase<T>(name: string, f: () => Promise<T>): Promise<T> {
  const c0 = { ...counts };
  const t0 = performance.now();
  const r = await f();
  const ms = performance.now() - t0;
  const rec = {
    ms: Math.round(ms),
    submits: counts.submit - c0.submit,
    maps: counts.map - c0.map,
    flushes: counts.flush - c0.flush,
  };
  out[name] = rec;
  console.log(name, JSON.stringify(rec));
  return r;
}
const lm = await loadModel(`${WORLD}/model`, { requireTokenizer: true });
const { model, tokenizer } = lm;
const requests = await readRequests(`${WORLD}/counterfact.json`);
const statsDir = `${Deno.env.get("HOME") ?? "/tmp"}/.cache/engram-profile-stats`;
const statsCorpus = await declaredStatsCorpus(`${WORLD}/model`);
const req0 = { prompt: "{} was born in", subject: "Purvox Arun", target_new: "Pellinor" };

if (!args.includes("--no-rome")) {
  const hp = romeHparams(model, {});
  // Warm-up (matmul tune, statistics cache, pipelines).
  await phase(
    "rome warmup edit",
    async () => (await applyEdit(model, tokenizer, "rome", [req0], { statsDir, statsCorpus })).restore(),
  );
  const groups = await phase(
    "rome templates",
    () => romeContextTemplates(model, tokenizer, hp.context_template_length_params, hp.seed),
  );
  const tpl = groups.flat();
  await phase(
    "rome keys",
    () => requestKeys(model, tokenizer, [req0], [tpl], hp.layers[0], hp.prefix_eos, hp.fact_token),
  );
  let steps = 0;
  await phase("rome optimizeDeltas", async () => {
    const r = await optimizeDeltas(model, tokenizer, [req0], tpl, `mlp_out.${hp.layers[0]}`, hp);
    steps = r[0].steps;
    return r;
  });
  out["rome steps"] = steps;
  await phase(
    "rome edit",
    async () => (await applyEdit(model, tokenizer, "rome", [req0], { statsDir, statsCorpus })).restore(),
  );
}
const memitNs = (flag("--memit") ?? "10").split(",").filter((s) => s).map(Number);
const mh = (await readHparamsFile(`${WORLD}/model/hparams/memit.json`)) as Record<string, unknown>;
for (const n of memitNs) {
  const reqs = requests.slice(0, n);
  const hp = memitHparams(model, { hparams: mh });
  const groups = await phase(
    `memit${n} templates`,
    () => memitContextTemplates(model, tokenizer, hp.context_template_length_params, hp.seed),
  );
  await phase(
    `memit${n} optimizeDeltas`,
    () => optimizeDeltas(model, tokenizer, reqs, groups.flat(), `resid_post.${hp.layers.at(-1)}`, hp),
  );
  await phase(
    `memit${n} keys`,
    () => requestKeys(model, tokenizer, reqs, groups, hp.layers[0], hp.prefix_eos, hp.fact_token),
  );
  if (args.includes("--no-edit")) continue;
  await phase(
    `memit${n} edit`,
    async () =>
      (await applyEdit(model, tokenizer, "memit", reqs, { statsDir, statsCorpus, hparams: mh })).restore(),
  );
}
out.loadEnd = Deno.loadavg();
console.log("load", JSON.stringify(out.load), "->", JSON.stringify(out.loadEnd));
const jf = flag("--json");
if (jf) await Deno.writeTextFile(jf, JSON.stringify(out, null, 2));
