/**
 * Hase et al. 2023's objectives of the v* / z optimisation (src/edit/compute_v.ts `objective`) against
 * float64 references built from the independent loss of src/reference/edit_value.ts:
 * - Fact Erasure: loss = exp(−NLL) + KL + WD (belief-localization `rome/compute_v.py`, `pred_prob`),
 *   no early stopping, and (ROME) a step after the last evaluation: the GPU run's per-step losses and
 *   final δ equal a float64 loop driven by central finite differences of that loss, on both loss paths;
 * - Fact Forcing: the loss under the subject noise equals the float64 loss of a forward whose subject
 *   embeddings carry the same draws (draw k of `SubjectNoiser`, recomputed here from its definition:
 *   numpy RandomState(seed + k)), over a whole trajectory with fresh draws at every step.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { optimizeDeltas } from "../src/edit/compute_v.ts";
import { romeDefaults } from "../src/edit/hparams.ts";
import { SubjectNoiser } from "../src/locate/subject_noiser.ts";
import { NumpyRandomState } from "../src/locate/numpy_random.ts";
import { adamwRef } from "../src/reference/adamw.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";
import {
  type RefPrompt,
  type ValueHparams,
  valueLossRef,
  type ValueSetup,
  valueSetupRef,
  type ValueSite,
} from "../src/reference/edit_value.ts";
import { freshSeed } from "./_util.ts";
import { NO_PREFIX, REF_EDIT_CONFIG as cfg, refRequests, refWordTokenizer, rel } from "./_edit_ref_util.ts";

const tok = refWordTokenizer(cfg.vocabSize);
const TEMPLATES = ["{}", "w3 w9 . {}", "w7 w1 w12 . {}"];
const C = cfg.nEmbd;

function editHparams(hp: ValueHparams) {
  return { ...romeDefaults(cfg), ...hp, ...NO_PREFIX, fact_token: "subject_last" as const };
}

/** Float64 loop: evaluate `lossAt(it, δ)`; stop at the end (or early); Adam on FD gradients; clamp. */
function refLoop(
  hp: ValueHparams,
  targetInitNorm: () => number,
  lossAt: (it: number, d: Float64Array) => number,
  o: { earlyStop: boolean; stepLast: boolean },
): { losses: number[]; delta: Float64Array; steps: number } {
  const delta = new Float64Array(C), m = new Float64Array(C), v = new Float64Array(C);
  const losses: number[] = [];
  let steps = 0;
  for (let it = 0; it < hp.v_num_grad_steps; it++) {
    const l = lossAt(it, delta);
    losses.push(l);
    steps = it + 1;
    if (o.earlyStop && l < hp.early_stop_loss) break;
    if (it === hp.v_num_grad_steps - 1 && !o.stepLast) break;
    const h = 1e-5;
    const g = Float64Array.from(delta, (_, j) => {
      const p = Float64Array.from(delta), q = Float64Array.from(delta);
      p[j] += h;
      q[j] -= h;
      return (lossAt(it, p) - lossAt(it, q)) / (2 * h);
    });
    adamwRef(delta, g, m, v, { lr: hp.v_lr, step: it + 1, weightDecay: 0 });
    const maxNorm = hp.clamp_norm_factor * targetInitNorm();
    const dn = Math.hypot(...delta);
    if (dn > maxNorm) { for (let j = 0; j < C; j++) delta[j] *= maxNorm / dn; }
  }
  return { losses, delta, steps };
}

Deno.test("optimizeDeltas, Fact Erasure: exp(−NLL) + KL + WD, no early stop, ROME's last step; equals an FD-driven float64 loop", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const weights = randomGPT2(cfg, seed);
  const model = TransformerModel.create(gpu, cfg, weights);
  try {
    const site: ValueSite = { kind: "mlp_out", layer: 2 };
    // The loop's hparams but the learning rate, which scales with the drawn request's target_init.
    const fixed = {
      v_num_grad_steps: 4,
      v_weight_decay: 0.5,
      clamp_norm_factor: 1e6,
      kl_factor: 0.5,
      // Above every loss: an NLL run would stop at once; erasure must ignore it.
      early_stop_loss: 1e3,
    };
    // (The gradient at δ = 0 does not depend on the learning rate.)
    const probe: ValueHparams = { ...fixed, v_lr: 1 };
    // Adam's first step is lr·sign(g) (at δ = 0 the gradient is −p·dNLL/dδ): a component of g within the
    // GPU's float32 error of 0 gets either sign, and the two runs part by a whole step there. The request
    // is drawn again until every component is at least 1e-3 of the largest (about 1 draw in 40 is not).
    let req = refRequests(seed + 1, 1, cfg.vocabSize)[0];
    let setup = valueSetupRef(cfg, weights, tok, req, TEMPLATES, site);
    for (let k = 2;; k++) {
      const g0 = Array.from(valueLossRef(setup, new Float64Array(C), probe).grad, Math.abs);
      if (Math.min(...g0) >= 1e-3 * Math.max(...g0)) break;
      if (k > 50) throw new Error(`no well-conditioned request in 50 draws (seed ${seed})`);
      req = refRequests(seed + k, 1, cfg.vocabSize)[0];
      setup = valueSetupRef(cfg, weights, tok, req, TEMPLATES, site);
    }
    const tn = Math.hypot(...setup.targetInit);
    const base: ValueHparams = { ...fixed, v_lr: (0.1 * tn) / Math.sqrt(C) };
    const klInit = valueLossRef(setup, new Float64Array(C), base).klLogprobs;
    const erasure = (_it: number, d: Float64Array) => {
      const r = valueLossRef(setup, d, base, klInit);
      return Math.exp(-r.nll) + r.kl + r.wd;
    };
    for (const stepLast of [true, false]) {
      const ref = refLoop(base, () => tn, erasure, { earlyStop: false, stepLast });
      for (const gpuLoss of [true, false]) {
        const losses: number[] = [];
        const [got] = await optimizeDeltas(
          model,
          tok,
          [req],
          TEMPLATES,
          `mlp_out.${site.layer}`,
          editHparams(base),
          {
            objective: { loss: "prob", stepLast },
            gpuLoss,
            onStep: (_s, _a, l) => losses.push(l),
          },
        );
        const lossErr = rel(losses, ref.losses), dErr = rel(got.delta, ref.delta);
        console.log(
          `erasure (stepLast ${stepLast}, gpuLoss ${gpuLoss}): losses ${losses.map((l) => l.toFixed(5))}, ` +
            `per-step rel err ${lossErr.toExponential(2)}, δ rel err ${dErr.toExponential(2)} (seed ${seed})`,
        );
        assert.equal(got.steps, base.v_num_grad_steps, "erasure runs every evaluation");
        assert.ok(lossErr < 1e-4, `per-step losses rel err ${lossErr} (seed ${seed})`);
        assert.ok(dErr < 1e-3, `final δ rel err ${dErr} (seed ${seed})`);
        assert.ok(Math.abs(got.loss - (Math.exp(-got.nll) + got.kl + got.wd)) < 1e-12, "reported loss");
        // At δ = 0 the loss is the target's probability alone (KL and WD vanish).
        assert.ok(Math.abs(losses[0] - Math.exp(-got.nllInit)) < 1e-6 * losses[0], "first loss = exp(−NLL)");
      }
      // The last step moves δ: the two variants differ.
      if (stepLast) {
        const noLast = refLoop(base, () => tn, erasure, { earlyStop: false, stepLast: false });
        assert.ok(rel(ref.delta, noLast.delta) > 1e-3, "stepLast takes one more step");
      }
    }
  } finally {
    model.destroy();
  }
});

/** Subject tokens [a, b) of a reference prompt (word tokenizer: the subject's words end at `lookup`). */
function subjectRange(p: RefPrompt, nSubj: number): [number, number] {
  return [p.lookup - nSubj + 1, p.lookup + 1];
}

Deno.test("optimizeDeltas, Fact Forcing: the loss under fresh subject noise equals float64 forwards with the same draws (MEMIT site)", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const weights = randomGPT2(cfg, seed);
  const model = TransformerModel.create(gpu, cfg, weights);
  try {
    const [req] = refRequests(seed + 1, 1, cfg.vocabSize);
    const site: ValueSite = { kind: "resid_post", layer: 1 };
    const clean = valueSetupRef(cfg, weights, tok, req, TEMPLATES, site);
    const prompts = [...clean.rewrite, clean.kl];
    const nSubj = tok.encode(req.subject).length;
    const std = 0.7, noiseSeed = (seed * 7 + 3) >>> 0;
    const wte = weights.get("wte.weight")!.data, wpe = weights.get("wpe.weight")!.data;
    // Step it, prompt i: draw it·(prompts) + i, numpy RandomState(noiseSeed + k).randn · std.
    const noisedSetup = (it: number): ValueSetup => {
      const resid = `resid_post.${site.layer}`;
      const cl = prompts.map((p, i) => {
        const T = p.ids.length;
        const x = new Float64Array(T * C);
        for (let t = 0; t < T; t++) {
          for (let c = 0; c < C; c++) x[t * C + c] = wte[p.ids[t] * C + c] + wpe[t * C + c];
        }
        const [a, b] = subjectRange(p, nSubj);
        const z = new NumpyRandomState((noiseSeed + it * prompts.length + i) >>> 0).randn((b - a) * C);
        for (let j = 0; j < (b - a) * C; j++) x[a * C + j] += std * z[j];
        return transformerForwardRef(cfg, weights, p.ids, { embed: x, capture: [resid] }).sites.get(resid)!;
      });
      return { ...clean, clean: cl };
    };
    const setups = [0, 1, 2, 3].map(noisedSetup);
    // target_init: the noised site value of the first step's first rewriting prompt.
    const p0 = clean.rewrite[0];
    const targetInit = setups[0].clean[0].slice(p0.lookup * C, (p0.lookup + 1) * C);
    const tn = Math.hypot(...targetInit);
    const hp: ValueHparams = {
      v_num_grad_steps: 4,
      v_lr: (0.3 * tn) / Math.sqrt(C),
      v_weight_decay: 0.5,
      clamp_norm_factor: 1e6,
      kl_factor: 1,
      early_stop_loss: 0,
    };
    const withInit = setups.map((s) => ({ ...s, targetInit }));
    const klInit = valueLossRef(withInit[0], new Float64Array(C), hp).klLogprobs;
    const lossAt = (it: number, d: Float64Array) => valueLossRef(withInit[it], d, hp, klInit).loss;
    const ref = refLoop(hp, () => tn, lossAt, { earlyStop: true, stepLast: false });

    const losses: number[] = [];
    const noiser = new SubjectNoiser({ std, seed: noiseSeed, rng: "numpy" });
    const [got] = await optimizeDeltas(
      model,
      tok,
      [req],
      TEMPLATES,
      `resid_post.${site.layer}`,
      editHparams(hp),
      {
        objective: { noiser },
        onStep: (_s, _a, l) => losses.push(l),
      },
    );
    assert.equal(noiser.draws, hp.v_num_grad_steps * prompts.length, "one draw per prompt and step");
    const tiErr = rel(got.targetInit, targetInit);
    const cleanTi = rel(got.targetInit, clean.targetInit);
    // The noise matters: the clean loss at δ = 0 is not the noised one.
    const cleanLoss0 = valueLossRef(clean, new Float64Array(C), hp).loss;
    const lossErr = rel(losses, ref.losses), dErr = rel(got.delta, ref.delta);
    console.log(
      `forcing: losses ${losses.map((l) => l.toFixed(5))} (clean loss at δ=0 ${cleanLoss0.toFixed(5)}), ` +
        `per-step rel err ${lossErr.toExponential(2)}, δ ${dErr.toExponential(2)}, target_init ${
          tiErr.toExponential(2)
        } ` +
        `(clean differs by ${cleanTi.toExponential(2)}) (seed ${seed})`,
    );
    assert.ok(cleanTi > 1e-3, "target_init is the noised value");
    assert.ok(
      Math.abs(cleanLoss0 - losses[0]) > 1e-3 * Math.abs(cleanLoss0),
      "the first loss is the noised one",
    );
    assert.ok(tiErr < 1e-5, `target_init rel err ${tiErr}`);
    assert.ok(lossErr < 1e-4, `per-step losses rel err ${lossErr} (seed ${seed})`);
    assert.ok(dErr < 1e-3, `final δ rel err ${dErr} (seed ${seed})`);
  } finally {
    model.destroy();
  }
});
