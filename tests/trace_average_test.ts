/**
 * Token-class averages of causal traces against values worked out by hand (ROME's
 * notebooks/average_causal_effects.ipynb and engram's per-prompt rule), the "known fact" rules, and
 * numpy's RandomState noise against values printed by numpy itself.
 */
import assert from "node:assert/strict";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import { ClassAccumulator, tokenClassPositions } from "../src/locate/average.ts";
import { greedyLength, knownByRule } from "../src/locate/known.ts";
import { NumpyRandomState } from "../src/locate/numpy_random.ts";
import { subjectNoise } from "../src/locate/patching.ts";

const close = (a: number, b: number, msg: string, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${msg}: ${a} vs ${b}`);

// Two prompts, one layer of scores (layer 1 holds 1 - score, to catch layer mix-ups).
// P1: 9 tokens, subject [1, 4): first 1, middle [2], last 3, first subsequent 4, further [5, 6, 7], last 8.
const P1 = [0.9, 0.2, 0.3, 0.4, 0.5, 0.1, 0.2, 0.6, 0.8], LOW1 = 0.1;
// P2: 6 tokens, subject [0, 4): first 0, middle [1, 2], last 3, first subsequent 4, no further, last 5.
const P2 = [0.4, 0.5, 0.7, 0.6, 0.3, 0.9], LOW2 = 0.3;
const grid = (p: number[]) => p.map((v) => [v, 1 - v]);

Deno.test("token classes: ROME's indexing, incl. a subject followed by only the last token", () => {
  assert.deepEqual(tokenClassPositions(9, [1, 4]), [[1], [2], [3], [4], [5, 6, 7], [8]]);
  assert.deepEqual(tokenClassPositions(6, [0, 4]), [[0], [1, 2], [3], [4], [], [5]]);
  // Notebook: avg_fa.add(scores[first_a]) even when first_a is the last token.
  assert.deepEqual(tokenClassPositions(4, [1, 3]), [[1], [], [2], [3], [], [3]]);
  assert.deepEqual(tokenClassPositions(3, [1, 2]), [[1], [], [1], [2], [], [2]]);
  // Subject at the very end: no subsequent token.
  assert.deepEqual(tokenClassPositions(3, [1, 3]), [[1], [], [2], [], [], [2]]);
});

Deno.test("class averages, token pooling (ROME's default): hand values", () => {
  const acc = new ClassAccumulator(2);
  acc.add(grid(P1), LOW1, [1, 4]);
  acc.add(grid(P2), LOW2, [0, 4]);
  const r = acc.result();
  assert.equal(r.pool, "token");
  assert.equal(r.prompts, 2);
  close(r.lowScore, 0.2, "mean low score");
  // Samples per class: first {.2,.4}; middle {.3 | .5,.7}; last {.4,.6}; first subsequent {.5,.3};
  // further {.1,.2,.6 | -}; last {.8,.9}.
  assert.deepEqual(r.count, [2, 3, 2, 2, 3, 2]);
  // Mean of the pooled scores minus the mean low score 0.2 (layer 1: 1 - mean - 0.2).
  const means = [0.3, 0.5, 0.5, 0.4, 0.3, 0.85];
  means.forEach((m, k) => {
    close(r.mean[k][0], m - 0.2, `mean class ${k} layer 0`);
    close(r.mean[k][1], 1 - m - 0.2, `mean class ${k} layer 1`);
  });
  // 1.96 * population std of the pooled scores / sqrt(2 prompts).
  const popVar = [0.01, 0.08 / 3, 0.01, 0.01, 0.14 / 3, 0.0025];
  popVar.forEach((v, k) => {
    const ci = 1.96 * Math.sqrt(v) / Math.SQRT2;
    close(r.ci95[k][0], ci, `ci class ${k} layer 0`);
    close(r.ci95[k][1], ci, `ci class ${k} layer 1`);
  });
});

Deno.test("class averages, prompt pooling (per-prompt means first): hand values", () => {
  const acc = new ClassAccumulator(2, "prompt");
  acc.add(grid(P1), LOW1, [1, 4]);
  acc.add(grid(P2), LOW2, [0, 4]);
  const r = acc.result();
  assert.equal(r.pool, "prompt");
  assert.deepEqual(r.count, [2, 2, 2, 2, 1, 2]);
  // Per-prompt effects (score - own low): first .1,.1; middle .2, mean(.5,.7)-.3=.3; last .3,.3;
  // first subsequent .4,0; further mean(.1,.2,.6)-.1=.2; last .7,.6.
  const per = [[0.1, 0.1], [0.2, 0.3], [0.3, 0.3], [0.4, 0], [0.2], [0.7, 0.6]];
  // Layer 1 effects: (1 - score) - low: first .7,.3; middle .6, (1-.6)-.3=.1; last .5,.1;
  // first subsequent .4,.4; further (1-.3)-.1=.6; last .1,-.2.
  const per1 = [[0.7, 0.3], [0.6, 0.1], [0.5, 0.1], [0.4, 0.4], [0.6], [0.1, -0.2]];
  const check = (vals: number[], mean: number, ci: number, msg: string) => {
    const m = vals.reduce((s, x) => s + x, 0) / vals.length;
    close(mean, m, `${msg} mean`);
    const sd = vals.length < 2
      ? 0
      : Math.sqrt(vals.reduce((s, x) => s + (x - m) ** 2, 0) / (vals.length - 1));
    close(ci, 1.96 * sd / Math.sqrt(vals.length), `${msg} ci`);
  };
  per.forEach((v, k) => check(v, r.mean[k][0], r.ci95[k][0], `class ${k} layer 0`));
  per1.forEach((v, k) => check(v, r.mean[k][1], r.ci95[k][1], `class ${k} layer 1`));
  // The two rules disagree on the multi-token classes: middle .3 vs .25, further .1 vs .2.
  const tok = new ClassAccumulator(1);
  tok.add(grid(P1).map((x) => [x[0]]), LOW1, [1, 4]);
  tok.add(grid(P2).map((x) => [x[0]]), LOW2, [0, 4]);
  close(tok.result().mean[1][0], 0.3, "token middle");
  close(r.mean[1][0], 0.25, "prompt middle");
  close(tok.result().mean[4][0], 0.1, "token further");
  close(r.mean[4][0], 0.2, "prompt further");
  close(r.ci95[1][0], 1.96 * 0.05, "prompt middle ci (sd .0707, n 2)");
});

// A tokenizer over single characters, plus the tokens "Ab" (200) and " Ab" (201).
const SPECIAL: Record<number, string> = { 200: "Ab", 201: " Ab" };
const TOK: Tokenizer = {
  encode: (t) => [...t].map((c) => c.charCodeAt(0)),
  decode: (ids) => ids.map((i) => SPECIAL[i] ?? String.fromCharCode(i)).join(""),
  tokenString: (i) => SPECIAL[i] ?? String.fromCharCode(i),
  vocabSize: 202,
  source: "test",
};

Deno.test("known-fact rules: ROME's whole-attribute test, greedy extension, first token", () => {
  const sp = 32, A = 65, b = 98;
  assert.equal(knownByRule("whole", TOK, [200], "Ab", [200]), true);
  // The decoded top-1 is stripped, the target is compared as given (ROME: answer.strip() != expect).
  assert.equal(knownByRule("whole", TOK, [201], "Ab", [201]), true);
  assert.equal(knownByRule("whole", TOK, [201], " Ab", [201]), false);
  // First token right, whole attribute not: dropped by "whole" and "greedy" unless the continuation matches.
  const target = "Ab", ids = [A, b];
  assert.equal(knownByRule("first", TOK, [A], target, ids), true);
  assert.equal(knownByRule("whole", TOK, [A], target, ids), false);
  assert.equal(greedyLength("whole", ids), 1);
  assert.equal(greedyLength("greedy", ids), 2);
  assert.equal(knownByRule("greedy", TOK, [A, b], target, ids), true);
  assert.equal(knownByRule("greedy", TOK, [A, A], target, ids), false);
  // "greedy" compares text, not ids: the token "Ab" then a space reads as "A" + "b".
  assert.equal(knownByRule("greedy", TOK, [200, sp], "Ab", ids), true);
  assert.equal(knownByRule("greedy", TOK, [200, A], "Ab", ids), false);
  assert.equal(knownByRule("first", TOK, [200, sp], "Ab", ids), false);
  assert.throws(() => knownByRule("greedy", TOK, [A], target, ids), RangeError);
});

Deno.test("tracing noise: numpy RandomState values, ROME's layout", () => {
  // python3 -c "import numpy as np; print(np.random.RandomState(1).randn(6).tolist())" (numpy 2.4.6)
  const want1 = [
    1.6243453636632417,
    -0.6117564136500754,
    -0.5281717522634557,
    -1.0729686221561705,
    0.8654076293246785,
    -2.3015386968802827,
  ];
  assert.deepEqual(Array.from(new NumpyRandomState(1).randn(6)), want1);
  assert.deepEqual(
    Array.from(new NumpyRandomState(0).randn(3)),
    [1.764052345967664, 0.4001572083672233, 0.9787379841057392],
  );
  assert.deepEqual(
    Array.from(new NumpyRandomState(4294967295).randn(3)),
    [0.6484086742306527, 0.6693235306338161, -1.0805437227474493],
  );
  const r = new NumpyRandomState(1);
  assert.deepEqual([r.randomSample(), r.randomSample()], [0.417022004702574, 0.7203244934421581]);
  // RandomState(1).randn(10, 2, 96)[9, 1, 90:] — past the first 624-word state refill.
  const n = subjectNoise(10, 2, 96, 1, 1);
  assert.deepEqual(Array.from(n.slice(-6)), [
    -0.9636565849010378,
    0.3732609736504448,
    0.3830268697572058,
    0.9413255845495389,
    -0.2254200823580782,
    -0.2970874212238873,
  ]);
  // The std scales every value (ROME: noise * randn, in float64).
  const s = subjectNoise(1, 2, 3, 0.25, 1);
  assert.deepEqual(Array.from(s), want1.map((x) => 0.25 * x));
  // The earlier generator stays available and differs.
  assert.notDeepEqual(Array.from(subjectNoise(1, 2, 3, 1, 1, "mulberry32")), want1);
  assert.throws(() => new NumpyRandomState(-1), RangeError);
});
