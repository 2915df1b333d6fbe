/**
 * ROME end to end against the float64 reference (src/reference/rome.ts): the GPU edit's ΔW of
 * `h.L.mlp.c_proj.weight`, weight by weight, for two requests applied one after the other, on a tiny
 * random GPT-2 with odd sizes. Both sides use the same corpus for C and the context templates the
 * editor sampled (read from its result). Unlike "the edited MLP output equals v*" (true for any u),
 * this fails if k*, C, u, v* (NLL, KL, weight decay, Adam, clamp), k₀ or the sequential order is wrong.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { readTensor } from "../src/gpu/tensor.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { secondMomentRef } from "../src/reference/key_stats.ts";
import { romeRef } from "../src/reference/rome.ts";
import type { ValueHparams } from "../src/reference/edit_value.ts";
import { copyWeights } from "./_edit_util.ts";
import { freshSeed } from "./_util.ts";
import {
  clampBindingLr,
  cosine,
  NO_PREFIX,
  REF_EDIT_CONFIG as cfg,
  refRequests,
  refWordTokenizer,
  rel,
  usedTemplates,
  weightDelta,
  writeCorpus,
} from "./_edit_ref_util.ts";

const tok = refWordTokenizer(cfg.vocabSize);

// Few steps and the reference's loss weights; v_lr is set per model (below) so that the clamp binds.
const BASE: ValueHparams = {
  v_num_grad_steps: 7,
  v_lr: 0,
  v_weight_decay: 0.5,
  clamp_norm_factor: 0.3,
  kl_factor: 0.0625,
  early_stop_loss: 5e-2,
};

Deno.test("ROME: GPU ΔW equals the float64 reference ROME weight by weight (2 sequential requests)", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const weights = randomGPT2(cfg, seed);
  const before = copyWeights(weights);
  const original = new Map([...weights].map(([k, v]) => [k, { shape: [...v.shape], data: before.get(k)! }]));
  const model = TransformerModel.create(gpu, cfg, weights);
  const tmp = await Deno.makeTempDir({ prefix: "engram_romeref_" });
  try {
    const { file, seqs } = await writeCorpus(tmp, seed + 1, 90, tok);
    const requests = refRequests(seed + 2, 2, cfg.vocabSize);
    const layer = 2;
    const HP = { ...BASE, v_lr: clampBindingLr(tok, original, requests[0], `mlp_out.${layer}`) };
    const name = `h.${layer}.mlp.c_proj.weight`;
    const h = await applyEdit(model, tok, "rome", requests, {
      layers: [layer],
      statsCorpus: file,
      statsDir: tmp,
      hparams: {
        ...HP,
        ...NO_PREFIX,
        mom2_adjustment: true,
        mom2_n_samples: 1000,
        context_template_length_params: [[3, 2]],
        fact_token: "subject_last",
      },
    });
    const templates = usedTemplates(h.result.info).flat();
    assert.equal(templates.length, 3);
    const { mom2 } = secondMomentRef(cfg, original, seqs, layer);
    const ref = romeRef(cfg, original, tok, requests, { layer, templates, mom2, hp: HP });

    // The host copy (compared below) and the GPU copy the model runs on hold the same edited weight.
    const gpuW = await readTensor(model.weight(name));
    assert.ok(gpuW.every((x, i) => x === model.weights.get(name)!.data[i]), "GPU and host weights differ");
    const got = weightDelta(model.weights, before, name);
    const e = rel(got, ref.dW);
    const step0 = ref.steps[0];
    console.log(
      `ROME ΔW rel err ${e.toExponential(2)} (seed ${seed}); ref steps ${
        ref.steps.map((s) => s.value.steps)
      }, ` +
        `clamped ${ref.steps.map((s) => s.value.clamped)}, loss ${
          ref.steps.map((s) => s.value.loss.toFixed(3))
        }, ` +
        `cos(C⁻¹k*, k*) ${cosine(step0.u, step0.kStar).toFixed(3)}`,
    );
    assert.ok(e < 2e-4, `ΔW relative error ${e} (seed ${seed})`);
    // The case exercises what it is meant to: the clamp binds, KL and weight decay are active, C matters.
    assert.ok(ref.steps[0].value.clamped > 0, "clamp never bound");
    assert.ok(ref.steps.every((s) => s.value.kl > 0 && s.value.wd > 0));
    assert.ok(cosine(step0.u, step0.kStar) < 0.9, "C⁻¹k* ∥ k*: the case cannot tell C from no C");
    for (const [k, v] of before) {
      if (k !== name) assert.ok(model.weights.get(k)!.data.every((x, i) => x === v[i]), `${k} changed`);
    }
    h.restore();
    assert.ok(model.weights.get(name)!.data.every((x, i) => Object.is(x, before.get(name)![i])));
  } finally {
    model.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
});
