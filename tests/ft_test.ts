/**
 * FT-L / FT editors: only the chosen layer's MLP output projection changes, FT-L's change stays in the
 * L∞ box of radius norm_constraint, the training loss is ROME's objective (checked against the float64
 * reference), restore() is exact, and FT-L makes a trained world model say a new fact.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { readTensor } from "../src/gpu/tensor.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { applyEdit, editorNames } from "../src/edit/editors.ts";
import { ftlDefaults, mergeFtHparams } from "../src/edit/ft.ts";
import { readRequests } from "../src/edit/requests.ts";
import { loadModel } from "../src/model/load.ts";
import { evaluateRequests, preEditState } from "../src/evaluate/edit_metrics.ts";
import { ConfigError, InputError } from "../src/errors.ts";
import { NonFiniteError } from "../src/model/nonfinite.ts";
import { freshSeed } from "./_util.ts";
import { copyWeights, TINY_EDIT_CONFIG, wordTokenizer } from "./_edit_util.ts";

const cfg: ModelConfig = TINY_EDIT_CONFIG;
const tok = wordTokenizer(cfg.vocabSize);
const EOS = cfg.vocabSize - 1;

function logSoftmaxAt(logits: Float64Array | Float32Array, row: number, V: number): number[] {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, logits[row * V + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(logits[row * V + v] - m);
  return Array.from({ length: V }, (_, v) => logits[row * V + v] - m - Math.log(s));
}

const req = { prompt: "w1 {} w3", subject: "w2", target_new: "w4 w5" };

Deno.test("ft-l changes only layer L's c_proj, within the L∞ box; restore() is exact", async () => {
  assert.ok(editorNames().includes("ft-l") && editorNames().includes("ft"));
  const seed = freshSeed();
  const weights = randomGPT2(cfg, seed);
  const before = copyWeights(weights);
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const eps = 0.01;
  const h = await applyEdit(model, tok, "ft-l", [req], {
    layers: [1],
    hparams: { lr: 0.05, norm_constraint: eps, num_steps: 6, early_stop_loss: 0 },
  });
  assert.deepEqual(h.result.weights, ["h.1.mlp.c_proj.weight", "h.1.mlp.c_proj.bias"]);
  const losses = h.result.info.losses as number[];
  assert.equal(losses.length, 6);
  assert.ok(losses[5] < losses[0], `loss went down: ${losses}`);
  let maxDelta = 0;
  for (const [name, orig] of before) {
    const now = model.weights.get(name)!.data;
    const gpu = await readTensor(model.weight(name));
    assert.deepEqual(gpu, now, `${name}: GPU copy equals host`);
    if (!h.result.weights.includes(name)) {
      assert.deepEqual(now, orig, `${name} must not change (seed ${seed})`);
      continue;
    }
    for (let i = 0; i < now.length; i++) maxDelta = Math.max(maxDelta, Math.abs(now[i] - orig[i]));
  }
  assert.ok(maxDelta <= eps * (1 + 1e-5), `max |ΔW| ${maxDelta} > ε ${eps} (seed ${seed})`);
  // lr 0.05 over 6 steps would move far beyond ε: the clamp is what keeps it there.
  assert.ok(maxDelta >= 0.99 * eps, `max |ΔW| ${maxDelta}: the constraint was never active (seed ${seed})`);
  assert.ok(Math.abs((h.result.info.maxAbsDelta as number) - maxDelta) < 1e-12);
  h.restore();
  for (const [name, orig] of before) {
    assert.deepEqual(model.weights.get(name)!.data, orig, `${name} restored exactly`);
    assert.deepEqual(await readTensor(model.weight(name)), orig, `${name} restored on the GPU`);
  }
  model.destroy();
});

Deno.test("ft (unconstrained) trains layer 1 and moves beyond FT-L's box", async () => {
  const seed = freshSeed();
  const weights = randomGPT2(cfg, seed);
  const before = copyWeights(weights);
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const h = await applyEdit(model, tok, "ft", [req], {
    hparams: { lr: 0.05, num_steps: 6, early_stop_loss: 0 },
  });
  assert.deepEqual(h.result.weights, ["h.1.mlp.c_proj.weight", "h.1.mlp.c_proj.bias"]);
  assert.equal(h.result.hparams.norm_constraint, 0);
  assert.ok((h.result.info.maxAbsDelta as number) > 0.1, `unconstrained change ${h.result.info.maxAbsDelta}`);
  const losses = h.result.info.losses as number[];
  assert.ok(losses[losses.length - 1] < losses[0]);
  h.restore();
  for (const [name, orig] of before) assert.deepEqual(model.weights.get(name)!.data, orig);
  model.destroy();
});

Deno.test("the FT loss is ROME's prompt_last NLL (and FT-M's teacher-forced NLL) of the float64 reference", async () => {
  const seed = freshSeed();
  const weights = randomGPT2(cfg, seed);
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const V = cfg.vocabSize;
  const reqs = [req, { prompt: "{} w7", subject: "w6", target_new: "w8" }];
  // prompt_last: every target token scored from the distribution after the prompt; mean per request.
  const want = (() => {
    let tot = 0;
    for (const [p, t] of [[[EOS, 1, 2, 3], [4, 5]], [[EOS, 6, 7], [8]]] as const) {
      const { logits } = gpt2ForwardRef(cfg, weights, [...p]);
      const lp = logSoftmaxAt(logits, p.length - 1, V);
      tot += -t.reduce((a, x) => a + lp[x], 0) / t.length;
    }
    return tot / 2;
  })();
  const h = await applyEdit(model, tok, "ft-l", reqs, { hparams: { num_steps: 1, early_stop_loss: 0 } });
  const got = (h.result.info.losses as number[])[0];
  assert.ok(
    Math.abs(got - want) <= 1e-4 * want,
    `prompt_last loss ${got} vs reference ${want} (seed ${seed})`,
  );
  h.restore();
  // target_new (FT-M): teacher-forced target after the prompt.
  const want2 = (() => {
    let tot = 0;
    for (const [p, t] of [[[EOS, 1, 2, 3], [4, 5]], [[EOS, 6, 7], [8]]] as const) {
      const seq = [...p, ...t.slice(0, -1)];
      const { logits } = gpt2ForwardRef(cfg, weights, seq);
      tot += -t.reduce((a, x, j) => a + logSoftmaxAt(logits, p.length - 1 + j, V)[x], 0) / t.length;
    }
    return tot / 2;
  })();
  const h2 = await applyEdit(model, tok, "ft-l", reqs, {
    hparams: { num_steps: 1, early_stop_loss: 0, objective: "target_new" },
  });
  const got2 = (h2.result.info.losses as number[])[0];
  assert.ok(
    Math.abs(got2 - want2) <= 1e-4 * want2,
    `target_new loss ${got2} vs reference ${want2} (seed ${seed})`,
  );
  h2.restore();
  model.destroy();
});

Deno.test("ft hparams: defaults scale with the MLP width; bad keys, values and layers are typed errors", async () => {
  const d = ftlDefaults({ ...cfg, nInner: 384 });
  assert.deepEqual(d.layers, [0]);
  assert.equal(d.num_steps, 25);
  assert.ok(Math.abs(d.norm_constraint - 5e-4 * 6400 / 384) < 1e-12);
  assert.throws(() => mergeFtHparams(d, { bogus: 1 }, cfg), ConfigError);
  assert.throws(() => mergeFtHparams(d, { lr: -1 }, cfg), /lr/);
  assert.throws(() => mergeFtHparams(d, { layers: [5] }, cfg), InputError);
  assert.equal(mergeFtHparams(d, { norm_constraint: false }, cfg).norm_constraint, 0);
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, 3));
  const before = copyWeights(model.weights);
  await assert.rejects(() => applyEdit(model, tok, "ft-l", [req], { layers: [7] }), /out of range/);
  await assert.rejects(
    () => applyEdit(model, tok, "ft-l", [req], { hparams: { modules: ["mlp.nope"] } }),
    /no weight/,
  );
  await assert.rejects(() => applyEdit(model, tok, "nope", [req]), /known: .*ft-l/);
  for (const [name, orig] of before) assert.deepEqual(model.weights.get(name)!.data, orig);
  model.destroy();
});

const worldDir = new URL("../fixtures/world/model", import.meta.url).pathname;

Deno.test({
  name: "ft-l makes the world model say the rewritten birthplace, leaving the locality prompt alone",
  fn: async () => {
    const lm = await loadModel(worldDir);
    const tokw = lm.tokenizer!;
    const [r] = (await readRequests(new URL("../fixtures/world/counterfact.json", import.meta.url).pathname))
      .slice(0, 1);
    const prefix = [tokw.eosId!];
    const before = copyWeights(lm.model.weights);
    const pre = await preEditState(lm.model, tokw, [r], { prefix });
    assert.equal(pre[0].scores.reliability, 0, `${worldDir} already says ${r.target_new}`);
    const h = await applyEdit(lm.model, tokw, "ft-l", [r], {});
    assert.deepEqual(h.result.weights, ["h.0.mlp.c_proj.weight", "h.0.mlp.c_proj.bias"]);
    const eps = h.result.hparams.norm_constraint as number;
    assert.ok((h.result.info.maxAbsDelta as number) <= eps * (1 + 1e-5));
    const [post] = await evaluateRequests(lm.model, tokw, [r], { prefix, pre, fluencyTokens: 0 });
    assert.equal(post.reliability, 1, `after FT-L the model predicts '${r.target_new}' (model ${worldDir})`);
    assert.equal(post.efficacy_score, 1);
    assert.equal(post.locality, 1);
    h.restore();
    for (const [name, orig] of before) assert.deepEqual(lm.model.weights.get(name)!.data, orig);
    lm.model.destroy();
  },
});

Deno.test("ft: a step whose loss is not finite is a NonFiniteError naming a site; the model is left as it was", async () => {
  const weights = randomGPT2(cfg, freshSeed());
  const before = copyWeights(weights);
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  try {
    // lr 3e38: after one step the trained weight overflows float32 (NaN in the next forward).
    await assert.rejects(
      () =>
        applyEdit(model, tok, "ft", [req], {
          layers: [1],
          hparams: { lr: 3e38, norm_constraint: false, num_steps: 4, early_stop_loss: 0 },
        }),
      (e: unknown) => e instanceof NonFiniteError && e.site === "mlp_out.1",
    );
    for (const [name, orig] of before) {
      assert.deepEqual(await readTensor(model.weight(name)), orig, `${name} restored on the GPU`);
    }
  } finally {
    model.destroy();
  }
});
