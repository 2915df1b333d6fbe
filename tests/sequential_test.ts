/**
 * Sequential editing curves (src/evaluate/sequential.ts) on the tiny model: the records at 2 and 4 edits
 * equal separate `evaluateMethod` sequential runs over the first 2 and 4 requests; perplexity and the
 * weight norms equal float64 computations on the edited weights (gpt2ForwardRef); a run cut after 2 edits
 * and resumed gives the uninterrupted run's records; a resume on another model is a typed error. Also the
 * wild scores against an independent float64 greedy generation.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import type { WeightMap } from "../src/model/config.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { evaluateMethod } from "../src/evaluate/edit_metrics.ts";
import { runSequential } from "../src/evaluate/sequential.ts";
import { wildAnswers } from "../src/evaluate/wild.ts";
import { curveSvgs } from "../src/report/curves.ts";
import { romeEditor } from "../src/edit/rome.ts";
import { InputError } from "../src/errors.ts";
import { freshSeed } from "./_util.ts";
import { TINY_EDIT_CONFIG, wordTokenizer } from "./_edit_util.ts";

const cfg = TINY_EDIT_CONFIG;
const words = wordTokenizer(cfg.vocabSize);
/** The word tokenizer, also reading ROME's KL prompt "{} is a" ("is" = w10, "a" = w11). */
const tok = {
  ...words,
  encode: (t: string) =>
    words.encode(t.replace(/(^|\s)is(?=\s|$)/g, "$1w10").replace(/(^|\s)a(?=\s|$)/g, "$1w11")),
};
const REQS = [
  { prompt: "w1 {} w3", subject: "w2", target_new: "w4 w5", ground_truth: "w6", rephrase: ["w7 w2 w3"] },
  {
    prompt: "{} w7",
    subject: "w6",
    target_new: "w8",
    ground_truth: "w9",
    locality: [{ prompt: "w3 w7", ground_truth: "w9" }],
  },
  { prompt: "w0 {}", subject: "w5", target_new: "w1", ground_truth: "w2", rephrase: ["w5 w0"] },
  {
    prompt: "{} w4 w4",
    subject: "w3 w1",
    target_new: "w9 w0",
    ground_truth: "w7",
    locality: [{ prompt: "w8 w8", ground_truth: "w2" }],
  },
];
// ROME without statistics (u = k/‖k‖): fast, and nothing cached between runs.
const EDIT = {
  layers: [0],
  hparams: { v_num_grad_steps: 4, context_template_length_params: [] as number[][], mom2_adjustment: false },
};
const PPL = ["w1 w2 w3 w4", "w5 w6 w7", "w8 w9 w0 w1 w2"];

const copy = (w: WeightMap): WeightMap =>
  new Map([...w].map(([k, t]) => [k, { shape: [...t.shape], data: t.data.slice() }]));

/** exp(mean NLL) of every token after the BOS (= eos) prefix, in float64. */
function pplRef(weights: WeightMap): number {
  let nll = 0, n = 0;
  for (const t of PPL) {
    const ids = [cfg.vocabSize - 1, ...words.encode(t)];
    const { logits } = gpt2ForwardRef(cfg, weights, ids);
    const V = cfg.vocabSize;
    for (let p = 0; p + 1 < ids.length; p++) {
      let m = -Infinity;
      for (let v = 0; v < V; v++) m = Math.max(m, logits[p * V + v]);
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(logits[p * V + v] - m);
      nll -= logits[p * V + ids[p + 1]] - m - Math.log(s);
      n++;
    }
  }
  return Math.exp(nll / n);
}

Deno.test("sequential records equal separate runs; perplexity and norms match float64; resume; another model refused", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const w0 = randomGPT2(cfg, seed, { std: 0.5 });
  const dir = await Deno.makeTempDir({ prefix: "engram_seq_" });
  try {
    const model = TransformerModel.create(gpu, cfg, copy(w0));
    const curve = await runSequential(model, tok, "rome", REQS, {
      every: 2,
      edit: EDIT,
      pplTexts: PPL,
      wild: true,
      outDir: `${dir}/a`,
    });
    assert.deepEqual(curve.records.map((r) => r.edits), [2, 4], `seed ${seed}`);
    // Separate runs: the first k requests edited one after another, measured once.
    for (const rec of curve.records) {
      const m2 = TransformerModel.create(gpu, cfg, copy(w0));
      const sep = await evaluateMethod(m2, tok, "rome", REQS.slice(0, rec.edits), {
        mode: "sequential",
        edit: EDIT,
        fluencyMaxLen: 0,
        wild: true,
      });
      m2.destroy();
      assert.deepEqual(rec.metrics, sep.metrics, `record at ${rec.edits} (seed ${seed})`);
    }
    // Perplexity and norms at the last record against float64 on the edited host weights.
    const last = curve.records[1];
    const ref = pplRef(model.weights);
    assert.ok(Math.abs(last.perplexity! - ref) / ref < 1e-4, `ppl ${last.perplexity} vs ${ref}`);
    assert.ok(Math.abs(curve.baseline.perplexity! - pplRef(w0)) / pplRef(w0) < 1e-4, "baseline ppl");
    assert.ok(last.perplexity !== curve.baseline.perplexity, "edits moved the perplexity");
    assert.equal(last.weights.length, 1);
    const wn = last.weights[0];
    const a = model.weights.get(wn.name)!.data, o = w0.get(wn.name)!.data;
    let sn = 0, sd = 0, so = 0;
    for (let i = 0; i < a.length; i++) {
      sn += a[i] * a[i];
      so += o[i] * o[i];
      sd += (a[i] - o[i]) ** 2;
    }
    assert.ok(Math.abs(wn.norm - Math.sqrt(sn)) < 1e-9 * Math.sqrt(sn));
    assert.ok(Math.abs(wn.original_norm - Math.sqrt(so)) < 1e-9 * Math.sqrt(so));
    assert.ok(Math.abs(wn.delta_norm - Math.sqrt(sd)) < 1e-9 * Math.sqrt(sd) && sd > 0);
    model.destroy();

    // Cut after 2 edits, then resumed with all 4: the uninterrupted run's records, bit for bit.
    const m3 = TransformerModel.create(gpu, cfg, copy(w0));
    await runSequential(m3, tok, "rome", REQS.slice(0, 2), {
      every: 2,
      edit: EDIT,
      pplTexts: PPL,
      outDir: `${dir}/b`,
    });
    m3.destroy();
    const m4 = TransformerModel.create(gpu, cfg, copy(w0));
    const resumed = await runSequential(m4, tok, "rome", REQS, {
      every: 2,
      edit: EDIT,
      pplTexts: PPL,
      outDir: `${dir}/b`,
    });
    m4.destroy();
    assert.equal(resumed.resumed_from, 2);
    assert.deepEqual(resumed.records.map((r) => r.edits), [2, 4]);
    const strip = (r: typeof last) => ({ ...r, edit_s: 0, eval_s: 0, metrics: { ...r.metrics } });
    for (let i = 0; i < 2; i++) {
      const want = strip(curve.records[i]);
      for (const k of Object.keys(want.metrics)) {
        if (k.startsWith("wild")) delete (want.metrics as Record<string, unknown>)[k];
      }
      assert.deepEqual(strip(resumed.records[i]), want, `resumed record ${i}`);
    }
    const lines = (await Deno.readTextFile(`${dir}/b/records.jsonl`)).trim().split("\n");
    assert.equal(lines.length, 2);

    // Another model (other weights): refused by fingerprint; nothing of the folder is changed.
    const before = await Deno.readTextFile(`${dir}/b/records.jsonl`);
    const other = TransformerModel.create(gpu, cfg, randomGPT2(cfg, seed + 1, { std: 0.5 }));
    await assert.rejects(
      () => runSequential(other, tok, "rome", REQS, { every: 2, edit: EDIT, outDir: `${dir}/b` }),
      (e) => e instanceof InputError && e.field === "fingerprint",
    );
    other.destroy();
    assert.equal(await Deno.readTextFile(`${dir}/b/records.jsonl`), before);
    // A batch size that does not divide --every is refused before any work.
    const m5 = TransformerModel.create(gpu, cfg, copy(w0));
    await assert.rejects(
      () => runSequential(m5, tok, "rome", REQS, { every: 3, batchSize: 2, edit: EDIT }),
      (e) => e instanceof InputError && e.field === "--every",
    );
    m5.destroy();
    const svgs = curveSvgs([curve]);
    assert.ok(svgs.has("reliability.svg") && svgs.has("perplexity.svg") && svgs.has("delta_norm.svg"));
    assert.match(svgs.get("reliability.svg")!, /^<svg[^]*<polyline[^]*rome[^]*<\/svg>\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("wild answers equal an independent float64 greedy generation (exact, contains, stop at EOS)", async () => {
  const prompts = ["w1 w2", "w3", "w4 w5 w6", "w0 w9"];
  // Some draws end most prompts at EOS at once (too few answers to test): draw again, at most 5 times.
  const first = freshSeed();
  let seed = first, w = randomGPT2(cfg, seed, { std: 0.5 });
  const greedy = (p: string, max: number) => {
    const ids = [cfg.vocabSize - 1, ...words.encode(p)];
    const out: number[] = [];
    while (out.length < max && ids.length < cfg.nPositions) {
      const { logits } = gpt2ForwardRef(cfg, w, ids);
      const V = cfg.vocabSize, off = (ids.length - 1) * V;
      let b = 0;
      for (let v = 1; v < V; v++) if (logits[off + v] > logits[off + b]) b = v;
      if (b === cfg.vocabSize - 1) break;
      out.push(b);
      ids.push(b);
    }
    return out;
  };
  // Targets: the greedy answer itself (2 tokens: exact), its first token (contained, not exact), a word it
  // never produces (neither).
  let items: { prompt: string; answer: string }[] = [];
  let want: { exact: number; contains: number; ids: number[] }[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    if (attempt > 0) {
      [seed, w, items, want] = [first + attempt, randomGPT2(cfg, first + attempt, { std: 0.5 }), [], []];
    }
    collect();
    if (items.length >= 3) break;
  }
  function collect() {
    for (const p of prompts) {
      const g2 = greedy(p, 2 + 3);
      if (g2.length >= 2) {
        items.push({ prompt: p, answer: words.decode(g2.slice(0, 2)) });
        want.push({ exact: g2.length === 2 ? 1 : 0, contains: 1, ids: g2 });
      }
      const g1 = greedy(p, 1 + 3);
      if (g1.length >= 1) {
        const absent = Array.from({ length: cfg.vocabSize - 1 }, (_, i) => i).find((i) => !g1.includes(i))!;
        items.push({ prompt: p, answer: `w${absent}` });
        want.push({ exact: 0, contains: 0, ids: g1 });
      }
    }
  }
  assert.ok(items.length >= 3, `seeds ${first}..${seed}: too few non-empty generations on 5 draws`);
  const model = TransformerModel.create(await getGpu(), cfg, w);
  const got = await wildAnswers(model, tok, items);
  got.forEach((g, i) => {
    assert.deepEqual(g.ids, want[i].ids, `item ${i} ids (seed ${seed})`);
    assert.equal(g.exact, want[i].exact, `item ${i} exact`);
    assert.equal(
      g.contains,
      words.decode(want[i].ids).includes(items[i].answer.trim()) ? 1 : 0,
      `item ${i} contains`,
    );
  });
  model.destroy();
});

Deno.test("NAS in a sequential run: the anchor is the mean ‖v*‖ of the first K requests solved on the unedited model", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const w0 = randomGPT2(cfg, seed, { std: 0.5 });
  // Plain ROME (NAS off) on the unedited model: each request's v* alone.
  const plain = TransformerModel.create(gpu, cfg, copy(w0));
  const norms: number[] = [];
  for (const q of REQS.slice(0, 2)) {
    const c = await romeEditor(plain, tok, [q], EDIT);
    norms.push(Math.hypot(...c.tensors.get("request.0.v_star")!.data));
  }
  plain.destroy();
  const model = TransformerModel.create(gpu, cfg, copy(w0));
  const curve = await runSequential(model, tok, "rome", REQS.slice(0, 2), {
    every: 2,
    edit: { ...EDIT, hparams: { ...EDIT.hparams, nas_skip_factor: 0 } },
    nas: true,
    nasSamples: 2,
  });
  model.destroy();
  const want = (norms[0] + norms[1]) / 2;
  assert.ok(
    Math.abs(curve.nas_norm! - want) < 1e-5 * want,
    `anchor ${curve.nas_norm} vs ${want} (seed ${seed})`,
  );
  assert.equal(curve.records[0].nas_skipped, 0);
});
