/**
 * Profiles the analysis units of issue 15 on the world model: integrated gradients (20 steps, both
 * layers), a causal trace (3 kinds, 10 noise samples), fluency of 10 CounterFact prompts, the key
 * statistics pass (300 corpus records, a fresh cache folder), FT-L with a norm constraint and instance
 * attribution. Wall time per unit and the queue submits / buffer maps / flushes it costs (patches
 * `GPUQueue.submit`, `onSubmittedWorkDone`, `GPUBuffer.mapAsync`).
 * `deno run -A scripts/profile_units.ts [--units ig,trace,fluency,stats,ft,instances] [--reps 2] [--json FILE]`.
 * Each unit runs once as a warm-up (pipelines, matmul tune) before its measured repetitions.
 */
import { loadModel } from "../src/model/load.ts";
import { readRequests } from "../src/edit/requests.ts";
import { integratedGradients } from "../src/attribute/neurons.ts";
import { causalTrace } from "../src/locate/trace.ts";
import { embeddingStd } from "../src/locate/patching.ts";
import { encodeFact } from "../src/prompt/encode.ts";
import { evaluateRequests } from "../src/evaluate/edit_metrics.ts";
import { declaredStatsCorpus, layerStats } from "../src/edit/stats.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { forEachExampleGradient } from "../src/attribute/instances.ts";
import { gpuCallCounts } from "./gpu_call_counts.ts";

const args = Deno.args;
const flag = (n: string) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : undefined;
};
const units = (flag("--units") ?? "ig,trace,fluency,stats,ft,instances").split(",");
const reps = Number(flag("--reps") ?? 2);
const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const counts = gpuCallCounts;
const out: Record<string, unknown> = { load: Deno.loadavg() };
/** SHA-256 (hex, first 16 digits) of a unit's numbers: old and new code must give the same digest. */
async function digest(parts: ArrayLike<number>[]): Promise<string> {
  const bytes = parts.map((p) => new Uint8Array(Float64Array.from(p).buffer));
  const all = new Uint8Array(bytes.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of bytes) {
    all.set(x, o);
    o += x.length;
  }
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...h.slice(0, 8)].map((x) => x.toString(16).padStart(2, "0")).join("");
}
/** Runs `f` once as a warm-up, then `reps` measured times; `f` returns the numbers to digest. */
async function phase(name: string, f: () => Promise<ArrayLike<number>[]>): Promise<void> {
  const dig = await digest(await f()); // warm-up (pipelines, matmul tune)
  const recs = [];
  for (let r = 0; r < reps; r++) {
    const c0 = { ...counts };
    const t0 = performance.now();
    const res = await f();
    const ms = performance.now() - t0;
    const d = await digest(res);
    if (d !== dig) throw new Error(`${name}: repetition ${r} gave digest ${d}, the warm-up ${dig}`);
    recs.push({
      ms: Math.round(ms),
      submits: counts.submit - c0.submit,
      maps: counts.map - c0.map,
      flushes: counts.flush - c0.flush,
      load1: Math.round(Deno.loadavg()[0] * 100) / 100,
    });
  }
  out[name] = { digest: dig, runs: recs };
  console.log(name, dig, JSON.stringify(recs));
}
const { model, tokenizer } = await loadModel(`${WORLD}/model`, { requireTokenizer: true });
const requests = await readRequests(`${WORLD}/counterfact.json`);
const fact = { prompt: "{} was born in", subject: "Purvox Arun", target: "Pellinor" };
const enc = encodeFact(tokenizer, fact, { nPositions: model.config.nPositions });
const ids = enc.ids.slice(0, enc.promptLength);

if (units.includes("ig")) {
  await phase("ig 20 steps", async () => {
    const a = await integratedGradients(model, ids, enc.target![0], { steps: 20 });
    return [...a.scores, a.baselineProb, [a.prob]];
  });
}
if (units.includes("trace")) {
  const subj = tokenizer.encode(fact.subject);
  const noiseStd = 3 * embeddingStd(model.weights, model.config.nEmbd, subj, model.spec.embed);
  await phase("trace 3 kinds x 10 samples", async () => {
    const r = await causalTrace(model, ids, enc.subjectRange, {
      kinds: ["hidden", "mlp", "attn"],
      samples: 10,
      noiseStd,
    });
    return [[r.pClean, r.pCorrupt], ...r.traces.flatMap((t) => t.scores)];
  });
}
if (units.includes("fluency")) {
  const reqs = requests.slice(0, 10);
  const flat = (cs: Awaited<ReturnType<typeof evaluateRequests>>) =>
    cs.map((c) => Object.values(c).map((v) => (typeof v === "number" ? v : NaN)));
  await phase(
    "scores of 10 requests (no fluency)",
    async () => flat(await evaluateRequests(model, tokenizer, reqs, { fluencyMaxLen: 0 })),
  );
  await phase(
    "scores + fluency of 10 requests",
    async () => flat(await evaluateRequests(model, tokenizer, reqs, {})),
  );
}
if (units.includes("stats")) {
  const corpus = await declaredStatsCorpus(`${WORLD}/model`);
  for (const layers of [[0, 1], [0]]) {
    await phase(`key statistics, layers ${layers}, 300 records`, async () => {
      const cacheDir = await Deno.makeTempDir({ prefix: "engram-prof-stats" });
      try {
        const st = await layerStats(model, tokenizer, layers, { corpus, cacheDir, maxSamples: 300 });
        return [...st.values()].map((x) => x.mom2);
      } finally {
        await Deno.remove(cacheDir, { recursive: true });
      }
    });
  }
}
if (units.includes("ft")) {
  const req = { prompt: "{} was born in", subject: "Purvox Arun", target_new: "Pellinor" };
  const trained = [0, 1].flatMap((l) => {
    const d = model.spec.layer(model.config, l).down;
    return [d.weight, ...(d.bias ? [d.bias] : [])];
  });
  await phase("ft-l 10 steps, norm constraint", async () => {
    const h = await applyEdit(model, tokenizer, "ft", [req], {
      hparams: { num_steps: 10, norm_constraint: 5e-4, early_stop_loss: 0, layers: [0, 1] },
    });
    const w = trained.map((n) => model.weights.get(n)!.data.slice());
    h.restore();
    return w;
  });
}
if (units.includes("instances")) {
  const exs = requests.slice(0, 16).map((r) => {
    const e = encodeFact(tokenizer, { prompt: r.prompt, subject: r.subject, target: r.target_new }, {
      nPositions: model.config.nPositions,
    });
    const full = [...e.ids.slice(0, e.promptLength), ...e.target!];
    const input = full.slice(0, -1);
    return { input, targets: input.map((_, i) => (i >= e.promptLength - 1 ? full[i + 1] : -1)) };
  });
  const grads = async (e: typeof exs, ps: string[]) => {
    const g: Float32Array[] = [];
    await forEachExampleGradient(model, e, ps, (i, x) => (g[i] = x.slice()));
    return g;
  };
  const down = [0, 1].map((l) => model.spec.layer(model.config, l).down.weight);
  await phase("instance gradients, 16 examples (c_proj)", () => grads(exs, down));
  const other = [model.spec.layer(model.config, 1).up.weight, ...down];
  await phase(
    "instance gradients, 4 examples (c_fc + c_proj, slow path)",
    () => grads(exs.slice(0, 4), other),
  );
}
out.loadEnd = Deno.loadavg();
console.log("load", JSON.stringify(out.load), "->", JSON.stringify(out.loadEnd));
const jf = flag("--json");
if (jf) await Deno.writeTextFile(jf, JSON.stringify(out, null, 2));
