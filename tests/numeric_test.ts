/** src/numeric: argmax, top-k, log-sum-exp and log-softmax against direct definitions in float64. */
import assert from "node:assert/strict";
import { argmax, logSoftmaxInto, logSumExp, topK } from "../src/numeric/mod.ts";
import { freshSeed, rng } from "./_util.ts";

Deno.test("argmax and topK equal a stable descending sort on rows with ties, offsets included", () => {
  const seed = freshSeed();
  const r = rng(seed);
  for (const n of [1, 2, 7, 61, 300]) {
    const x = Float32Array.from({ length: n }, () => Math.floor(r() * 5) - 2);
    const order = Array.from(x.keys()).sort((a, b) => x[b] - x[a] || a - b);
    assert.equal(argmax(x), order[0], `argmax n ${n} (seed ${seed})`);
    for (const k of [0, 1, 3, n, n + 4]) assert.deepEqual(topK(x, k), order.slice(0, k), `topK ${n} ${k}`);
    // A row inside a batch: offset and length.
    const wide = new Float32Array(3 + n + 2).fill(99);
    wide.set(x, 3);
    assert.equal(argmax(wide, 3, n), order[0], `argmax with offset n ${n}`);
  }
});

Deno.test("logSumExp and logSoftmaxInto match log(Σ exp) in float64, and survive ±1000 logits", () => {
  const seed = freshSeed();
  const r = rng(seed);
  for (const n of [1, 5, 97]) {
    const x = Float64Array.from({ length: n }, () => (r() - 0.5) * 20);
    const direct = Math.log(x.reduce((s, v) => s + Math.exp(v), 0));
    assert.ok(
      Math.abs(logSumExp(x) - direct) <= 1e-12 * Math.max(1, Math.abs(direct)),
      `n ${n} (seed ${seed})`,
    );
    const out = logSoftmaxInto(x, 0, n, new Float64Array(n));
    const total = out.reduce((s, v) => s + Math.exp(v), 0);
    assert.ok(Math.abs(total - 1) < 1e-12, `softmax sums to ${total}`);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(out[i] - (x[i] - direct)) < 1e-12);
  }
  // exp(1000) overflows a direct sum; shifting by the max does not.
  assert.equal(logSumExp([1000, 1000], 0, 2), 1000 + Math.log(2));
  assert.equal(logSumExp([-1000, -Infinity]), -1000);
  assert.equal(logSumExp([-Infinity, -Infinity]), -Infinity);
  assert.equal(logSumExp([5, 1, 2], 1, 2), 2 + Math.log(1 + Math.exp(-1)));
});
