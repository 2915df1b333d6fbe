/**
 * Generation with a KV cache (src/model/generate.ts, TransformerModel.forwardCached) against the
 * full-recompute path and the float64 reference forward (src/reference/transformer.ts) on tiny random
 * models of every family: the same greedy tokens, and each step's log-probabilities equal to the
 * recompute path's and to a log-softmax of the reference logits of the whole sequence.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { generate } from "../src/model/generate.ts";
import { generateFast } from "../src/model/generate_fast.ts";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import { type FamilyVariant, randomFamilyConfig, randomWeights } from "../src/model/random.ts";
import type { Family } from "../src/model/config.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";

const CASES: Array<[Family, FamilyVariant]> = [
  ["gpt2", "gpt2"],
  ["llama", "llama"],
  ["llama", "llama3"],
  ["llama", "qwen2"],
  ["llama", "qwen3"],
  ["llama", "mistral"],
  ["neox", "parallel"],
  ["neox", "sequential"],
  ["gptj", "gptj"],
];

function logSoftmax64(row: Float64Array): Float64Array {
  let m = -Infinity;
  for (const x of row) m = Math.max(m, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - m);
  const lse = m + Math.log(s);
  return Float64Array.from(row, (x) => x - lse);
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) {
    e = Math.max(e, Number.isNaN(a[i] - b[i]) ? Infinity : Math.abs(a[i] - b[i]));
  }
  return e;
}

for (const [family, variant] of CASES) {
  Deno.test(`cached greedy generation equals recompute and the float64 reference: ${variant}`, async () => {
    const gpu = await getGpu();
    const cfg = randomFamilyConfig(family, 5, variant);
    const weights = randomWeights(cfg, 13, { std: 0.4 });
    const model = TransformerModel.create(gpu, cfg, weights);
    const V = cfg.vocabSize;
    const prompt = [1, 4, 2, 6, 3].map((x) => x % V);
    const n = 7;
    const fast = await generate(model, prompt, { maxTokens: n, keepLogprobs: true });
    const slow = await generate(model, prompt, { maxTokens: n, keepLogprobs: true, cache: false });
    assert.equal(fast.cached, true);
    assert.equal(slow.cached, false);
    assert.deepEqual(fast.ids, slow.ids, "greedy tokens differ");
    assert.equal(fast.ids.length, n);
    const ref = transformerForwardRef(cfg, weights, [...prompt, ...fast.ids.slice(0, -1)]);
    let errSlow = 0, errRef = 0;
    for (let s = 0; s < n; s++) {
      errSlow = Math.max(errSlow, maxAbs(fast.logprobs![s], slow.logprobs![s]));
      const t = prompt.length - 1 + s;
      errRef = Math.max(
        errRef,
        maxAbs(fast.logprobs![s], logSoftmax64(ref.logits.subarray(t * V, (t + 1) * V))),
      );
      assert.equal(fast.tokenLogprobs[s], fast.logprobs![s][fast.ids[s]]);
    }
    console.log(
      `${variant}: max |cache - recompute| = ${errSlow.toExponential(2)}, vs float64 ${
        errRef.toExponential(2)
      }`,
    );
    assert.ok(errSlow < 1e-4, `cache vs recompute ${errSlow}`);
    assert.ok(errRef < 1e-4, `cache vs float64 reference ${errRef}`);
    model.destroy();
  });
}

Deno.test("forwardCached: a batch of two, prompt then single steps, equals full forwards (hooks too)", async () => {
  const gpu = await getGpu();
  const cfg = randomFamilyConfig("llama", 9, "mistral");
  const weights = randomWeights(cfg, 3, { std: 0.4 });
  const model = TransformerModel.create(gpu, cfg, weights);
  const V = cfg.vocabSize;
  const seqs = [[1, 2, 3, 4, 5, 6], [6, 5, 0, 3, 2, 1]].map((s) => s.map((x) => x % V));
  const cache = model.createKvCache(2, 8);
  const first = await model.forwardCached(seqs.map((s) => s.slice(0, 4)), cache, {
    hooks: { capture: ["mlp_post.0"] },
  });
  const full4 = await model.forward(seqs.map((s) => s.slice(0, 4)), { hooks: { capture: ["mlp_post.0"] } });
  assert.ok(maxAbs(first.captured.get("mlp_post.0")!.data, full4.captured.get("mlp_post.0")!.data) < 1e-5);
  for (let t = 4; t < 6; t++) {
    const step = await model.forwardCached(seqs.map((s) => [s[t]]), cache);
    const full = await model.forward(seqs.map((s) => s.slice(0, t + 1)));
    for (let b = 0; b < 2; b++) assert.ok(maxAbs(step.logprobs[b], full.logprobs[b]) < 1e-5, `b ${b} t ${t}`);
  }
  assert.equal(cache.length, 6);
  await assert.rejects(() => model.forwardCached(seqs.map((s) => s.slice(0, 3)), cache), /kv cache holds 8/);
  await assert.rejects(() => model.forwardCached([[1]], cache), /2 sequences/);
  cache.destroy();
  assert.equal(V > 0, true);
  model.destroy();
});

Deno.test("dynamic NTK scaling: generate recomputes by default; cache: true runs", async () => {
  const gpu = await getGpu();
  const cfg = randomFamilyConfig("llama", 2, "dynamic");
  const model = TransformerModel.create(gpu, cfg, randomWeights(cfg, 1, { std: 0.4 }));
  const a = await generate(model, [1, 2, 3], { maxTokens: 5 });
  assert.equal(a.cached, false);
  const b = await generate(model, [1, 2, 3], { maxTokens: 5, cache: true });
  assert.equal(b.cached, true);
  assert.equal(b.ids.length, 5);
  model.destroy();
});

Deno.test("sampled generation and generateFast: the cache gives the same tokens as recompute", async () => {
  const gpu = await getGpu();
  const cfg = randomFamilyConfig("llama", 6, "qwen2");
  const model = TransformerModel.create(gpu, cfg, randomWeights(cfg, 2, { std: 0.4 }));
  const prompt = [1, 2, 3, 4].map((x) => x % cfg.vocabSize);
  const o = { maxTokens: 8, temperature: 1, topK: 5, seed: 3 };
  const a = await generate(model, prompt, o);
  const b = await generate(model, prompt, { ...o, cache: false });
  assert.deepEqual(a.ids, b.ids);
  const tok = { decode: (ids: number[]) => ids.join(" "), eosId: undefined } as unknown as Tokenizer;
  const f1 = await generateFast(model, tok, prompt, { maxOutLen: 12 });
  const f2 = await generateFast(model, tok, prompt, { maxOutLen: 12, cache: false });
  assert.deepEqual(f1.ids, f2.ids);
  assert.equal(f1.ids.length, 12);
  model.destroy();
});
