/**
 * ROME on the trained world model, at the site causal tracing finds for it (the prompt's last token,
 * layer 0 MLP; see fixtures/world/model/PROVENANCE.md): the rewrite and its paraphrase now give the new
 * object, the edited weight is the only one changed, and restoring gives back the original bits.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { applyEdit } from "../src/edit/editors.ts";
import { readRequests } from "../src/edit/requests.ts";
import { evaluateRequests, preEditState } from "../src/evaluate/edit_metrics.ts";
import { loadModel } from "../src/model/load.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MODEL = ROOT + "fixtures/world/model";

Deno.test({
  name: "ROME at the traced site (last token, layer 0) rewrites a world-model fact; restore is exact",
  ignore: !existsSync(MODEL + "/model.safetensors"),
  fn: async () => {
    const lm = await loadModel(MODEL);
    const tok = lm.tokenizer!;
    const [req] = (await readRequests(ROOT + "fixtures/world/counterfact.json")).slice(0, 1);
    const before = new Map([...lm.model.weights].map(([k, v]) => [k, v.data.slice()]));
    const prefix = [tok.eosId!];
    const pre = await preEditState(lm.model, tok, [req], { prefix });
    assert.equal(pre[0].scores.reliability, 0, `the model already says ${req.target_new}`);
    const statsDir = await Deno.makeTempDir({ prefix: "engram_rome_world_" });
    try {
      const h = await applyEdit(lm.model, tok, "rome", [req], {
        statsDir,
        hparams: { fact_token: "last", layers: [0] },
      });
      assert.deepEqual(h.result.weights, ["h.0.mlp.c_proj.weight"]);
      const [post] = await evaluateRequests(lm.model, tok, [req], { prefix, pre, fluencyTokens: 0 });
      assert.equal(post.reliability, 1, `after ROME the model says '${req.target_new}'`);
      assert.equal(post.generalization, 1, "and so does the held-out paraphrase");
      for (const [name, orig] of before) {
        if (name !== "h.0.mlp.c_proj.weight") assert.deepEqual(lm.model.weights.get(name)!.data, orig, name);
      }
      h.restore();
      for (const [name, orig] of before) assert.deepEqual(lm.model.weights.get(name)!.data, orig, name);
    } finally {
      lm.model.destroy();
      await Deno.remove(statsDir, { recursive: true });
    }
  },
});
