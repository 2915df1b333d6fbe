/**
 * MEMIT end to end against the float64 reference (src/reference/memit.ts): three requests spread over
 * three layers with a λ (mom2_update_weight) at which λC and KKᵀ weigh alike, compared weight by weight
 * (ΔW of each edited c_proj). Two template groups of different sizes make group averaging of the keys
 * differ from a flat mean; the (L − i) split, λ's place, and recomputing keys and h_L after each
 * layer's update each change every layer after the first (see docs/notes/issue-11-edittests.md for the mutations
 * this test was run against).
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { readTensor } from "../src/gpu/tensor.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { applyEdit } from "../src/edit/editors.ts";
import type { ValueHparams } from "../src/reference/edit_value.ts";
import { secondMomentRef } from "../src/reference/key_stats.ts";
import { memitRef } from "../src/reference/memit.ts";
import { copyWeights } from "./_edit_util.ts";
import { freshSeed } from "./_util.ts";
import {
  clampBindingLr,
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
const LAYERS = [0, 1, 2];
const N_REQUESTS = 3;

const BASE: ValueHparams = {
  v_num_grad_steps: 6,
  v_lr: 0,
  v_weight_decay: 0.5,
  clamp_norm_factor: 0.3,
  kl_factor: 0.0625,
  early_stop_loss: 5e-2,
};

function trace(a: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i * n + i];
  return s;
}

Deno.test("MEMIT over 3 layers with the real λ: GPU ΔW per layer equals the float64 reference", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const weights = randomGPT2(cfg, seed);
  const before = copyWeights(weights);
  const original = new Map([...weights].map(([k, v]) => [k, { shape: [...v.shape], data: before.get(k)! }]));
  const model = TransformerModel.create(gpu, cfg, weights);
  const tmp = await Deno.makeTempDir({ prefix: "engram_memitref_" });
  try {
    const { file, seqs } = await writeCorpus(tmp, seed + 1, 90, tok);
    const requests = refRequests(seed + 2, N_REQUESTS, cfg.vocabSize);
    const zLayer = LAYERS[LAYERS.length - 1];
    const HP = { ...BASE, v_lr: clampBindingLr(tok, original, requests[0], `resid_post.${zLayer}`) };
    const mom2 = new Map(LAYERS.map((l) => [l, secondMomentRef(cfg, original, seqs, l).mom2]));
    // λ with tr(λC) = tr(KKᵀ) ≈ n·E‖k‖² = n·tr(C): λ = n. Then a misplaced λ changes the solve a lot.
    const lambda = N_REQUESTS * 0.65;
    const h = await applyEdit(model, tok, "memit", requests, {
      layers: LAYERS,
      statsCorpus: file,
      statsDir: tmp,
      hparams: {
        ...HP,
        ...NO_PREFIX,
        mom2_update_weight: lambda,
        mom2_n_samples: 1000,
        context_template_length_params: [[3, 5]],
        fact_token: "subject_last",
      },
    });
    const groups = usedTemplates(h.result.info);
    assert.deepEqual(
      groups.map((g) => g.length),
      [1, 5],
      "template groups [['{}'], 5 sampled: one per MEMIT seed word]",
    );
    const ref = memitRef(cfg, original, tok, requests, { layers: LAYERS, groups, mom2, lambda, hp: HP });
    // The host copies (compared below) and the GPU copies the model runs on hold the same edited weights.
    for (const l of LAYERS) {
      const n = `h.${l}.mlp.c_proj.weight`;
      const gpuW = await readTensor(model.weight(n));
      assert.ok(
        gpuW.every((x, i) => x === model.weights.get(n)!.data[i]),
        `${n}: GPU and host weights differ`,
      );
    }
    const errs = ref.layers.map(({ layer, dW }) => {
      const got = weightDelta(model.weights, before, `h.${layer}.mlp.c_proj.weight`);
      return rel(got, dW);
    });
    const k0 = ref.layers[0].K;
    const kk = k0.reduce((s, k) => s + k.reduce((t, x) => t + x * x, 0), 0);
    console.log(
      `MEMIT ΔW rel err per layer ${errs.map((e) => e.toExponential(2))} (seed ${seed}); ` +
        `tr(λC)/tr(KKᵀ) ${(lambda * trace(mom2.get(0)!, cfg.nInner) / kk).toFixed(2)}; ` +
        `z steps ${ref.values.map((v) => v.steps)}, clamped ${ref.values.map((v) => v.clamped)}; ` +
        `‖resid‖ per layer ${
          ref.layers.map((l) => Math.hypot(...l.resid.flatMap((r) => [...r])).toFixed(3))
        }`,
    );
    errs.forEach((e, i) => assert.ok(e < 2e-4, `layer ${LAYERS[i]}: ΔW relative error ${e} (seed ${seed})`));
    assert.ok(ref.values[0].clamped > 0, "clamp never bound");
    for (const [k, v] of before) {
      if (!LAYERS.some((l) => k === `h.${l}.mlp.c_proj.weight`)) {
        assert.ok(model.weights.get(k)!.data.every((x, i) => x === v[i]), `${k} changed`);
      }
    }
    h.restore();
    for (const [k, v] of before) assert.ok(model.weights.get(k)!.data.every((x, i) => Object.is(x, v[i])));
  } finally {
    model.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
});
