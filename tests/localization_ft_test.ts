// The study's belief-localization FT (src/evaluate/localization/ft_objective.ts) on the world model,
// checked against engram's FT-L editor where the two definitions coincide, and against the sign flip
// Adam's first step makes of the probability loss (d exp(−nll) = −p · d nll).
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../src/model/load.ts";
import { readRequests } from "../src/edit/requests.ts";
import { getEditor } from "../src/edit/editors.ts";
import { fineTuneObjective } from "../src/evaluate/localization/ft_objective.ts";
import { encodeFact } from "../src/prompt/encode.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;

Deno.test("study FT against FT-L and the probability loss", async (t) => {
  const lm = await loadModel(join(WORLD, "model"));
  const tok = lm.tokenizer!, model = lm.model;
  const req = (await readRequests(join(WORLD, "counterfact.json")))[0];
  assert.equal(tok.encode(" " + req.target_new).length, 1, "single-token targets make the two losses equal");
  const lr = 5e-3;
  const name = "h.1.mlp.c_proj.weight";
  const before = model.weights.get(name)!.data.slice();
  try {
    await t.step("NLL loss equals FT-L's teacher-forced objective (loss stays above 1e-2)", async () => {
      const mine = await fineTuneObjective(model, tok, req, {
        layers: [1],
        lr,
        numSteps: 3,
        normConstraint: 1e-3,
        loss: "nll",
      });
      const ftl = await getEditor("ft-l")(model, tok, [req], {
        layers: [1],
        hparams: { lr, num_steps: 3, norm_constraint: 1e-3, objective: "target_new", early_stop_loss: 1e-2 },
      });
      const a = mine.deltas.get(name)!.data, b = ftl.deltas.get(name)!.data;
      let maxDiff = 0, maxAbs = 0;
      for (let i = 0; i < a.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
        maxAbs = Math.max(maxAbs, Math.abs(b[i]));
      }
      assert.ok(maxAbs > 5e-4, `the edit must move weights (${maxAbs})`);
      assert.ok(maxDiff < 1e-6, `max |Δ| difference ${maxDiff}`);
      assert.deepEqual(model.weights.get(name)!.data, before, "the model is left unchanged");
    });

    await t.step("erasure's probability loss takes Adam's first step against the NLL's", async () => {
      const truth = { ...req, target_new: req.ground_truth! };
      const erase = await fineTuneObjective(model, tok, truth, {
        layers: [1],
        lr,
        numSteps: 1,
        normConstraint: 0,
        loss: "prob",
      });
      const nll = await getEditor("ft-l")(model, tok, [truth], {
        layers: [1],
        hparams: { lr, num_steps: 1, norm_constraint: 0, objective: "target_new", early_stop_loss: 0 },
      });
      const a = erase.deltas.get(name)!.data, b = nll.deltas.get(name)!.data;
      let checked = 0;
      for (let i = 0; i < a.length; i++) {
        if (Math.abs(b[i]) < 0.995 * lr) continue; // |g| below ~2e-6: Adam's eps (1e-8) matters
        checked++;
        assert.ok(Math.abs(a[i] + b[i]) < 0.01 * lr, `element ${i}: ${a[i]} vs −${b[i]}`);
      }
      assert.ok(checked > 100, `only ${checked} elements with a clear gradient`);
    });

    await t.step("forcing noise of std 0 on 10 rows leaves Adam's first step as the clean one", async () => {
      const fact = encodeFact(tok, { prompt: req.prompt, subject: req.subject }, {
        nPositions: model.config.nPositions,
      });
      const base = { layers: [1], lr, numSteps: 1, normConstraint: 0, loss: "nll" as const };
      const clean = await fineTuneObjective(model, tok, req, base);
      const zero = await fineTuneObjective(model, tok, req, {
        ...base,
        noise: { std: 0, samples: 10, seed: 1, rng: "numpy", subjectRange: fact.subjectRange },
      });
      const noisy = await fineTuneObjective(model, tok, req, {
        ...base,
        noise: { std: 0.5, samples: 10, seed: 1, rng: "numpy", subjectRange: fact.subjectRange },
      });
      const a = clean.deltas.get(name)!.data,
        b = zero.deltas.get(name)!.data,
        c = noisy.deltas.get(name)!.data;
      let maxDiff = 0, noiseDiff = 0;
      for (let i = 0; i < a.length; i++) {
        if (Math.abs(a[i]) < 0.995 * lr) continue; // Adam's eps matters below |g| ~ 2e-6
        maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
        noiseDiff = Math.max(noiseDiff, Math.abs(a[i] - c[i]));
      }
      assert.ok(maxDiff < 0.01 * lr, `std 0: ${maxDiff}`);
      assert.ok(noiseDiff > 0.1 * lr, `noise must change the step (${noiseDiff})`);
    });
  } finally {
    model.destroy();
  }
});
