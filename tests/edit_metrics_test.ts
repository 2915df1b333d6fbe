/**
 * Editing metrics on hand-computable cases: token accuracy and NLL against the float64 reference
 * forward of a random tiny model, locality agreement, ROME's n-gram entropy against hand values,
 * CounterFact scores and the aggregation.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import type { GPT2Config } from "../src/model/config.ts";
import { GPT2Model } from "../src/model/gpt2.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import type { EditRequest } from "../src/edit/requests.ts";
import {
  aggregate,
  agreement,
  type CaseScores,
  evaluateRequests,
  nGramEntropy,
  nGramEntropyOf,
  preEditState,
  scoreAnswers,
  wordTokenize,
} from "../src/evaluate/edit_metrics.ts";
import { freshSeed, rng } from "./_util.ts";
import { TINY_EDIT_CONFIG, wordTokenizer } from "./_edit_util.ts";

const cfg: GPT2Config = TINY_EDIT_CONFIG;

function refScores(weights: ReturnType<typeof randomGPT2>, prompt: number[], answer: number[]) {
  const seq = [...prompt, ...answer.slice(0, -1)];
  const { logits } = gpt2ForwardRef(cfg, weights, seq);
  const V = cfg.vocabSize;
  let correct = 0, nll = 0;
  const argmax: number[] = [];
  answer.forEach((tok, j) => {
    const off = (prompt.length - 1 + j) * V;
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[off + v] > logits[off + best]) best = v;
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, logits[off + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[off + v] - m);
    nll -= logits[off + tok] - m - Math.log(s);
    argmax.push(best);
    if (best === tok) correct++;
  });
  return { argmax, accuracy: correct / answer.length, nll: nll / answer.length };
}

const words = (ids: number[]) => ids.map((i) => `w${i}`).join(" ");

Deno.test("token accuracy and NLL match the float64 reference (mixed lengths in one padded batch)", async () => {
  const seed = freshSeed();
  const r = rng(seed);
  const weights = randomGPT2(cfg, seed, { std: 0.5 });
  const model = GPT2Model.create(await getGpu(), cfg, weights);
  const tok = wordTokenizer(cfg.vocabSize);
  const rand = () => Math.floor(r() * (cfg.vocabSize - 1));
  const items: { prompt: number[]; answer: number[] }[] = [];
  for (let i = 0; i < 9; i++) {
    const p = Array.from({ length: 1 + (i % 4) }, rand);
    const a = Array.from({ length: 1 + (i % 3) }, rand);
    items.push({ prompt: p, answer: a });
  }
  const prefix = [cfg.vocabSize - 1];
  // Plant a greedy continuation of the reference as item 0's answer: its token accuracy must be 1.
  const greedy: number[] = [];
  for (let j = 0; j < 3; j++) {
    greedy.push(refScores(weights, [...prefix, ...items[0].prompt, ...greedy], [0]).argmax[0]);
  }
  items[0].answer = greedy;
  const got = await scoreAnswers(
    model,
    tok,
    items.map((it) => ({ prompt: words(it.prompt), answer: words(it.answer) })),
    {
      prefix,
      batchSize: 4,
    },
  );
  let exactOnes = 0;
  items.forEach((it, i) => {
    const ref = refScores(weights, [...prefix, ...it.prompt], it.answer);
    assert.deepEqual(got[i].answerIds, it.answer);
    // argmax may legitimately differ only on near-ties; with std 0.5 weights they are rare: require equality.
    assert.deepEqual(got[i].argmax, ref.argmax, `item ${i} argmax (seed ${seed})`);
    assert.equal(got[i].accuracy, ref.accuracy, `item ${i} accuracy (seed ${seed})`);
    assert.ok(
      Math.abs(got[i].nll - ref.nll) <= 1e-4 * Math.max(1, ref.nll),
      `item ${i} nll ${got[i].nll} vs ${ref.nll} (seed ${seed})`,
    );
    if (ref.accuracy === 1) exactOnes++;
  });
  assert.ok(exactOnes >= 1);
  assert.equal(got[0].accuracy, 1);
  model.destroy();
});

Deno.test("locality agreement: EasyEdit's example [29,234,334] vs [29,234,333] = 2/3", () => {
  assert.equal(agreement([29, 234, 334], [29, 234, 333]), 2 / 3);
  assert.equal(agreement([1], [1]), 1);
  assert.throws(() => agreement([1, 2], [1]), /differ in length/);
});

Deno.test("n-gram entropy equals hand-computed values (ROME's weights 2/3 and 4/3)", () => {
  assert.deepEqual(wordTokenize("Hello, world. It's fine"), ["Hello", ",", "world", ".", "It's", "fine"]);
  // "a b a b": bigrams ab, ba, ab -> H2 = H(2/3, 1/3); trigrams aba, bab -> H3 = 1 bit.
  const h2 = -(2 / 3) * Math.log2(2 / 3) - (1 / 3) * Math.log2(1 / 3);
  assert.ok(Math.abs(nGramEntropyOf(["a", "b", "a", "b"], 2) - h2) < 1e-12);
  assert.equal(nGramEntropyOf(["a", "b", "a", "b"], 3), 1);
  const e1 = ((2 / 3) * h2 + (4 / 3) * 1) / 2;
  assert.ok(Math.abs(nGramEntropy(["a b a b"]) - e1) < 1e-12);
  // A repeated word has zero entropy; a text too short for trigrams contributes 0 for n = 3.
  assert.equal(nGramEntropy(["x x x x x"]), 0);
  // "p q r": bigrams pq, qr (1 bit), trigram pqr (0 bits) -> (2/3) / 2.
  assert.ok(Math.abs(nGramEntropy(["p q r"]) - 1 / 3) < 1e-12);
  // Mean over texts.
  assert.ok(Math.abs(nGramEntropy(["a b a b", "x x x x x", "p q r"]) - (e1 + 0 + 1 / 3) / 3) < 1e-12);
  // Eight distinct words: 7 distinct bigrams (log2 7), 6 distinct trigrams (log2 6).
  const e8 = ((2 / 3) * Math.log2(7) + (4 / 3) * Math.log2(6)) / 2;
  assert.ok(Math.abs(nGramEntropy(["one two three four five six seven eight"]) - e8) < 1e-12);
  assert.throws(() => nGramEntropy([]), /no texts/);
});

Deno.test("aggregate: means skip missing metrics; S is the harmonic mean of ES, PS, NS", () => {
  const base: CaseScores = {
    reliability: 1,
    generalization: 0.5,
    locality: 1,
    portability: null,
    fluency: null,
    efficacy_score: 1,
    efficacy_magnitude: 0.5,
    paraphrase_score: 0.5,
    paraphrase_magnitude: 0.1,
    neighborhood_score: 1,
    neighborhood_magnitude: 0.2,
  };
  const m = aggregate([base, { ...base, reliability: 0, portability: 0.25, paraphrase_score: 0.25 }]);
  assert.equal(m.reliability, 0.5);
  assert.equal(m.portability, 0.25);
  assert.equal(m.fluency, null);
  const ps = 0.375;
  assert.ok(Math.abs(m.score! - 3 / (1 / 1 + 1 / ps + 1 / 1)) < 1e-12);
});

Deno.test("request metrics: CounterFact scores follow the NLLs; locality is agreement with the pre-edit model", async () => {
  const seed = freshSeed();
  const weights = randomGPT2(cfg, seed, { std: 0.5 });
  const model = GPT2Model.create(await getGpu(), cfg, weights);
  const tok = wordTokenizer(cfg.vocabSize);
  const req: EditRequest = {
    prompt: "w1 {} w3",
    subject: "w2",
    target_new: "w4 w5",
    ground_truth: "w6",
    rephrase: ["w7 w2 w8", "w2 w9"],
    locality: [{ prompt: "w10 w0", ground_truth: "w6" }, { prompt: "w9 w9", ground_truth: "w1 w2 w3" }],
    portability: [{ prompt: "w2 w11", ground_truth: "w3" }],
  };
  const prefix = [cfg.vocabSize - 1];
  const pre = await preEditState(model, tok, [req], { prefix });
  const [same] = await evaluateRequests(model, tok, [req], { prefix, pre, fluencyTokens: 3 });
  assert.equal(same.locality, 1, "no edit: locality 1");
  const sc = await scoreAnswers(model, tok, [
    { prompt: "w1 w2 w3", answer: "w4 w5" },
    { prompt: "w1 w2 w3", answer: "w6" },
    { prompt: "w7 w2 w8", answer: "w4 w5" },
    { prompt: "w7 w2 w8", answer: "w6" },
    { prompt: "w2 w9", answer: "w4 w5" },
    { prompt: "w2 w9", answer: "w6" },
    { prompt: "w10 w0", answer: "w4 w5" },
    { prompt: "w10 w0", answer: "w6" },
    { prompt: "w2 w11", answer: "w3" },
  ], { prefix });
  const P = (i: number) => Math.exp(-sc[i].nll);
  assert.equal(same.reliability, sc[0].accuracy);
  assert.equal(same.generalization, (sc[2].accuracy + sc[4].accuracy) / 2);
  assert.equal(same.portability, sc[8].accuracy);
  assert.equal(same.efficacy_score, sc[1].nll > sc[0].nll ? 1 : 0);
  assert.ok(Math.abs(same.efficacy_magnitude! - (P(0) - P(1))) < 1e-12);
  assert.equal(
    same.paraphrase_score,
    ((sc[3].nll > sc[2].nll ? 1 : 0) + (sc[5].nll > sc[4].nll ? 1 : 0)) / 2,
  );
  assert.equal(same.neighborhood_score, sc[6].nll > sc[7].nll ? 1 : 0);
  assert.ok(Math.abs(same.neighborhood_magnitude! - (P(7) - P(6))) < 1e-12);
  assert.ok(same.fluency !== null && same.fluency >= 0);
  // Perturb the model: locality must equal the agreement of argmax tokens before and after.
  const w = model.weights.get("h.1.mlp.c_proj.weight")!;
  const r = rng(seed + 1);
  for (let i = 0; i < w.data.length; i++) w.data[i] += 3 * (r() - 0.5);
  model.syncWeight("h.1.mlp.c_proj.weight");
  const [after] = await evaluateRequests(model, tok, [req], { prefix, pre, fluencyTokens: 0 });
  const loc = await scoreAnswers(model, tok, [{ prompt: "w10 w0", answer: "w6" }, {
    prompt: "w9 w9",
    answer: "w1 w2 w3",
  }], {
    prefix,
  });
  const want = (agreement(pre[0].localityArgmax[0], loc[0].argmax) +
    agreement(pre[0].localityArgmax[1], loc[1].argmax)) / 2;
  assert.equal(after.locality, want);
  assert.equal(after.fluency, null);
  model.destroy();
});

Deno.test("scoreAnswers rejects empty answers and over-long sequences", async () => {
  const model = GPT2Model.create(await getGpu(), cfg, randomGPT2(cfg, 1));
  const tok = wordTokenizer(cfg.vocabSize);
  await assert.rejects(() => scoreAnswers(model, tok, [{ prompt: "w1", answer: " " }]), /empty answer/);
  await assert.rejects(
    () => scoreAnswers(model, tok, [{ prompt: "w1 w1 w1 w1 w1 w1 w1 w1 w1 w1 w1", answer: "w1 w2 w3" }]),
    /more than the context/,
  );
  model.destroy();
});
