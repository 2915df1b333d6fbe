/**
 * The notebook workflow of the README's "Library" section, on the world model, with mod.ts exports only:
 * load, run capturing sites, ablate one MLP neuron, trace the fact and plot it, read it through the logit
 * lens, ROME-edit it, measure the edit (locality included), generate with the KV cache, save the edited
 * model and load it back, restore the original weights bit for bit.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import {
  applyEdit,
  causalTrace,
  embeddingStd,
  encodeFact,
  evaluateEdit,
  generate,
  loadModel,
  logitLens,
  logitLensSvg,
  modelEditOptions,
  preEditState,
  readRequests,
  saveModel,
  traceHeatmapSvg,
} from "../mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const WORLD = ROOT + "fixtures/world/model";

Deno.test({
  name:
    "notebook workflow: load, capture, ablate, trace + plot, lens, ROME, measure, generate, save, restore",
  ignore: !existsSync(WORLD + "/model.safetensors"),
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "engram_notebook_" });
    // 1. Load, and encode the fact of the first CounterFact-style request.
    const lm = await loadModel(WORLD, { requireTokenizer: true });
    const { model, tokenizer: tok } = lm;
    try {
      const [req] = await readRequests(ROOT + "fixtures/world/counterfact.json");
      const fact = encodeFact(tok, { prompt: req.prompt, subject: req.subject, target: req.ground_truth! }, {
        nPositions: model.config.nPositions,
      });
      const ids = fact.ids.slice(0, fact.promptLength);
      const answer = fact.target![0];
      const before = new Map([...model.weights].map(([n, t]) => [n, t.data.slice()]));

      // 2. Run, capturing sites.
      const run = await model.forward([ids], { hooks: { capture: ["mlp_post.0", "resid_post.1"] } });
      const p0 = Math.exp(run.logprobs[0][answer]);
      assert.deepEqual(run.captured.get("mlp_post.0")!.shape, [1, ids.length, model.config.nInner]);
      assert.equal(run.captured.get("mlp_post.0")!.data.length, ids.length * model.config.nInner);
      assert.ok(p0 > 0.5, `the world model knows the fact (p = ${p0})`);

      // 3. Ablate the most active MLP unit at the last token (an edit hook) and watch p(answer) move.
      const act = run.captured.get("mlp_post.0")!.data;
      const I = model.config.nInner, last = ids.length - 1;
      let unit = 0;
      for (let j = 0; j < I; j++) if (act[last * I + j] > act[last * I + unit]) unit = j;
      const zero = (v: Float32Array, _B: number, T: number, w: number) => {
        for (let t = 0; t < T; t++) v[t * w + unit] = 0;
      };
      const ablated = await model.forward([ids], { hooks: { edit: [{ site: "mlp_post.0", fn: zero }] } });
      const p1 = Math.exp(ablated.logprobs[0][answer]);
      assert.notEqual(p1, p0, "ablating a unit changes p(answer)");

      // 4. Trace the fact and plot it.
      const trace = await causalTrace(model, ids, fact.subjectRange, {
        kinds: ["hidden", "mlp"],
        samples: 3,
        noiseStd: 3 * embeddingStd(model.weights, model.config.nEmbd),
        answer: fact.target,
      });
      const svg = traceHeatmapSvg(trace, "mlp", tok);
      assert.ok(svg.startsWith("<svg") && svg.includes("</svg>"));
      await Deno.writeTextFile(`${tmp}/trace_mlp.svg`, svg);
      assert.ok(trace.pClean > trace.pCorrupt, "corrupting the subject lowers p(answer)");

      // 5. The logit lens: at the last layer it is the model's own prediction.
      const lens = await logitLens(model, tok, ids, { topK: 3, target: answer });
      const L = model.config.nLayer;
      assert.ok(Math.abs(lens.target!.prob[L][last] - p0) < 1e-5);
      await Deno.writeTextFile(`${tmp}/lens.svg`, logitLensSvg(lens));

      // 6. ROME-edit the fact with the folder's own hparams and statistics corpus; 7. measure it.
      const preByHand = await preEditState(model, tok, [req]);
      // (The README's call as is; here the key statistics use 800 corpus records instead of all 6160, for
      // a test of seconds instead of minutes on a shared CPU.)
      const shipped = await modelEditOptions(lm.dir, "rome");
      const edit = await applyEdit(model, tok, "rome", [req], {
        ...shipped,
        hparams: { ...shipped.hparams, mom2_n_samples: 800 },
        statsDir: tmp,
      });
      const { pre, post } = await evaluateEdit(model, tok, edit, [req], { fluencyTokens: 0 });
      assert.deepEqual(pre, preByHand, "evaluateEdit's pre-edit state is the one measured before the edit");
      assert.equal(pre[0].scores.reliability, 0);
      assert.equal(post[0].reliability, 1, `the model now says ${req.target_new}`);
      assert.equal(typeof post[0].locality, "number", "locality is measured without passing a pre state");
      const newId =
        encodeFact(tok, { prompt: req.prompt, subject: req.subject, target: req.target_new }).target![0];
      const gen = await generate(model, ids, { maxTokens: 2 });
      assert.equal(gen.cached, true);
      assert.equal(gen.ids[0], newId, "greedy generation (KV cache) continues with the new answer");

      // 8. Save the edited model and load it back: it gives the edited prediction.
      await saveModel(`${tmp}/edited`, lm);
      const back = await loadModel(`${tmp}/edited`, { requireTokenizer: true });
      const pBack = (await back.model.forward([ids])).logprobs[0];
      const pEdited = (await model.forward([ids])).logprobs[0];
      assert.ok(Math.abs(pBack[newId] - pEdited[newId]) < 1e-6);
      assert.deepEqual(back.source!.hfConfig.eos_token_id, lm.source!.hfConfig.eos_token_id);
      back.model.destroy();

      // 9. Restore: every weight is back bit for bit, and so is p(answer).
      edit.restore();
      for (const [n, d] of before) assert.deepEqual(model.weights.get(n)!.data, d, n);
      assert.equal(Math.exp((await model.forward([ids])).logprobs[0][answer]), p0);
    } finally {
      model.destroy();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
