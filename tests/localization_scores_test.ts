// Hase et al.'s rewrite / paraphrase / neighborhood / target scores against their definitions
// (belief-localization make_editing_results_df) on hand-made probabilities.
import assert from "node:assert/strict";
import {
  harmonicMean,
  hasePoints,
  neighborhoodScore,
  rewriteScore,
} from "../src/evaluate/localization/scores.ts";
import { editLayers, ftNormConstraint } from "../src/evaluate/localization/objectives.ts";
import { fractionRestored } from "../src/evaluate/localization/case.ts";

const close = (a: number | null, b: number, what: string) =>
  assert.ok(a !== null && Math.abs(a - b) < 1e-15, `${what}: ${a} vs ${b}`);

Deno.test("rewrite score: share of the missing mass moved to the target, floored at 2e-8", () => {
  close(rewriteScore(0.2, 0.6), 0.5, "0.2 -> 0.6"); // 1 − 0.4 / 0.8
  close(rewriteScore(0.5, 1), 1, "to certainty");
  close(rewriteScore(0.3, 0.3), 2e-8, "no change"); // 0, floored
  close(rewriteScore(0.6, 0.2), 2e-8, "a fall"); // negative, floored
});

Deno.test("erasure score: share of the target's mass removed, floored at 0", () => {
  close(rewriteScore(0.4, 0.1, true), 0.75, "0.4 -> 0.1");
  close(rewriteScore(0.4, 0.5, true), 0, "a rise");
});

Deno.test("neighborhood score: change over the largest possible change", () => {
  close(neighborhoodScore(0.3, 0.5), 1 - 0.2 / 0.7, "0.3 -> 0.5");
  close(neighborhoodScore(0.9, 0.1), 1 - 0.8 / 0.9, "0.9 -> 0.1");
  close(neighborhoodScore(0.25, 0.25), 1, "unchanged");
  close(neighborhoodScore(0.5, 0), 0, "from 0.5 to 0: the largest change");
});

Deno.test("target score is the harmonic mean; 0 when a score is missing or 0", () => {
  close(harmonicMean([0.5, 0.25, 1]), 3 / 7, "hmean"); // 3 / (2 + 4 + 1)
  assert.equal(harmonicMean([0.5, null, 1]), 0);
  assert.equal(harmonicMean([0.5, 0, 1]), 0);
  const s = hasePoints({ pre: 0.2, post: 0.6 }, { pre: 0.5, post: 0.75 }, { pre: 0.3, post: 0.5 });
  close(s.rewrite, 0.5, "rewrite");
  close(s.paraphrase, 0.5, "paraphrase");
  close(s.neighborhood, 1 - 0.2 / 0.7, "neighborhood");
  close(s.target, 3 / (2 + 2 + 0.7 / 0.5), "target");
  assert.equal(hasePoints({ pre: 0.2, post: 0.6 }, null, null).paraphrase, null);
});

Deno.test("edit windows, FT radii and the fraction restored", () => {
  assert.deepEqual(editLayers(0, 5, 28), [0, 1, 2]);
  assert.deepEqual(editLayers(5, 5, 28), [3, 4, 5, 6, 7]);
  assert.deepEqual(editLayers(27, 5, 28), [25, 26, 27]);
  assert.deepEqual(editLayers(3, 1, 28), [3]);
  assert.equal(ftNormConstraint("error_injection", 1, 16384), 1e-4); // GPT-J: the reference's value
  assert.equal(ftNormConstraint("error_injection", 5, 16384), 5e-5);
  assert.equal(ftNormConstraint("tracing_reversal", 5, 16384), 1e-3);
  assert.equal(ftNormConstraint("fact_amplification", 1, 16384), 5e-5);
  assert.equal(ftNormConstraint("fact_amplification", 5, 16384), 1e-5);
  close(ftNormConstraint("error_injection", 1, 384), 1e-4 * 6400 / 384, "scaled for a small MLP");
  close(fractionRestored(0.3, 0.9, 0.1), 0.375, "0.3 / |0.1 − 0.9|");
  assert.equal(fractionRestored(-0.05, 0.9, 0.1), 0);
  assert.equal(fractionRestored(0.1, 0.5, 0.5), 0);
});
