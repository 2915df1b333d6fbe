/**
 * The study FT at layer −1 (belief-localization `ft_main.py` with `FT_subj_embeds`): only the token
 * embedding rows of the subject's tokens train, by Adam on the teacher-forced NLL with the L∞ clamp. Checked
 * against a float64 loop on the reference forward (src/reference/transformer.ts; the head is tied, so the
 * rows are the head's too) driven by central finite differences over exactly those rows.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { readTensor } from "../src/gpu/tensor.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import type { WeightMap } from "../src/model/config.ts";
import { fineTuneObjective } from "../src/evaluate/localization/ft_objective.ts";
import { encodeTarget, encodeText } from "../src/prompt/encode.ts";
import { filledPrompt } from "../src/edit/requests.ts";
import { adamwRef } from "../src/reference/adamw.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";
import { freshSeed } from "./_util.ts";
import { join } from "node:path";
import { loadModel } from "../src/model/load.ts";
import { readRequests } from "../src/edit/requests.ts";
import { applyComputed } from "../src/edit/apply.ts";
import { scoreAnswers } from "../src/evaluate/edit_metrics.ts";
import type { CaseResult } from "../src/evaluate/localization/case.ts";
import { readCase } from "../src/evaluate/localization/folder.ts";
import { EMBEDDING_LAYER } from "../src/evaluate/localization/objectives.ts";
import { runLocalizationStudy, STUDY_DEFAULTS } from "../src/evaluate/localization/study.ts";
import { REF_EDIT_CONFIG as cfg, refRequests, refWordTokenizer, rel } from "./_edit_ref_util.ts";

const tok = refWordTokenizer(cfg.vocabSize);

Deno.test("study FT at layer −1 trains the subject's embedding rows only; equals an FD-driven float64 loop", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const weights = randomGPT2(cfg, seed);
  assert.ok(!weights.has("lm_head.weight"), "the test model ties its head to wte");
  const model = TransformerModel.create(gpu, cfg, weights);
  try {
    const [r] = refRequests(seed + 1, 1, cfg.vocabSize);
    const req = { ...r, prompt: r.prompt };
    const prompt = encodeText(tok, filledPrompt(req), { nPositions: cfg.nPositions });
    const target = encodeTarget(tok, req.target_new);
    const ids = [...prompt, ...target.slice(0, -1)];
    // The subject's tokens, by the word tokenizer: its words, wherever they sit in the prompt.
    const subj = new Set(tok.encode(req.subject));
    const C = cfg.nEmbd, V = cfg.vocabSize;
    const rows = [...subj].sort((a, b) => a - b);
    const wte0 = Float64Array.from(weights.get("wte.weight")!.data);
    const nll = (x: Float64Array): number => {
      const w: WeightMap = new Map(weights);
      const e = Float32Array.from(wte0);
      rows.forEach((v, i) => {
        for (let c = 0; c < C; c++) e[v * C + c] = wte0[v * C + c] + x[i * C + c];
      });
      // Float64 forward of the changed embedding (float32 storage only for the map's type; the FD step
      // 1e-3 is far above float32 rounding of these entries).
      w.set("wte.weight", { shape: [V, C], data: e });
      const { logits } = transformerForwardRef(cfg, w, ids);
      let s = 0;
      target.forEach((t, j) => {
        const off = (prompt.length - 1 + j) * V;
        let m = -Infinity;
        for (let u = 0; u < V; u++) m = Math.max(m, logits[off + u]);
        let z = 0;
        for (let u = 0; u < V; u++) z += Math.exp(logits[off + u] - m);
        s -= logits[off + t] - m - Math.log(z);
      });
      return s;
    };
    const lr = 0.02, eps = 0.05, steps = 4;
    // Reference loop: step when loss ≥ 1e-2 (Adam, no weight decay), clamp to ±ε around the original.
    const x = new Float64Array(rows.length * C),
      m = new Float64Array(x.length),
      v = new Float64Array(x.length);
    let updates = 0;
    const losses: number[] = [];
    for (let it = 0; it < steps; it++) {
      const l = nll(x);
      losses.push(l);
      if (l >= 1e-2) {
        const h = 1e-3;
        const g = Float64Array.from(x, (_, k) => {
          const p = Float64Array.from(x), q = Float64Array.from(x);
          p[k] += h;
          q[k] -= h;
          return (nll(p) - nll(q)) / (2 * h);
        });
        adamwRef(x, g, m, v, { lr, step: ++updates, weightDecay: 0 });
      }
      for (let k = 0; k < x.length; k++) x[k] = Math.min(eps, Math.max(-eps, x[k]));
    }
    const got = await fineTuneObjective(model, tok, req, {
      layers: [-1],
      lr,
      numSteps: steps,
      normConstraint: eps,
      loss: "nll",
    });
    assert.deepEqual([...got.deltas.keys()], ["wte.weight"]);
    const d = got.deltas.get("wte.weight")!.data;
    const gotRows = new Float64Array(x.length);
    let outside = 0;
    for (let u = 0; u < V; u++) {
      for (let c = 0; c < C; c++) {
        const i = rows.indexOf(u);
        if (i >= 0) gotRows[i * C + c] = d[u * C + c];
        else outside = Math.max(outside, Math.abs(d[u * C + c]));
      }
    }
    const lossErr = rel(got.info.losses as number[], losses), dErr = rel(gotRows, x);
    const clamped = [...x].filter((t) => Math.abs(t) === eps).length;
    console.log(
      `FT layer −1: rows ${rows}, losses ${losses.map((l) => l.toFixed(4))}, loss rel err ${
        lossErr.toExponential(2)
      }, ` +
        `Δ rel err ${dErr.toExponential(2)}, ${clamped}/${x.length} entries at ±ε (seed ${seed})`,
    );
    assert.equal(outside, 0, "no other embedding row changes");
    assert.ok(clamped > 0, "the clamp binds");
    assert.ok(lossErr < 1e-4, `losses rel err ${lossErr} (seed ${seed})`);
    assert.ok(dErr < 1e-3, `Δ rel err ${dErr} (seed ${seed})`);
    // The model is as it was.
    assert.deepEqual(await readTensor(model.weight("wte.weight")), weights.get("wte.weight")!.data);
  } finally {
    model.destroy();
  }
});

Deno.test("localization study: --embeddings (layer −1) runs FT-1 only, as a separate embedding fine-tune", async () => {
  const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
  const lm = await loadModel(join(WORLD, "model"));
  const tok2 = lm.tokenizer!, model = lm.model;
  const reqs = (await readRequests(join(WORLD, "counterfact.json"))).slice(0, 1);
  const out = await Deno.makeTempDir({ prefix: "engram-locemb-" });
  try {
    const res = await runLocalizationStudy(model, tok2, reqs, {
      out: join(out, "s"),
      modelName: "world",
      dataFile: "counterfact.json",
      settings: {
        ...STUDY_DEFAULTS,
        samples: 3,
        noiseStd: 0.3,
        methods: ["ft-1", "ft-5"],
        objectives: ["error_injection", "fact_forcing"],
        layers: [EMBEDDING_LAYER],
      },
      edit: { hparams: { "ft-1": { num_steps: 3 } } },
    });
    // Only FT-1 × error injection runs at the embeddings (FT-5 and Fact Forcing do not).
    assert.equal(res.summary.edits, 1);
    const c = (await readCase(join(out, "s"), 0)) as CaseResult;
    const [e] = c.edits;
    assert.equal(e.method, "ft-1");
    assert.deepEqual(e.editedLayers, [EMBEDDING_LAYER]);
    const d = await fineTuneObjective(model, tok2, reqs[0], {
      layers: [EMBEDDING_LAYER],
      lr: 1e-3,
      numSteps: 3,
      normConstraint: 0.01,
      loss: "nll",
    });
    assert.deepEqual([...d.deltas.keys()], [model.spec.embed]);
    const applied = applyComputed(model, d);
    let p: number;
    try {
      const [s] = await scoreAnswers(model, tok2, [{
        prompt: filledPrompt(reqs[0]),
        answer: reqs[0].target_new,
      }]);
      p = Math.exp(-s.nll);
    } finally {
      applied.restore();
    }
    assert.equal(e.post.target.rewrite[0], p);
    assert.ok(p > c.objectives[0].pre.target.rewrite[0], "the new answer gains");
    // No MLP trace at the embeddings: no regression rows use them.
    assert.ok(res.summary.regressions.every((r) => r.n === 0));
  } finally {
    model.destroy();
    await Deno.remove(out, { recursive: true });
  }
});
