/**
 * ROME and MEMIT updates do what their closed forms promise, on a small random model:
 * ROME's rank-one update maps the un-prefixed prompt's key to v* exactly (the MLP output at the
 * subject's last token becomes v*); MEMIT with a negligible covariance weight solves ΔW K = R, so the
 * residual at the (single) edited layer reaches z for every request; restore() is bit-exact.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { type FactToken, readAtPositions, tokenizePrompt } from "../src/edit/compute.ts";
import { readRequests } from "../src/edit/requests.ts";
import { freshSeed } from "./_util.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const tokenizer = await loadTokenizer(WORLD);
const cfg = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 16,
  vocabSize: tokenizer.vocabSize,
  nPositions: 24,
  nInner: 64,
  layerNormEpsilon: 1e-5,
};
const requests = (await readRequests(`${WORLD}/counterfact.json`)).slice(0, 5);

async function setup() {
  const seed = freshSeed();
  const gpu = await getGpu();
  const model = TransformerModel.create(gpu, cfg, randomGPT2(cfg, seed));
  const tmp = await Deno.makeTempDir({ prefix: "engram_memit_" });
  const corpus = `${tmp}/c.jsonl`;
  await Deno.writeTextFile(
    corpus,
    (await Deno.readTextFile(`${WORLD}/train.jsonl`)).split("\n").slice(0, 300).join("\n"),
  );
  return { seed, model, tmp, corpus };
}

function bare(req: { prompt: string; subject: string }, factToken: FactToken = "subject_last") {
  const p = tokenizePrompt(
    tokenizer,
    cfg.nPositions,
    "{}",
    req.prompt,
    req.subject,
    undefined,
    true,
    factToken,
  );
  return { ids: p.ids, pos: p.lookup };
}

Deno.test("fact tokens: the subject's last token, or the prompt's last token", () => {
  const req = { prompt: "The favorite instrument of {} is the", subject: "Narnux Zava" };
  const ids = [tokenizer.eosId!, ...tokenizer.encode("The favorite instrument of Narnux Zava is the")];
  assert.deepEqual(bare(req).ids, ids);
  assert.equal(bare(req).pos, 6, "the last token of the two-token subject");
  assert.equal(bare(req, "last").pos, ids.length - 1);
  // With a target, "last" stays on the prompt's last token (the one predicting the first target token).
  const t = tokenizePrompt(tokenizer, cfg.nPositions, "{}", req.prompt, req.subject, [7, 8], true, "last");
  assert.equal(t.lookup, ids.length - 1);
  assert.deepEqual(t.targetPos, [ids.length - 1, ids.length]);
});

for (const [factToken, layer] of [["subject_last", 0], ["last", 1]] as const) {
  Deno.test(`ROME (${factToken} token, layer ${layer}): edited MLP output at the fact token equals v*; restore is exact`, async () => {
    const { seed, model, tmp, corpus } = await setup();
    const W = `h.${layer}.mlp.c_proj.weight`;
    const before = Float32Array.from(model.weights.get(W)!.data);
    const h = await applyEdit(model, tokenizer, "rome", requests.slice(0, 1), {
      layers: [layer],
      statsCorpus: corpus,
      statsDir: tmp,
      hparams: { v_num_grad_steps: 6, context_template_length_params: [[3, 2]], fact_token: factToken },
    });
    const vStar = h.result.tensors.get("request.0.v_star")!.data;
    const [got] = await readAtPositions(model, [bare(requests[0], factToken)], `mlp_out.${layer}`);
    const scale = Math.max(...Array.from(vStar, Math.abs));
    for (let j = 0; j < vStar.length; j++) {
      assert.ok(
        Math.abs(got[j] - vStar[j]) < 1e-4 * Math.max(1, scale),
        `mlp_out[${j}] ${got[j]} vs v* ${vStar[j]} (seed ${seed})`,
      );
    }
    h.restore();
    assert.ok(model.weights.get(W)!.data.every((x, i) => Object.is(x, before[i])));
    model.destroy();
    await Deno.remove(tmp, { recursive: true });
  });
}

Deno.test("MEMIT with a tiny covariance weight solves ΔW K = R: residuals reach z", async () => {
  const { seed, model, tmp, corpus } = await setup();
  const h = await applyEdit(model, tokenizer, "memit", requests, {
    layers: [0],
    statsCorpus: corpus,
    statsDir: tmp,
    // Only the bare "{}" template, so the keys K are exactly the un-prefixed prompts' keys.
    hparams: { v_num_grad_steps: 6, mom2_update_weight: 1e-6, context_template_length_params: [] },
  });
  const z = h.result.tensors.get("z")!.data;
  const got = await readAtPositions(model, requests.map((r) => bare(r)), "resid_post.0");
  const C = cfg.nEmbd;
  for (let r = 0; r < requests.length; r++) {
    let err = 0, nz = 0;
    for (let j = 0; j < C; j++) {
      err = Math.max(err, Math.abs(got[r][j] - z[r * C + j]));
      nz = Math.max(nz, Math.abs(z[r * C + j]));
    }
    assert.ok(err < 2e-3 * Math.max(1, nz), `request ${r}: |h - z| = ${err} (seed ${seed})`);
  }
  h.restore();
  model.destroy();
  await Deno.remove(tmp, { recursive: true });
});
