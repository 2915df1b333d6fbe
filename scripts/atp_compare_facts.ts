/**
 * AtP (and AtP*) against full activation patching over many facts of one model (issue 18): for each
 * fact of a facts file, the corrupt run is the same prompt with another subject of the same token length
 * and a different answer (symmetric token replacement, the pairs taken in file order), the metric the
 * logit difference of the two answers; `compareAtpWithPatching` per fact, then per site kind the mean
 * Spearman correlation and top-k overlap over the facts, and the total wall times.
 *
 * `deno run -A scripts/atp_compare_facts.ts --model DIR --facts FILE [--limit 20] [--top 10]
 *   [--sites resid_pre,attn_out,mlp_out,resid_post,head_out,mlp_post] [--star] [--json OUT]`
 */
import { parseArgs } from "node:util";
import { getGpu } from "../src/gpu/device.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { encodeFact } from "../src/prompt/encode.ts";
import { readTraceFacts } from "../src/prompt/facts.ts";
import type { AtpSiteKind } from "../src/locate/atp.ts";
import { compareAtpWithPatching } from "../src/locate/atp_compare.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    facts: { type: "string" },
    limit: { type: "string", default: "20" },
    top: { type: "string", default: "10" },
    sites: { type: "string", default: "resid_pre,attn_out,mlp_out,resid_post,head_out,mlp_post" },
    star: { type: "boolean", default: false },
    json: { type: "string" },
  },
});
if (!a.model || !a.facts) throw new Error("--model and --facts are needed");
const hf = await loadHFModel(a.model);
const tok = hf.tokenizer!;
const model = TransformerModel.create(await getGpu(), hf.config, hf.weights);
const sites = a.sites!.split(",") as AtpSiteKind[];
const facts = await readTraceFacts(a.facts);
const limit = Number(a.limit), top = Number(a.top);
const encoded = facts.filter((f) => f.target !== undefined).map((f) => {
  const e = encodeFact(tok, { prompt: f.prompt, subject: f.subject, target: f.target! });
  return { f, ids: e.ids.slice(0, e.promptLength), answer: e.target![0], range: e.subjectRange };
});
const perKind = new Map<string, { rho: number[]; recall: number[] }>();
let atpS = 0, patchS = 0, used = 0;
const rows = [];
for (const x of encoded) {
  if (used >= limit) break;
  // The corrupt prompt: the same prompt around another subject of equal token length, another answer.
  const y = encoded.find((o) =>
    o.f.subject !== x.f.subject && o.answer !== x.answer && o.ids.length === x.ids.length &&
    o.range[0] === x.range[0] && o.range[1] === x.range[1] &&
    o.ids.every((id, i) => (i >= x.range[0] && i < x.range[1]) || id === x.ids[i])
  );
  if (!y) continue;
  used++;
  const c = await compareAtpWithPatching(model, x.ids, { ids: y.ids }, {
    kind: "logit-diff",
    answer: x.answer,
    counterfactual: y.answer,
  }, { sites, top, qkFix: a.star, gradDrop: a.star });
  atpS += c.atpSeconds;
  patchS += c.patchingSeconds;
  for (const k of c.kinds) {
    const e = perKind.get(k.kind) ?? { rho: [], recall: [] };
    if (k.spearman !== null) e.rho.push(k.spearman);
    e.recall.push(k.topRecall);
    perKind.set(k.kind, e);
  }
  rows.push({
    prompt: x.f.prompt,
    corrupt_subject: y.f.subject,
    metric_clean: c.atp.metricClean,
    metric_corrupt: c.atp.metricCorrupt,
    kinds: c.kinds,
  });
}
model.destroy();
const mean = (v: number[]) => v.reduce((p, q) => p + q, 0) / Math.max(1, v.length);
const sd = (v: number[]) => Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)));
const summary = [...perKind].map(([kind, e]) => ({
  kind,
  facts: e.rho.length,
  spearman_mean: mean(e.rho),
  spearman_sd: sd(e.rho),
  top_recall_mean: mean(e.recall),
}));
console.log(
  `${a.model}: ${used} facts, ${a.star ? "AtP*" : "AtP"} ${atpS.toFixed(1)} s, patching ${
    patchS.toFixed(1)
  } s ` +
    `(${(patchS / atpS).toFixed(1)}x), top-${top} overlap`,
);
for (const s of summary) {
  console.log(
    `  ${s.kind.padEnd(10)} Spearman ${s.spearman_mean.toFixed(3)} ± ${
      s.spearman_sd.toFixed(3)
    } (${s.facts} facts)` +
      `  top-${top} overlap ${s.top_recall_mean.toFixed(2)}`,
  );
}
if (a.json) {
  await Deno.writeTextFile(
    a.json,
    JSON.stringify(
      {
        model: a.model,
        facts: used,
        star: a.star,
        atp_seconds: atpS,
        patching_seconds: patchS,
        summary,
        rows,
      },
      null,
      1,
    ),
  );
}
