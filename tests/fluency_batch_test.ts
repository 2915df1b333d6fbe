/**
 * Fluency samples its generate_fast texts as one batch (src/model/generate_batch.ts): each request's
 * fluency must equal the entropy of the text sampling that prompt alone gives (the one-by-one path it
 * replaced), on the world model's CounterFact requests (prompts of shared and distinct lengths) and on a
 * random model through the deprecated `fluencyTokens` length.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { loadModel } from "../src/model/load.ts";
import { generateFast } from "../src/model/generate_fast.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import { evaluateRequests } from "../src/evaluate/edit_metrics.ts";
import { promptSeed, textEntropy } from "../src/evaluate/fluency.ts";
import { filledPrompt, readRequests } from "../src/edit/requests.ts";
import type { EditRequest } from "../src/edit/requests.ts";
import { bosPrefix } from "../src/prompt/encode.ts";
import { freshSeed } from "./_util.ts";
import { TINY_EDIT_CONFIG } from "./_edit_util.ts";

/** The one-by-one fluency: sample each prompt alone, entropy of its text. */
async function oneByOne(
  model: TransformerModel,
  tok: Tokenizer,
  reqs: EditRequest[],
  prefix: number[],
  maxLen: (promptLen: number) => number,
  seed: number,
): Promise<number[]> {
  const out: number[] = [];
  for (const r of reqs) {
    const text = filledPrompt(r);
    const ids = [...prefix, ...tok.encode(text)];
    const g = await generateFast(model, tok, ids, {
      maxOutLen: maxLen(ids.length),
      seed: promptSeed(seed, text),
    });
    out.push(textEntropy(g.text));
  }
  return out;
}

Deno.test("world model: batched fluency equals sampling each prompt alone", async () => {
  const { model, tokenizer } = await loadModel(new URL("../fixtures/world/model", import.meta.url).pathname, {
    requireTokenizer: true,
  });
  try {
    const reqs = (await readRequests(new URL("../fixtures/world/counterfact.json", import.meta.url).pathname))
      .slice(0, 8);
    const lens = reqs.map((r) => tokenizer.encode(filledPrompt(r)).length);
    assert.ok(new Set(lens).size < lens.length, `some prompts share a length (batched): ${lens}`);
    assert.ok(new Set(lens).size > 1, `prompts of several lengths: ${lens}`);
    const seed = freshSeed() % 1000;
    const got = await evaluateRequests(model, tokenizer, reqs, { fluencySeed: seed, fluencyMaxLen: 16 });
    const want = await oneByOne(model, tokenizer, reqs, bosPrefix(tokenizer), () => 16, seed);
    assert.deepEqual(got.map((s) => s.fluency), want, `seed ${seed}`);
  } finally {
    model.destroy();
  }
});

Deno.test("random model: batched fluency (fluencyTokens, equal-length prompts) equals one by one", async () => {
  const cfg = { ...TINY_EDIT_CONFIG, vocabSize: 13 };
  const seed = freshSeed();
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, seed, { std: 0.4 }));
  const tok: Tokenizer = {
    encode: (t: string) => t.split(" ").filter(Boolean).map((w) => Number(w.slice(1))),
    decode: (ids: number[]) => ids.map((i) => ` w${i}`).join(""),
    tokenString: (i: number) => `w${i}`,
    vocabSize: cfg.vocabSize,
    source: "test",
  };
  try {
    const reqs: EditRequest[] = [
      { prompt: "w1 {} w3", subject: "w2", target_new: "w4" },
      { prompt: "w5 {} w6", subject: "w7", target_new: "w4" },
      { prompt: "{} w9", subject: "w8", target_new: "w4" },
      { prompt: "w1 {} w3", subject: "w2", target_new: "w5" },
    ];
    const prefix = [cfg.vocabSize - 1];
    const got = await evaluateRequests(model, tok, reqs, { prefix, fluencyTokens: 6, fluencySeed: 5 });
    const want = await oneByOne(model, tok, reqs, prefix, (n) => n + 6, 5);
    assert.deepEqual(got.map((s) => s.fluency), want, `seed ${seed}`);
    // The same prompt twice gets the same text (its stream is seeded from its text).
    assert.equal(got[0].fluency, got[3].fluency);
  } finally {
    model.destroy();
  }
});
