/**
 * The δ optimisation's fast path (src/edit/compute_v.ts: upper blocks resumed from the clean residual,
 * the backward stopped at the site, no forward readback, the loss on the GPU in float32) against the
 * whole-model path it replaced (`resume: false, gpuLoss: false`: every step runs all blocks with the
 * patch hook and the loss is computed on the host in float64): the same steps, losses and δ to
 * float tolerance, for several requests at once, at `mlp_out.L` and `resid_post.L` in the first, a middle
 * and the last block, on GPT-2 and on parallel-residual (GPT-NeoX, GPT-J) and llama blocks. The fast path
 * is also checked against the float64 reference in tests/compute_v_test.ts. A backward asked for a
 * gradient below a resumed block is refused.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomFamilyConfig, randomGPT2, randomWeights } from "../src/model/random.ts";
import { backwardFromLogitGrads } from "../src/model/backward.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { optimizeDeltas } from "../src/edit/compute_v.ts";
import { romeDefaults } from "../src/edit/hparams.ts";
import { freshSeed } from "./_util.ts";
import { NO_PREFIX, REF_EDIT_CONFIG, refRequests, refWordTokenizer, rel } from "./_edit_ref_util.ts";

const TEMPLATES = ["{}", "w3 w9 . {}", "w7 w1 w12 . {}", "w5 . {}"];

async function compare(
  cfg: ModelConfig,
  weights: ReturnType<typeof randomGPT2>,
  label: string,
  seed: number,
) {
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const tok = refWordTokenizer(cfg.vocabSize);
  try {
    const reqs = refRequests(seed + 1, 2, cfg.vocabSize);
    const L = cfg.nLayer;
    const layers = [...new Set([0, Math.floor(L / 2), L - 1])];
    let worst = 0;
    for (const layer of layers) {
      for (const kind of ["mlp_out", "resid_post"]) {
        const site = `${kind}.${layer}`;
        const hp = {
          ...romeDefaults(cfg),
          ...NO_PREFIX,
          // In the last block a change at the subject's token reaches no later position: "last" there.
          fact_token: layer === L - 1 ? "last" as const : "subject_last" as const,
          v_num_grad_steps: 4,
          v_lr: 0.2,
          kl_factor: 0.25,
          early_stop_loss: 0,
        };
        const fast = await optimizeDeltas(model, tok, reqs, TEMPLATES, site, hp);
        const slow = await optimizeDeltas(model, tok, reqs, TEMPLATES, site, hp, {
          resume: false,
          gpuLoss: false,
        });
        fast.forEach((f, r) => {
          const s = slow[r];
          const where = `${label} ${site} request ${r} (seed ${seed})`;
          assert.equal(f.steps, s.steps, `${where}: steps`);
          assert.deepEqual(f.targetInit, s.targetInit, `${where}: target_init`);
          assert.ok(Math.abs(f.kl - s.kl) <= 1e-6 * Math.max(1, s.kl), `${where}: kl ${f.kl} vs ${s.kl}`);
          assert.ok(Math.max(...f.delta.map(Math.abs)) > 0, `${where}: δ moved`);
          const e = rel(f.delta, s.delta);
          worst = Math.max(worst, e);
          assert.ok(e < 1e-4, `${where}: δ rel err ${e}`);
          assert.ok(Math.abs(f.loss - s.loss) <= 1e-5 * Math.max(1, Math.abs(s.loss)), `${where}: loss`);
          assert.ok(Math.abs(f.nllInit - s.nllInit) <= 1e-6 * Math.max(1, s.nllInit), `${where}: nll_init`);
        });
      }
    }
    console.log(
      `${label}: worst δ rel err fast vs whole-model path ${worst.toExponential(2)} (seed ${seed})`,
    );
  } finally {
    model.destroy();
  }
}

Deno.test("optimizeDeltas: resumed upper blocks give the whole-model path's δ (GPT-2, 4 layers)", async () => {
  const seed = freshSeed();
  await compare(REF_EDIT_CONFIG, randomGPT2(REF_EDIT_CONFIG, seed), "gpt2", seed);
});

for (const [family, variant] of [["neox", "parallel"], ["gptj", "gptj"], ["llama", "llama"]] as const) {
  Deno.test(`optimizeDeltas: resumed upper blocks give the whole-model path's δ (${variant})`, async () => {
    const seed = freshSeed();
    const cfg = {
      ...randomFamilyConfig(family, seed, variant),
      vocabSize: REF_EDIT_CONFIG.vocabSize,
      nPositions: 24,
    };
    await compare(cfg, randomWeights(cfg, seed, { std: 0.3 }), variant, seed);
  });
}

Deno.test("backward from a resumed forward: the site's gradient equals the full pass's; below it is refused", async () => {
  const seed = freshSeed();
  const cfg = REF_EDIT_CONFIG;
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, seed));
  const C = cfg.nEmbd, V = cfg.vocabSize;
  try {
    const batch = [[1, 5, 9, 2, 7], [3, 3, 8, 1, 4]];
    const rows = [4, 7, 9];
    const dl = Float32Array.from({ length: rows.length * V }, (_, i) => Math.sin(i + seed));
    const lossFn = () => ({ loss: 0, dlogits: dl });
    const { captured, logprobs } = await model.forward(batch, { hooks: { capture: ["resid_post.1"] } });
    // An inference forward resumed at block 2 gives the full forward's log-probabilities.
    const resumed = await model.forward(batch, {
      resume: { layer: 2, x: captured.get("resid_post.1")!.data },
    });
    resumed.logprobs.forEach((lp, b) =>
      assert.deepEqual(lp, logprobs[b], `resumed inference, sequence ${b}`)
    );
    const full = await model.forwardForBackward(batch, {});
    const want = await backwardFromLogitGrads(model, full.saved, rows, lossFn, {
      siteGrads: ["resid_post.1", "mlp_out.1"],
    });
    full.saved.destroy();
    const res = await model.forwardForBackward(batch, {
      resume: { layer: 2, x: captured.get("resid_post.1")!.data },
      noReadback: true,
    });
    assert.deepEqual(res.result.logprobs, []);
    const got = await backwardFromLogitGrads(model, res.saved, rows, lossFn, {
      siteGrads: ["resid_post.1", "mlp_out.1"],
    });
    for (const s of ["resid_post.1", "mlp_out.1"]) {
      const e = rel(got.siteGrads.get(s)!, want.siteGrads.get(s)!);
      assert.ok(e < 1e-6, `${s}: rel err ${e} (seed ${seed})`);
      assert.ok(Math.max(...got.siteGrads.get(s)!.map(Math.abs)) > 0);
    }
    assert.equal(got.siteGrads.get("resid_post.1")!.length, batch.length * 5 * C);
    await assert.rejects(
      () => backwardFromLogitGrads(model, res.saved, rows, lossFn, { siteGrads: ["mlp_post.1"] }),
      /resumed at block 2/,
    );
    res.saved.destroy();
  } finally {
    model.destroy();
  }
});
