/** The sampler's top-k selection against a full stable sort, ties and small vocabularies included. */
import assert from "node:assert/strict";
import { pickToken, topIndices } from "../src/model/generate.ts";
import { freshSeed, rng } from "./_util.ts";

Deno.test("topIndices equals the first k of a stable descending sort (ties to the lower index)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  for (const n of [1, 3, 7, 50, 257]) {
    for (const k of [1, 2, 5, 9, n]) {
      // Few distinct values: many ties.
      const x = Float32Array.from({ length: n }, () => Math.floor(r() * 6));
      const want = Array.from(x.keys()).sort((a, b) => x[b] - x[a] || a - b).slice(0, Math.min(k, n));
      assert.deepEqual(topIndices(x, k), want, `n ${n} k ${k} (seed ${seed})`);
    }
  }
});

Deno.test("pickToken with top-k samples only among the k most likely, in proportion to their probabilities", () => {
  const lp = Float32Array.from([-3, -0.5, -9, -1, -2, -1.5, -4].map((x) => x));
  const r = rng(5);
  const counts = new Map<number, number>();
  const N = 20000;
  for (let i = 0; i < N; i++) {
    const t = pickToken(lp, 1, 3, r);
    counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), [1, 3, 5]);
  const z = Math.exp(-0.5) + Math.exp(-1) + Math.exp(-1.5);
  for (const t of [1, 3, 5]) {
    const p = Math.exp(lp[t]) / z;
    assert.ok(Math.abs(counts.get(t)! / N - p) < 0.015, `token ${t}: ${counts.get(t)! / N} vs ${p}`);
  }
});
