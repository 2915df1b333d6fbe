/**
 * Quick edit-quality check (not the official metrics): edits N counterfact requests (env CF, default
 * fixtures/world/counterfact.json) in batches, restoring after each batch, and prints top-1 reliability,
 * generalization (rephrase) and locality (locality prompt top-1 unchanged).
 * usage: deno run -A scripts/edit_check.ts MODEL_DIR rome|memit N [LAYERS] [BATCH]  (env CORPUS: stats corpus)
 */
import { loadModel } from "../src/model/load.ts";
import { filledPrompt, readRequests } from "../src/edit/requests.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { declaredStatsCorpus } from "../src/edit/stats.ts";
const [dir, method, nStr, layersStr, batch] = Deno.args;
const lm = await loadModel(dir);
const tk = lm.tokenizer!;
const reqs = (await readRequests(Deno.env.get("CF") ?? "fixtures/world/counterfact.json")).slice(
  0,
  Number(nStr),
);
const eos = tk.eosId!;
async function top1(prompts: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const p of prompts) {
    const { logprobs } = await lm.model.forward([[eos, ...tk.encode(p)]]);
    let b = 0;
    const lp = logprobs[0];
    for (let i = 1; i < lp.length; i++) if (lp[i] > lp[b]) b = i;
    out.push(b);
  }
  return out;
}
const tgt = (s: string) => tk.encode(" " + s)[0];
const locPrompts = reqs.map((r) => r.locality![0].prompt);
const pre = await top1(locPrompts);
const prePrompt = await top1(reqs.map(filledPrompt));
let rel = 0, gen = 0, loc = 0, n = 0;
const t0 = performance.now();
const layers = layersStr ? layersStr.split(",").map(Number) : undefined;
const bs = Number(batch ?? 1);
for (let i = 0; i < reqs.length; i += bs) {
  const chunk = reqs.slice(i, i + bs);
  const h = await applyEdit(lm.model, tk, method, chunk, {
    layers,
    hparams: Deno.env.get("HP") ? JSON.parse(Deno.env.get("HP")!) : undefined,
    statsCorpus: Deno.env.get("CORPUS") ?? (await declaredStatsCorpus(dir)),
    onWarning: (m) => console.error("warn", m),
  });
  const a = await top1(chunk.map(filledPrompt));
  const g = await top1(chunk.map((r) => r.rephrase![0]));
  const l = await top1(chunk.map((r) => r.locality![0].prompt));
  chunk.forEach((r, j) => {
    rel += +(a[j] === tgt(r.target_new));
    gen += +(g[j] === tgt(r.target_new));
    loc += +(l[j] === pre[i + j]);
    n++;
  });
  if (i === 0) {
    const info = h.result.info as Record<string, unknown>;
    console.log(
      JSON.stringify(info.requests ?? info),
      JSON.stringify(info.statistics ?? info.layer_updates),
    );
  }
  h.restore();
}
const preRel = reqs.filter((r, j) => prePrompt[j] === tgt(r.target_new)).length;
console.log(
  JSON.stringify({
    method,
    n,
    layers,
    batch: bs,
    reliability: rel / n,
    generalization: gen / n,
    locality: loc / n,
    preReliability: preRel / n,
    secs: (performance.now() - t0) / 1000,
  }),
);
