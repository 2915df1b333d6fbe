/**
 * The v* / z optimisation of src/edit/compute_v.ts ({@link optimizeDeltas}, the code ROME and MEMIT run)
 * against the float64 reference loss of src/reference/edit_value.ts:
 * - the loss terms it reports equal the reference NLL, KL and weight decay at the δ it returns;
 * - its whole Adam trajectory (losses per step and the final δ) equals a reference run driven by float64
 *   central finite differences of the reference loss. Adam sees the gradient only through this
 *   trajectory (it is invariant to a common positive scale of the gradient), so this is the test of its
 *   gradient code: a wrong or missing term, weight or sign changes the path;
 * - requests optimised together (MEMIT) give each request's own reference result, with the clamp
 *   binding and one request stopping early.
 * The reference's own analytic gradient (used by the ROME / MEMIT references) is checked against the
 * same finite differences.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { optimizeDeltas } from "../src/edit/compute_v.ts";
import { romeDefaults } from "../src/edit/hparams.ts";
import {
  optimizeValueRef,
  type ValueHparams,
  valueLossRef,
  type ValueSetup,
  valueSetupRef,
  type ValueSite,
} from "../src/reference/edit_value.ts";
import { freshSeed, randn, rng } from "./_util.ts";
import { NO_PREFIX, REF_EDIT_CONFIG as cfg, refRequests, refWordTokenizer, rel } from "./_edit_ref_util.ts";

const tok = refWordTokenizer(cfg.vocabSize);
const TEMPLATES = ["{}", "w3 w9 . {}", "w7 w1 w12 . {}"];

/** Central finite differences (float64, h = 1e-5) of the reference loss with P_init fixed. */
function fdGrad(s: ValueSetup, hp: ValueHparams, delta: Float64Array, klInit: Float64Array): Float64Array {
  const h = 1e-5;
  return Float64Array.from(delta, (_, j) => {
    const p = Float64Array.from(delta), m = Float64Array.from(delta);
    p[j] += h;
    m[j] -= h;
    return (valueLossRef(s, p, hp, klInit).loss - valueLossRef(s, m, hp, klInit).loss) / (2 * h);
  });
}

function editHparams(hp: ValueHparams) {
  return { ...romeDefaults(cfg), ...hp, ...NO_PREFIX, fact_token: "subject_last" as const };
}

Deno.test("optimizeDeltas: loss terms equal the float64 reference loss; the Adam path equals one driven by finite differences", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const weights = randomGPT2(cfg, seed);
  const model = TransformerModel.create(gpu, cfg, weights);
  try {
    const [req] = refRequests(seed + 1, 1, cfg.vocabSize);
    const site: ValueSite = { kind: "mlp_out", layer: 2 };
    const setup = valueSetupRef(cfg, weights, tok, req, TEMPLATES, site);
    const tn = Math.hypot(...setup.targetInit);
    // No clamp and no early stop: every step is the gradient's doing. kl_factor large enough to matter.
    const hp: ValueHparams = {
      v_num_grad_steps: 6,
      v_lr: (0.25 * tn) / Math.sqrt(cfg.nEmbd),
      v_weight_decay: 0.5,
      clamp_norm_factor: 1e6,
      kl_factor: 2,
      early_stop_loss: 0,
    };
    const stepLoss: number[] = [];
    const [got] = await optimizeDeltas(
      model,
      tok,
      [req],
      TEMPLATES,
      `mlp_out.${site.layer}`,
      editHparams(hp),
      {
        onStep: (_s, _a, loss) => stepLoss.push(loss),
      },
    );
    assert.ok(rel(got.targetInit, setup.targetInit) < 1e-5, "target_init");

    // Loss terms at the δ the GPU code reports (its last evaluation).
    const klInit = valueLossRef(setup, new Float64Array(cfg.nEmbd), hp).klLogprobs;
    const at = valueLossRef(setup, got.delta, hp, klInit);
    const termErr = Math.max(
      ...([["nll", got.nll, at.nll], ["kl", got.kl, at.kl], ["wd", got.wd, at.wd]] as const).map(
        ([w, g, r]) => {
          const e = Math.abs(g - r) / Math.max(Math.abs(r), 1e-3);
          assert.ok(e < 1e-4, `${w}: ${g} vs reference ${r} (seed ${seed})`);
          return e;
        },
      ),
    );
    assert.ok(
      at.kl > 1e-5 && at.wd > 1e-3,
      `KL ${at.kl} and weight decay ${at.wd} must be active at the final δ`,
    );

    // The path: a reference run whose gradient is finite differences of the reference loss.
    const fd = optimizeValueRef(setup, hp, (d, q) => fdGrad(setup, hp, d, q));
    assert.equal(got.steps, fd.steps);
    const lossErr = rel(stepLoss, fd.losses);
    const deltaErr = rel(got.delta, fd.delta);
    console.log(
      `compute_v: loss terms rel err ${termErr.toExponential(2)}, per-step loss ${
        lossErr.toExponential(2)
      }, ` +
        `final δ vs FD-driven reference ${deltaErr.toExponential(2)} (seed ${seed}); losses ${
          fd.losses.map((l) => l.toFixed(4))
        }`,
    );
    assert.ok(lossErr < 1e-4, `per-step losses: rel err ${lossErr} (seed ${seed})`);
    assert.ok(deltaErr < 1e-3, `final δ: rel err ${deltaErr} (seed ${seed})`);

    // The reference's analytic gradient (used by the ROME / MEMIT references) at a random δ.
    const d = Float64Array.from(randn(rng(seed + 2), cfg.nEmbd, 0.3 * tn / Math.sqrt(cfg.nEmbd)));
    const gErr = rel(valueLossRef(setup, d, hp, klInit).grad, fdGrad(setup, hp, d, klInit));
    assert.ok(gErr < 1e-6, `reference analytic gradient vs FD: ${gErr}`);
  } finally {
    model.destroy();
  }
});

Deno.test("optimizeDeltas: requests optimised together give each request's own reference result (clamp, early stop)", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const weights = randomGPT2(cfg, seed);
  const model = TransformerModel.create(gpu, cfg, weights);
  try {
    const reqs = refRequests(seed + 1, 2, cfg.vocabSize);
    const site: ValueSite = { kind: "resid_post", layer: 1 };
    const setups = reqs.map((r) => valueSetupRef(cfg, weights, tok, r, TEMPLATES, site));
    const tn = Math.hypot(...setups[0].targetInit);
    const base: ValueHparams = {
      v_num_grad_steps: 7,
      v_lr: (0.3 * tn) / Math.sqrt(cfg.nEmbd),
      v_weight_decay: 0.5,
      clamp_norm_factor: 0.4,
      kl_factor: 0.0625,
      early_stop_loss: 0,
    };
    // Early stop between two losses of one request (the "stopper"), away from every loss of both, and
    // preferably below the other's first loss so that both take steps.
    const free = setups.map((s) => optimizeValueRef(s, base).losses);
    const all = free.flat();
    const candidates: Array<{ t: number; stopper: number }> = [];
    for (const stopper of [0, 1]) {
      const l = free[stopper];
      for (let k = 2; k < l.length; k++) {
        const t = (l[k] + Math.min(...l.slice(0, k))) / 2;
        if (l[k] < t && all.every((x) => Math.abs(x - t) > 1e-3 * t)) candidates.push({ t, stopper });
      }
    }
    const pick = candidates.find(({ t, stopper }) => free[1 - stopper][0] > t) ?? candidates[0];
    assert.ok(pick, `no early-stop threshold separates the losses (seed ${seed})`);
    const stop = pick.t;
    const hp = { ...base, early_stop_loss: stop };
    const got = await optimizeDeltas(
      model,
      tok,
      reqs,
      TEMPLATES,
      `resid_post.${site.layer}`,
      editHparams(hp),
    );
    const ref = setups.map((s) => optimizeValueRef(s, hp));
    assert.ok(ref[pick.stopper].steps < hp.v_num_grad_steps, "one request stops early");
    assert.ok(ref.some((r) => r.clamped > 0), "the clamp binds");
    const errs = ref.map((r, i) => {
      assert.equal(got[i].steps, r.steps, `request ${i}: steps`);
      assert.ok(rel(got[i].targetInit, r.targetInit) < 1e-5, `request ${i}: target_init`);
      // A request that stopped at its first evaluation keeps δ = 0 exactly.
      return r.steps === 1 ? Math.max(...Array.from(got[i].delta, Math.abs)) : rel(got[i].delta, r.delta);
    });
    console.log(
      `compute_v batched: δ rel err ${errs.map((e) => e.toExponential(2))}, steps ${
        ref.map((r) => r.steps)
      }, ` +
        `clamped ${ref.map((r) => r.clamped)} (seed ${seed})`,
    );
    errs.forEach((e, i) => assert.ok(e < 1e-3, `request ${i}: δ rel err ${e} (seed ${seed})`));
  } finally {
    model.destroy();
  }
});
