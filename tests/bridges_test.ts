import assert from "node:assert/strict";
import {
  iaNeurons,
  jaccard,
  naInstanceScores,
  neuronJaccard,
  spearman,
  zScores,
} from "../src/attribute/bridges.ts";
import { InputError } from "../src/errors.ts";

const n = (layer: number, neuron: number, score: number) => ({ layer, neuron, score });

Deno.test("NA-Instances DCG: population z-score (scipy ddof=0), absent neurons and -Infinity for zero", () => {
  const test = [n(0, 1, 9), n(1, 2, 5)];
  // Scores 3, 2, 1: mean 2, population sd sqrt(2/3), so the z-scores are ±sqrt(3/2) = ±1.2247449 and 0.
  // Train 0: 0:1 ranked first, z = 1.2247 -> (2^1.2247 - 1) / log2(2) = 1.3371412; 1:2 absent -> 0.
  const t0 = [n(0, 1, 3), n(0, 7, 2), n(1, 9, 1)];
  // Train 1: 1:2 at rank 1 with z = 0 -> 0; 0:1 at rank 2, z = -1.2247 -> (2^-1.2247 - 1) / log2(4) = -0.2860634.
  const t1 = [n(1, 5, 3), n(1, 2, 2), n(0, 1, 1)];
  // Train 2: none of the test neurons -> 0 -> -Infinity.
  const t2 = [n(1, 0, 1)];
  const s = naInstanceScores(test, [t0, t1, t2], 5);
  assert.ok(Math.abs(s[0] - 1.3371411566174038) < 1e-12, `${s[0]}`);
  assert.ok(Math.abs(s[1] - -0.28606341402003244) < 1e-12, `${s[1]}`);
  assert.equal(s[2], -Infinity);
  assert.throws(() => naInstanceScores([], [t0]), InputError);
  assert.deepEqual(iaNeurons([1, 0], [t0, t1], 2), [n(1, 5, 3), n(1, 2, 2)]);
});

Deno.test("NA-Instances: the issue's two-neuron list scores 0.685 with ddof=0 and 0.388 with ddof=1", () => {
  // Both train neurons are among the test's top: population z = +1 (rank 0) and -1 (rank 1), so
  // (2^1 - 1)/log2(2) + (2^-1 - 1)/log2(3) = 1 - 0.5/1.5849625 = 0.6845351; with the sample sd the
  // z-scores are ±1/sqrt(2): (2^0.7071 - 1) + (2^-0.7071 - 1)/log2(3) = 0.3880715.
  const test = [n(0, 4, 2), n(1, 3, 1)];
  const train = [[n(1, 3, 0.8), n(0, 4, 0.2)]];
  assert.ok(Math.abs(naInstanceScores(test, train)[0] - 0.6845351232142712) < 1e-12);
  assert.ok(Math.abs(naInstanceScores(test, train, 5, { ddof: 1 })[0] - 0.38807149964895055) < 1e-12);
  // Against hand z-scores: [5, 1, 3] -> mean 3, population sd sqrt(8/3).
  const z = zScores([5, 1, 3]);
  const sd = Math.sqrt(8 / 3);
  assert.deepEqual(
    Array.from(z, (x) => Math.round(x * 1e12) / 1e12),
    [2 / sd, -2 / sd, 0].map((x) => Math.round(x * 1e12) / 1e12),
  );
  // No spread: gains 0 (scipy would give NaN), so a single matching neuron contributes 0 -> -Infinity.
  assert.deepEqual(Array.from(zScores([7])), [0]);
  assert.equal(naInstanceScores(test, [[n(0, 4, 1)]])[0], -Infinity);
  assert.throws(() => naInstanceScores(test, train, 5, { ddof: 2 as 1 }), InputError);
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
