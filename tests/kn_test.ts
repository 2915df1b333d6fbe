/**
 * KN editor: the neurons it edits are the integrated-gradients neurons above the threshold; each edited
 * value vector moves as EasyEdit's GPT-2 `modify_weights` moves it, computed here by hand in float64 from
 * the float64 reference forward: −2·e(top-1) + e(target) for a one-token target, −Σ e(greedy_i) +
 * Σ e(target_j) for a multi-token one; nothing else changes, restore() is exact, bad input is refused,
 * and on the world model the edit raises p(target_new).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { getGpu } from "../src/gpu/device.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { applyEdit, editorNames } from "../src/edit/editors.ts";
import { coarseNeurons, integratedGradients } from "../src/attribute/neurons.ts";
import { readRequests } from "../src/edit/requests.ts";
import { loadModel } from "../src/model/load.ts";
import { ConfigError, InputError } from "../src/errors.ts";
import { freshSeed } from "./_util.ts";
import { copyWeights, TINY_EDIT_CONFIG, wordTokenizer } from "./_edit_util.ts";

const cfg: ModelConfig = TINY_EDIT_CONFIG;
const tok = wordTokenizer(cfg.vocabSize);
const EOS = cfg.vocabSize - 1;
const req = { prompt: "w1 {} w3", subject: "w2", target_new: "w4", ground_truth: "w6" };

Deno.test("kn edits exactly the thresholded IG neurons' value vectors by -2 e(old) + e(new); restore() is exact", async () => {
  assert.ok(editorNames().includes("kn"));
  const seed = freshSeed();
  const weights = randomGPT2(cfg, seed);
  const before = copyWeights(weights);
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const ids = [EOS, 1, 2, 3];
  const ref = gpt2ForwardRef(cfg, weights, ids).logprobsLast;
  let old = 0;
  for (let v = 1; v < ref.length; v++) if (ref[v] > ref[old]) old = v;
  // The expected neurons: EleutherAI's IG (what EasyEdit's KN runs: linspace points, pre-GELU c_fc output,
  // scores strictly above 0.2 x max), from the attribution module, whose IG is checked against a float64
  // IG in neurons_test.ts.
  const want = coarseNeurons(
    await integratedGradients(model, ids, 6, { steps: 20, points: "linspace", activation: "pre" }),
    0.2,
    { strict: true },
  );
  assert.ok(want.length > 0, `seed ${seed}: no positive attribution`);
  const h = await applyEdit(model, tok, "kn", [req]);
  const info = h.result.info.requests as Array<
    { neurons: { layer: number; neuron: number }[]; erased: number[] }
  >;
  assert.deepEqual(info[0].erased, [old], `seed ${seed}: erased token is the float64 top-1`);
  const key = (n: { layer: number; neuron: number }) => `${n.layer}:${n.neuron}`;
  assert.deepEqual(info[0].neurons.map(key).sort(), want.map(key).sort(), `seed ${seed}`);
  const edited = new Set(want.map(key));
  const C = cfg.nEmbd;
  const wte = before.get("wte.weight")!;
  let worst = 0;
  for (const [name, orig] of before) {
    const now = model.weights.get(name)!.data;
    const m = /^h\.(\d+)\.mlp\.c_proj\.weight$/.exec(name);
    for (let i = 0; i < orig.length; i++) {
      const row = Math.floor(i / C), c = i % C;
      if (m && edited.has(`${m[1]}:${row}`)) {
        const expect = orig[i] - 2 * wte[old * C + c] + wte[4 * C + c];
        worst = Math.max(worst, Math.abs(now[i] - expect) / (Math.abs(expect) + 1e-3));
      } else assert.equal(now[i], orig[i], `seed ${seed}: ${name}[${i}] must not change`);
    }
  }
  assert.ok(worst < 1e-5, `seed ${seed}: value-vector update rel error ${worst}`);
  h.restore();
  for (const [name, orig] of before) assert.deepEqual(model.weights.get(name)!.data, orig, name);
  // The GPU copy is restored too: the forward equals the original float64 forward.
  const { logprobs } = await model.forward([ids]);
  for (let v = 0; v < ref.length; v++) assert.ok(Math.abs(logprobs[0][v] - ref[v]) < 1e-4);
  model.destroy();
});

Deno.test("kn with a multi-token target subtracts each greedy-completion token's embedding once and adds each target token's", async () => {
  const seed = freshSeed();
  const weights = randomGPT2(cfg, seed);
  const before = copyWeights(weights);
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const multi = { ...req, target_new: "w4 w5 w7" };
  // The greedy completion of the prompt, 3 tokens, from the float64 reference forward.
  const argmax = (x: ArrayLike<number>) => {
    let b = 0;
    for (let v = 1; v < x.length; v++) if (x[v] > x[b]) b = v;
    return b;
  };
  const seq = [EOS, 1, 2, 3];
  const greedy: number[] = [];
  for (let k = 0; k < 3; k++) {
    const g = argmax(gpt2ForwardRef(cfg, weights, seq).logprobsLast);
    greedy.push(g);
    seq.push(g);
  }
  const h = await applyEdit(model, tok, "kn", [multi], { hparams: { steps: 8 } });
  const info = h.result.info.requests as Array<
    { neurons: { layer: number; neuron: number }[]; erased: number[]; added: number[] }
  >;
  assert.deepEqual(info[0].erased, greedy, `seed ${seed}: the float64 greedy completion`);
  assert.deepEqual(info[0].added, [4, 5, 7]);
  const neurons = new Set(info[0].neurons.map((n) => `${n.layer}:${n.neuron}`));
  assert.ok(neurons.size > 0, `seed ${seed}: no neurons`);
  const C = cfg.nEmbd;
  const wte = before.get("wte.weight")!;
  const e = (id: number, c: number) => wte[id * C + c];
  let worst = 0;
  for (const [name, orig] of before) {
    const now = model.weights.get(name)!.data;
    const m = /^h\.(\d+)\.mlp\.c_proj\.weight$/.exec(name);
    for (let i = 0; i < orig.length; i++) {
      const row = Math.floor(i / C), c = i % C;
      if (m && neurons.has(`${m[1]}:${row}`)) {
        const expect = orig[i] - e(greedy[0], c) - e(greedy[1], c) - e(greedy[2], c) + e(4, c) + e(5, c) +
          e(7, c);
        worst = Math.max(worst, Math.abs(now[i] - expect) / (Math.abs(expect) + 1e-3));
      } else assert.equal(now[i], orig[i], `seed ${seed}: ${name}[${i}] must not change`);
    }
  }
  assert.ok(worst < 1e-5, `seed ${seed}: value-vector update rel error ${worst}`);
  h.restore();
  for (const [name, orig] of before) assert.deepEqual(model.weights.get(name)!.data, orig, name);
  model.destroy();
});

Deno.test("kn refuses bad input and leaves the model unchanged", async () => {
  const weights = randomGPT2(cfg, freshSeed());
  const before = copyWeights(weights);
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  await assert.rejects(applyEdit(model, tok, "kn", [{ ...req, target_new: "  " }]), InputError);
  await assert.rejects(applyEdit(model, tok, "kn", [req], { layers: [2] }), InputError);
  await assert.rejects(applyEdit(model, tok, "kn", [req], { hparams: { lr: 1 } }), ConfigError);
  await assert.rejects(
    applyEdit(model, tok, "kn", [req], { hparams: { adaptive_threshold: 2 } }),
    ConfigError,
  );
  await assert.rejects(
    applyEdit(model, tok, "kn", [req, { ...req, prompt: "w1 w1 w1 w1 w1 w1 w1 w1 w1 w1 w1 {}" }]),
    InputError,
  );
  for (const [name, orig] of before) assert.deepEqual(model.weights.get(name)!.data, orig, name);
  model.destroy();
});

const WORLD = "fixtures/world/model";
Deno.test({
  name: "kn on the world model raises p(target_new) on the edited prompt",
  ignore: !existsSync(`${WORLD}/model.safetensors`),
  fn: async () => {
    const { model, tokenizer: t } = await loadModel(WORLD);
    const tokenizer = t!;
    const reqs = (await readRequests("fixtures/world/counterfact.json")).slice(0, 3);
    for (const r of reqs) {
      const ids = [tokenizer.eosId!, ...tokenizer.encode(r.prompt.replace("{}", r.subject))];
      const tgt = tokenizer.encode(" " + r.target_new)[0];
      const p0 = Math.exp((await model.forward([ids])).logprobs[0][tgt]);
      const h = await applyEdit(model, tokenizer, "kn", [r]);
      const p1 = Math.exp((await model.forward([ids])).logprobs[0][tgt]);
      assert.ok(p1 > p0, `${r.prompt} -> ${r.target_new}: p ${p0} -> ${p1}`);
      h.restore();
    }
    model.destroy();
  },
});
