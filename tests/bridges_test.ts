import assert from "node:assert/strict";
import { iaNeurons, jaccard, naInstanceScores, neuronJaccard, spearman } from "../src/attribute/bridges.ts";
import { InputError } from "../src/errors.ts";

const n = (layer: number, neuron: number, score: number) => ({ layer, neuron, score });

Deno.test("NA-Instances DCG: hand-computed scores, absent neurons and -Infinity for zero", () => {
  const test = [n(0, 1, 9), n(1, 2, 5)];
  // Train 0: neuron 0:1 ranked first with z-score (3-2)/1 = 1 -> (2^1-1)/log2(2) = 1; 1:2 absent -> 0.
  const t0 = [n(0, 1, 3), n(0, 7, 2), n(1, 9, 1)];
  // Train 1: 1:2 at rank 1 with z-score 0 (scores 3,2,1 -> mean 2 sd 1: 2 -> 0) -> 0; 0:1 at rank 2, z -1 -> -0.5/log2(4).
  const t1 = [n(1, 5, 3), n(1, 2, 2), n(0, 1, 1)];
  // Train 2: none of the test neurons -> 0 -> -Infinity.
  const t2 = [n(1, 0, 1)];
  const s = naInstanceScores(test, [t0, t1, t2], 5);
  assert.ok(Math.abs(s[0] - 1) < 1e-12);
  assert.ok(Math.abs(s[1] - -0.5 / 2) < 1e-12);
  assert.equal(s[2], -Infinity);
  assert.throws(() => naInstanceScores([], [t0]), InputError);
  assert.deepEqual(iaNeurons([1, 0], [t0, t1], 2), [n(1, 5, 3), n(1, 2, 2)]);
});

Deno.test("overlap measures: Jaccard and Spearman with ties", () => {
  assert.equal(jaccard(["a", "b", "c"], ["b", "c", "d"]), 0.5);
  assert.equal(jaccard([], []), 1);
  assert.equal(neuronJaccard([n(0, 1, 1)], [n(0, 1, 5), n(1, 1, 1)]), 0.5);
  assert.ok(Math.abs(spearman([1, 2, 3, 4], [10, 20, 30, 40]) - 1) < 1e-12);
  assert.ok(Math.abs(spearman([1, 2, 3, 4], [4, 3, 2, 1]) + 1) < 1e-12);
  // Ties: ranks [1.5, 1.5, 3] vs [1, 2, 3] -> Pearson = 0.8660254.
  assert.ok(Math.abs(spearman([1, 1, 2], [1, 2, 3]) - Math.sqrt(3) / 2) < 1e-12);
  assert.ok(Number.isNaN(spearman([1, 1], [1, 2])));
  assert.ok(Math.abs(spearman([-Infinity, 0, 1], [0, 1, 2]) - 1) < 1e-12);
});
