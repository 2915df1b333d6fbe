/**
 * Editing metrics against independent computations: token accuracy, NLL and first-token rank against
 * the float64 reference forward of a random tiny model; every request metric (EasyEdit's accuracies and
 * locality, ROME's ES / PS / NS and magnitudes, KnowEdit's sub-key means) written again on the float64
 * forward; fluency's sampler against the float64 top 5, and its entropy against hand values.
 */
import { EmptyTargetError } from "../src/prompt/errors.ts";
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { TransformerModel } from "../src/model/transformer.ts";
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
  subKeyMean,
  wordTokenize,
} from "../src/evaluate/edit_metrics.ts";
import { promptSeed } from "../src/evaluate/fluency.ts";
import { generateFast } from "../src/model/generate_fast.ts";
import { parseRequestRecord } from "../src/edit/requests.ts";
import { freshSeed, rng } from "./_util.ts";
import { TINY_EDIT_CONFIG, wordTokenizer } from "./_edit_util.ts";

const cfg: ModelConfig = TINY_EDIT_CONFIG;

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
  const off0 = (prompt.length - 1) * V;
  let firstRank = 1;
  for (let v = 0; v < V; v++) if (logits[off0 + v] > logits[off0 + answer[0]]) firstRank++;
  return { argmax, accuracy: correct / answer.length, nll: nll / answer.length, firstRank };
}

const words = (ids: number[]) => ids.map((i) => `w${i}`).join(" ");

Deno.test("token accuracy and NLL match the float64 reference (mixed lengths in one padded batch)", async () => {
  const seed = freshSeed();
  const r = rng(seed);
  const weights = randomGPT2(cfg, seed, { std: 0.5 });
  const model = TransformerModel.create(await getGpu(), cfg, weights);
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
    assert.equal(got[i].firstRank, ref.firstRank, `item ${i} first-token rank (seed ${seed})`);
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

Deno.test("n-gram entropy of given texts equals hand-computed values (bits; weights 2/3 and 4/3)", () => {
  const H = (...counts: number[]) => {
    const n = counts.reduce((a, b) => a + b, 0);
    return -counts.reduce((a, c) => a + (c / n) * Math.log2(c / n), 0);
  };
  const close = (a: number, b: number, what: string) =>
    assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);
  // "The cat sat. The cat sat." -> The cat sat . The cat sat . : bigrams (The cat)2 (cat sat)2 (sat .)2
  // (. The)1; trigrams (The cat sat)2 (cat sat .)2 (sat . The)1 (. The cat)1.
  close(
    nGramEntropy(["The cat sat. The cat sat."]),
    ((2 / 3) * H(2, 2, 2, 1) + (4 / 3) * H(2, 2, 1, 1)) / 2,
    "cat",
  );
  // Clitics split: "It's big. It's red." -> It 's big . It 's red . : bigrams (It 's)2 + 5 singletons;
  // trigrams: 6 distinct. A regex word split ("It's" one token) would give H(1,1,1,1,1) for bigrams.
  const e2 = ((2 / 3) * H(2, 1, 1, 1, 1, 1) + (4 / 3) * Math.log2(6)) / 2;
  close(nGramEntropy(["It's big. It's red."]), e2, "clitics");
  // Punctuation and the sentence-final period split off: "Yes, yes, yes." -> Yes , yes , yes . :
  // bigrams (Yes ,) (, yes)2 (yes ,) (yes .); trigrams (Yes , yes) (, yes ,) (yes , yes) (, yes .).
  close(nGramEntropy(["Yes, yes, yes."]), ((2 / 3) * H(1, 2, 1, 1) + (4 / 3) * 2) / 2, "punctuation");
  // A repeated word has zero entropy; too short for trigrams contributes 0 for n = 3 (numpy's empty sum).
  assert.equal(nGramEntropy(["x x x x x"]), 0);
  close(nGramEntropy(["p q r"]), ((2 / 3) * 1 + (4 / 3) * 0) / 2, "pqr");
  assert.equal(nGramEntropy(["one"]), 0);
  // The mean over texts.
  close(
    nGramEntropy(["It's big. It's red.", "x x x x x", "p q r"]),
    (e2 + 0 + 1 / 3) / 3,
    "mean",
  );
  assert.deepEqual(nGramEntropyOf(["a", "b", "a", "b"], 2), H(2, 1));
  assert.deepEqual(wordTokenize("Hello, world. It's fine"), ["Hello", ",", "world", ".", "It", "'s", "fine"]);
  assert.throws(() => nGramEntropy([]), /no texts/);
});

Deno.test("KnowEdit aggregation: mean within each sub-key, then over sub-keys (hand values)", () => {
  // Reasoning [1, 0] -> 0.5, Subject_Aliasing [1] -> 1: the case scores 0.75 (flattened it would be 2/3).
  assert.equal(subKeyMean([1, 0, 1], ["Reasoning", "Reasoning", "Subject_Aliasing"]), 0.75);
  assert.equal(subKeyMean([1, 0, 1], [undefined, undefined, undefined]), 2 / 3);
  assert.equal(subKeyMean([0.5, 0.25, 1, 0], ["A", "B", "A", "B"]), (0.75 + 0.125) / 2);
  assert.equal(subKeyMean([], []), null);
  // The request reader keeps KnowEdit's sub-keys for portability and locality.
  const req = parseRequestRecord({
    prompt: "w1 w2 w3",
    subject: "w2",
    target_new: "w4",
    ground_truth: ["w6"],
    portability: {
      Reasoning: [{ prompt: "w2 w1", ground_truth: [["w3"]] }, { prompt: "w2 w5", ground_truth: ["w3"] }],
      Subject_Aliasing: [{ prompt: "w7 w1", ground_truth: "w4" }],
    },
    locality: { Relation_Specificity: [{ prompt: "w9 w9", ground_truth: ["w1"] }] },
  }, 0);
  assert.deepEqual(req.portability!.map((p) => p.key), ["Reasoning", "Reasoning", "Subject_Aliasing"]);
  assert.deepEqual(req.portability!.map((p) => p.ground_truth), ["w3", "w3", "w4"]);
  assert.deepEqual(req.locality!.map((p) => [p.key, p.ground_truth]), [["Relation_Specificity", "w1"]]);
  // A single {prompt, ground_truth} object as locality is one prompt without a sub-key.
  const one = parseRequestRecord({
    prompt: "w1 w2",
    subject: "w2",
    target_new: "w4",
    locality: { prompt: "w9 w1", ground_truth: "w3" },
  }, 0);
  assert.deepEqual(one.locality, [{ prompt: "w9 w1", ground_truth: "w3" }]);
  // Over cases: cases without the metric are skipped (KnowEdit's `if len(case_list) != 0`).
  const base = { reliability: 1 } as CaseScores;
  const m = aggregate([
    { ...base, portability: 0.75 } as CaseScores,
    { ...base, portability: null } as CaseScores,
    { ...base, portability: 0.25 } as CaseScores,
  ]);
  assert.equal(m.portability, 0.5);
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

/** EasyEdit / ROME request metrics written directly on the float64 forward (methods.md 2(e)). */
function refMetrics(
  pre: ReturnType<typeof randomGPT2>,
  post: ReturnType<typeof randomGPT2>,
  prefix: number[],
  req: EditRequest,
) {
  const ids = (s: string) => s.split(" ").filter(Boolean).map((w) => Number(w.slice(1)));
  const full = (p: string) => [...prefix, ...ids(p.replace("{}", req.subject))];
  // Teacher-forced: argmax at every answer position, and the answer's mean NLL.
  const tf = (w: typeof pre, p: string, a: string) => refScores(w, full(p), ids(a));
  const m = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
  const byKey = (xs: number[], keys: (string | undefined)[]) => {
    const g: Record<string, number[]> = {};
    xs.forEach((x, i) => (g[keys[i] ?? ""] ??= []).push(x));
    return m(Object.values(g).map(m));
  };
  const gt = req.ground_truth!;
  const P = (nll: number) => Math.exp(-nll);
  const rw = [tf(post, req.prompt, req.target_new), tf(post, req.prompt, gt)];
  const rph = req.rephrase!.map((q) => [tf(post, q, req.target_new), tf(post, q, gt)]);
  const nb = req.locality!.filter((l) => l.ground_truth === gt).map((
    l,
  ) => [tf(post, l.prompt, req.target_new), tf(post, l.prompt, gt)]);
  const loc = req.locality!.map((l) => {
    const a = tf(pre, l.prompt, l.ground_truth).argmax, b = tf(post, l.prompt, l.ground_truth).argmax;
    return a.filter((x, i) => x === b[i]).length / a.length;
  });
  return {
    reliability: rw[0].accuracy,
    generalization: m(rph.map(([n]) => n.accuracy)),
    locality: byKey(loc, req.locality!.map((l) => l.key)),
    portability: byKey(
      req.portability!.map((q) => tf(post, q.prompt, q.ground_truth).accuracy),
      req.portability!.map((q) => q.key),
    ),
    es: { margin: rw[1].nll - rw[0].nll, value: rw[1].nll > rw[0].nll ? 1 : 0 },
    em: P(rw[0].nll) - P(rw[1].nll),
    ps: rph.map(([n, t]) => ({ margin: t.nll - n.nll, value: t.nll > n.nll ? 1 : 0 })),
    pm: m(rph.map(([n, t]) => P(n.nll) - P(t.nll))),
    ns: nb.map(([n, t]) => ({ margin: n.nll - t.nll, value: n.nll > t.nll ? 1 : 0 })),
    nm: m(nb.map(([n, t]) => P(t.nll) - P(n.nll))),
  };
}

Deno.test("request metrics equal an independent float64 computation of the EasyEdit / ROME definitions", async () => {
  const seed = freshSeed();
  const weights = randomGPT2(cfg, seed, { std: 0.5 });
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const tok = wordTokenizer(cfg.vocabSize);
  // Sub-keys of unequal sizes, so that KnowEdit's two-level mean differs from a flat one.
  const req: EditRequest = {
    prompt: "w1 {} w3",
    subject: "w2",
    target_new: "w4 w5",
    ground_truth: "w6",
    rephrase: ["w7 w2 w8", "w2 w9"],
    locality: [
      { prompt: "w10 w0", ground_truth: "w6", key: "Relation_Specificity" },
      { prompt: "w9 w9", ground_truth: "w1 w2 w3", key: "Relation_Specificity" },
      { prompt: "w3 w0 w8", ground_truth: "w5 w7", key: "Forgetfulness" },
    ],
    portability: [
      { prompt: "w2 w11", ground_truth: "w3", key: "Reasoning" },
      { prompt: "w11 w2", ground_truth: "w0 w3 w1", key: "Subject_Aliasing" },
      { prompt: "w5 w2", ground_truth: "w8 w8", key: "Subject_Aliasing" },
    ],
  };
  const prefix = [cfg.vocabSize - 1];
  const pre = await preEditState(model, tok, [req], { prefix });
  const orig = new Map([...weights].map(([k, v]) => [k, { shape: v.shape, data: v.data.slice() }]));
  // Perturb the model (an "edit"): poison the old values out of the way first.
  const name = "h.1.mlp.c_proj.weight";
  const w = model.weights.get(name)!;
  const r = rng(seed + 1);
  for (let i = 0; i < w.data.length; i++) w.data[i] += 1.5 * (r() - 0.5);
  model.syncWeight(name);
  const [got] = await evaluateRequests(model, tok, [req], { prefix, pre, fluencyMaxLen: 0 });
  const want = refMetrics(orig, model.weights, prefix, req);
  const ctx = `(seed ${seed})`;
  assert.equal(got.reliability, want.reliability, `reliability ${ctx}`);
  assert.equal(got.generalization, want.generalization, `generalization ${ctx}`);
  assert.equal(got.locality, want.locality, `locality ${ctx}`);
  assert.equal(got.portability, want.portability, `portability ${ctx}`);
  assert.equal(got.fluency, null);
  // 0/1 scores are compared where the float64 NLL margin is not a near-tie.
  const tie = 1e-3;
  if (Math.abs(want.es.margin) > tie) assert.equal(got.efficacy_score, want.es.value, `ES ${ctx}`);
  if (want.ps.every((x) => Math.abs(x.margin) > tie)) {
    assert.equal(
      got.paraphrase_score,
      want.ps.reduce((a, x) => a + x.value, 0) / want.ps.length,
      `PS ${ctx}`,
    );
  }
  if (want.ns.every((x) => Math.abs(x.margin) > tie)) {
    assert.equal(
      got.neighborhood_score,
      want.ns.reduce((a, x) => a + x.value, 0) / want.ns.length,
      `NS ${ctx}`,
    );
  }
  for (
    const [g, x, k] of [[got.efficacy_magnitude, want.em, "EM"], [got.paraphrase_magnitude, want.pm, "PM"], [
      got.neighborhood_magnitude,
      want.nm,
      "NM",
    ]] as const
  ) {
    assert.ok(Math.abs(g! - x) < 1e-4, `${k} ${g} vs ${x} ${ctx}`);
  }
  // The same model unedited: locality is 1.
  const [same] = await evaluateRequests(model, tok, [req], {
    prefix,
    pre: await preEditState(model, tok, [req], { prefix }),
    fluencyMaxLen: 0,
  });
  assert.equal(same.locality, 1);
  model.destroy();
});

Deno.test("fluency: seeded top-5 sampling up to max_out_len tokens, prompt included; entropy of the whole text", async () => {
  const seed = freshSeed();
  const weights = randomGPT2(cfg, seed, { std: 0.5 });
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const tok = wordTokenizer(cfg.vocabSize);
  const prompt = [cfg.vocabSize - 1, 1, 2, 3];
  const a = await generateFast(model, tok, prompt, { maxOutLen: 11, seed: 7 });
  assert.equal(a.ids.length, 11, "max_out_len counts the prompt");
  assert.deepEqual(a.ids.slice(0, 4), prompt);
  assert.deepEqual((await generateFast(model, tok, prompt, { maxOutLen: 11, seed: 7 })).ids, a.ids, "seeded");
  assert.equal(
    (await generateFast(model, tok, prompt, { maxOutLen: 100 })).ids.length,
    cfg.nPositions,
    "capped by the context",
  );
  assert.deepEqual(
    (await generateFast(model, tok, prompt, { maxOutLen: 3 })).ids,
    prompt,
    "prompt longer than max_out_len",
  );
  // Every sampled token is among the 5 most likely of the float64 forward at its step.
  for (let t = 4; t < a.ids.length; t++) {
    const { logits } = gpt2ForwardRef(cfg, weights, a.ids.slice(0, t));
    const row = Array.from(logits.slice((t - 1) * cfg.vocabSize, t * cfg.vocabSize));
    const sorted = [...row].sort((x, y) => y - x);
    const v = row[a.ids[t]];
    assert.ok(v >= sorted[4] - 1e-4, `step ${t}: token ${a.ids[t]} is not in the top 5 (seed ${seed})`);
  }
  // With top-1 the sampler is greedy: it must follow the float64 argmax (compared off near-ties).
  const g = await generateFast(model, tok, prompt, { maxOutLen: 8, topK: 1 });
  for (let t = 4; t < g.ids.length; t++) {
    const { logits } = gpt2ForwardRef(cfg, weights, g.ids.slice(0, t));
    const row = Array.from(logits.slice((t - 1) * cfg.vocabSize, t * cfg.vocabSize));
    const sorted = [...row].sort((x, y) => y - x);
    if (sorted[0] - sorted[1] > 1e-4) {
      assert.equal(row[g.ids[t]], sorted[0], `greedy step ${t} (seed ${seed})`);
    }
  }
  // The request's fluency is the entropy of prompt + continuation; counted here by hand over its words,
  // end-of-text dropped (the word tokenizer decodes it as " w12", ROME removes "<|endoftext|>").
  const req: EditRequest = { prompt: "w1 {} w3", subject: "w2", target_new: "w4" };
  const [sc] = await evaluateRequests(model, tok, [req], {
    prefix: [cfg.vocabSize - 1],
    fluencyMaxLen: 11,
    fluencySeed: 3,
  });
  const again = await evaluateRequests(model, tok, [req], {
    prefix: [cfg.vocabSize - 1],
    fluencyMaxLen: 11,
    fluencySeed: 3,
  });
  assert.equal(again[0].fluency, sc.fluency, "reproducible");
  const gen = await generateFast(model, tok, prompt, { maxOutLen: 11, seed: promptSeed(3, "w1 w2 w3") });
  const words = gen.ids.filter((i) => i !== cfg.vocabSize - 1).map((i) => `w${i}`);
  const H = (n: number) => {
    const c = new Map<string, number>();
    for (let i = 0; i + n <= words.length; i++) {
      c.set(words.slice(i, i + n).join(" "), (c.get(words.slice(i, i + n).join(" ")) ?? 0) + 1);
    }
    const tot = words.length - n + 1;
    return -[...c.values()].reduce((s, k) => s + (k / tot) * Math.log2(k / tot), 0);
  };
  assert.ok(Math.abs(sc.fluency! - ((2 / 3) * H(2) + (4 / 3) * H(3)) / 2) < 1e-12, `fluency ${sc.fluency}`);
  model.destroy();
});

Deno.test("scoreAnswers rejects empty answers and over-long sequences", async () => {
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, 1));
  const tok = wordTokenizer(cfg.vocabSize);
  await assert.rejects(
    () => scoreAnswers(model, tok, [{ prompt: "w1", answer: "w2" }, { prompt: "w1", answer: " " }]),
    (e: unknown) => e instanceof EmptyTargetError && e.field === "answer" && /item 1/.test(e.message),
  );
  await assert.rejects(
    () => scoreAnswers(model, tok, [{ prompt: "w1 w1 w1 w1 w1 w1 w1 w1 w1 w1 w1", answer: "w1 w2 w3" }]),
    /more than the context/,
  );
  model.destroy();
});
