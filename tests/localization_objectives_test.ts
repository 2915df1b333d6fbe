// Localization study cells ROME × Fact Erasure and MEMIT × Fact Forcing on the world model (2 cases,
// layer 0, short v* optimisations): the study's per-case numbers equal separate library edits, the scores
// follow belief-localization's definitions (erasure: max(0, (pre − post) / pre); forcing: max(2e-8,
// 1 − (1 − post) / (1 − pre)) with both probabilities measured under the subject noise), and the noised
// probabilities equal float64 forwards (src/reference/transformer.ts) whose subject embeddings carry the
// same draws, before and after the edit.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../src/model/load.ts";
import { readRequests } from "../src/edit/requests.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { resolveStatsSource } from "../src/edit/stats.ts";
import { scoreAnswers } from "../src/evaluate/edit_metrics.ts";
import { type CaseResult, promptProbs } from "../src/evaluate/localization/case.ts";
import { readCase } from "../src/evaluate/localization/folder.ts";
import { runLocalizationStudy, STUDY_DEFAULTS } from "../src/evaluate/localization/study.ts";
import { bosPrefix, encodeTarget, findTokenRange } from "../src/prompt/encode.ts";
import { NumpyRandomState } from "../src/locate/numpy_random.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import type { WeightMap } from "../src/model/config.ts";
import type { TransformerModel } from "../src/model/transformer.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const readJson = (p: string) => JSON.parse(Deno.readTextFileSync(p));

/**
 * Float64 P = exp(−mean token NLL) of " " + answer after `prompt`, the subject's embeddings plus
 * std · RandomState(seed + draw).randn (the definition of draw `draw` of src/locate/subject_noiser.ts).
 */
function noisedProbRef(
  model: TransformerModel,
  weights: WeightMap,
  tok: Tokenizer,
  prompt: string,
  subject: string,
  answer: string,
  noise: { std: number; seed: number; draw: number } | undefined,
  prob: "mean" | "sequence" = "mean",
): number {
  const cfg = model.config, C = cfg.nEmbd, V = cfg.vocabSize;
  const p = [...bosPrefix(tok), ...tok.encode(prompt)];
  const a = encodeTarget(tok, answer);
  const ids = [...p, ...a.slice(0, -1)];
  const [s0, s1] = findTokenRange(tok, p, subject);
  const wte = weights.get("wte.weight")!.data, wpe = weights.get("wpe.weight")!.data;
  const x = new Float64Array(ids.length * C);
  ids.forEach((id, t) => {
    for (let c = 0; c < C; c++) x[t * C + c] = wte[id * C + c] + wpe[t * C + c];
  });
  if (noise) {
    const z = new NumpyRandomState(noise.seed + noise.draw).randn((s1 - s0) * C);
    for (let j = 0; j < (s1 - s0) * C; j++) x[s0 * C + j] += noise.std * z[j];
  }
  const { logits } = transformerForwardRef(cfg, weights, ids, { embed: x });
  let nll = 0;
  a.forEach((t, j) => {
    const off = (p.length - 1 + j) * V;
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, logits[off + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[off + v] - m);
    nll -= logits[off + t] - m - Math.log(s);
  });
  return Math.exp(-nll / (prob === "mean" ? a.length : 1));
}

Deno.test("localization scores: P of a multi-token answer is the product of its token probabilities (the reference), or their geometric mean", async () => {
  const lm = await loadModel(join(WORLD, "model"));
  const tok = lm.tokenizer!, model = lm.model;
  try {
    const [r] = await readRequests(join(WORLD, "counterfact.json"));
    const answer = `${r.ground_truth} ${r.target_new}`;
    assert.ok(encodeTarget(tok, answer).length >= 2, "a multi-token answer");
    const filled = r.prompt.replace("{}", r.subject);
    for (const prob of ["sequence", "mean"] as const) {
      const got = (await promptProbs(model, tok, r, answer, undefined, prob)).rewrite[0];
      const ref = noisedProbRef(model, model.weights, tok, filled, r.subject, answer, undefined, prob);
      assert.ok(Math.abs(got - ref) / ref < 1e-4, `${prob}: ${got} vs float64 ${ref}`);
    }
    const seq = (await promptProbs(model, tok, r, answer)).rewrite[0];
    const mean = (await promptProbs(model, tok, r, answer, undefined, "mean")).rewrite[0];
    assert.ok(seq < mean, `the default is the product (${seq} < ${mean})`);
  } finally {
    model.destroy();
  }
});

Deno.test("localization study: ROME fact erasure and MEMIT fact forcing follow the reference's definitions", async () => {
  const lm = await loadModel(join(WORLD, "model"));
  const tok = lm.tokenizer!, model = lm.model;
  const reqs = (await readRequests(join(WORLD, "counterfact.json"))).slice(0, 2);
  const out = await Deno.makeTempDir({ prefix: "engram-locobj-" });
  const src = await resolveStatsSource(join(WORLD, "model"));
  // The world model's ROME / MEMIT site (its hparams files), with short optimisations.
  const hp = {
    rome: {
      ...readJson(join(WORLD, "model/hparams/rome.json")),
      v_num_grad_steps: 4,
      mom2_n_samples: 500,
      early_stop_loss: 0,
    },
    memit: {
      ...readJson(join(WORLD, "model/hparams/memit.json")),
      v_num_grad_steps: 4,
      mom2_n_samples: 500,
      early_stop_loss: 0,
    },
  };
  for (const h of Object.values(hp)) delete h.comment;
  const noiseStd = 0.3, seed = STUDY_DEFAULTS.seed;
  const base = { ...STUDY_DEFAULTS, layers: [0], noiseStd, samples: 3 };
  // One statistics cache for every edit of the test (the study's and the separate ones).
  const statsDir = join(out, "stats");
  const edit = { hparams: hp, statsCorpus: src.statsCorpus, statsDir };
  const run = (name: string, method: "rome" | "memit", objective: "fact_erasure" | "fact_forcing") =>
    runLocalizationStudy(model, tok, reqs, {
      out: join(out, name),
      modelName: "world",
      dataFile: "counterfact.json",
      settings: { ...base, methods: [method], objectives: [objective] },
      edit,
    });
  try {
    const t0 = performance.now();
    const er = await run("erasure", "rome", "fact_erasure");
    const fo = await run("forcing", "memit", "fact_forcing");
    console.log(`two studies (2 cases, 1 edit each): ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(er.summary.edits, 2);
    assert.equal(fo.summary.edits, 2);
    assert.equal(er.summary.unsupported.length, 0);

    for (let i = 0; i < 2; i++) {
      const r = reqs[i], truth = r.ground_truth!;
      // ROME × Fact Erasure: target target_true, clean measurement, the erasure score.
      const ce = (await readCase(join(out, "erasure"), i)) as CaseResult;
      const [e] = ce.edits;
      assert.equal(e.target, truth);
      const pre = ce.objectives[0].pre.target;
      const clean = (items: string[]) =>
        scoreAnswers(model, tok, items.map((prompt) => ({ prompt, answer: truth }))).then((s) =>
          s.map((x) => Math.exp(-x.nll))
        );
      const filled = r.prompt.replace("{}", r.subject);
      assert.deepEqual(pre.rewrite, await clean([filled]));
      const applied = await applyEdit(model, tok, "rome", [{ ...r, target_new: truth }], {
        layers: e.editedLayers,
        hparams: hp.rome,
        statsCorpus: src.statsCorpus,
        statsDir,
        objective: { loss: "prob" },
      });
      let post: number[];
      try {
        post = await clean([filled, ...(r.rephrase ?? [])]);
      } finally {
        applied.restore();
      }
      assert.equal(e.post.target.rewrite[0], post[0], "erasure post equals a separate ROME erasure edit");
      assert.equal(e.post.target.paraphrase[0], post[1]);
      const erased = (a: number, b: number) => Math.max(0, (a - b) / a);
      assert.equal(e.scores.rewrite, erased(pre.rewrite[0], e.post.target.rewrite[0]));
      assert.equal(e.scores.paraphrase, erased(pre.paraphrase[0], e.post.target.paraphrase[0]));
      assert.ok(e.post.target.rewrite[0] < pre.rewrite[0], `case ${i}: the true answer's probability falls`);

      // MEMIT × Fact Forcing: target target_true, baseline the noised prediction, measured under noise.
      const cf = (await readCase(join(out, "forcing"), i)) as CaseResult;
      const [f] = cf.edits;
      const o = cf.objectives[0];
      assert.equal(f.target, truth);
      assert.equal(o.baseline, tok.decode([o.noised!.id]).trim());
      const noise = { std: noiseStd, seed, draw: 0 }; // the rewrite prompt is item 0 of each scoring
      const preRef = noisedProbRef(model, model.weights, tok, filled, r.subject, truth, noise);
      const preClean = (await clean([filled]))[0];
      const appliedF = await applyEdit(model, tok, "memit", [{ ...r, target_new: truth }], {
        layers: f.editedLayers, // MEMIT's window of 5 around layer 0, clipped: [0, 1]
        hparams: hp.memit,
        statsCorpus: src.statsCorpus,
        statsDir,
        objective: { noise: { std: noiseStd, seed, rng: "numpy" } },
      });
      let postRef: number;
      try {
        postRef = noisedProbRef(model, model.weights, tok, filled, r.subject, truth, noise);
      } finally {
        appliedF.restore();
      }
      const relE = (a: number, b: number) => Math.abs(a - b) / b;
      console.log(
        `case ${i}: erasure p ${pre.rewrite[0].toFixed(4)} → ${e.post.target.rewrite[0].toFixed(4)} ` +
          `(score ${e.scores.rewrite.toFixed(4)}); forcing p under noise ${
            o.pre.target.rewrite[0].toFixed(4)
          } ` +
          `(float64 ${preRef.toFixed(4)}, clean ${preClean.toFixed(4)}) → ${
            f.post.target.rewrite[0].toFixed(4)
          } ` +
          `(float64 ${postRef.toFixed(4)}), score ${f.scores.rewrite.toFixed(4)}`,
      );
      assert.ok(relE(o.pre.target.rewrite[0], preRef) < 1e-3, `case ${i}: noised pre vs float64`);
      assert.ok(relE(f.post.target.rewrite[0], postRef) < 1e-3, `case ${i}: noised post vs float64`);
      assert.ok(Math.abs(preClean - preRef) > 1e-3, `case ${i}: the noise changes the measured probability`);
      const recovered = (a: number, b: number) => Math.max(2e-8, 1 - (1 - b) / (1 - a));
      assert.equal(f.scores.rewrite, recovered(o.pre.target.rewrite[0], f.post.target.rewrite[0]));
    }
  } finally {
    model.destroy();
    await Deno.remove(out, { recursive: true });
  }
});
