/**
 * Batched generate_fast (src/model/generate_batch.ts) against sampling each sample alone
 * (src/model/generate_fast.ts, with and without a KV cache): the same ids for the same seeds, on a tiny
 * random model with prompts of different lengths, lengths past the context and lengths shorter than the
 * prompt; and the world model's ROME and MEMIT templates against the one-by-one sampling they replaced.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import { generateFastBatch } from "../src/model/generate_batch.ts";
import { generateFast } from "../src/model/generate_fast.ts";
import { loadModel } from "../src/model/load.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { MEMIT_TEMPLATE_SEEDS, memitContextTemplates, romeContextTemplates } from "../src/edit/templates.ts";
import { freshSeed } from "./_util.ts";
import { TINY_EDIT_CONFIG } from "./_edit_util.ts";

const cfg = { ...TINY_EDIT_CONFIG, vocabSize: 11 }; // context 12
const tok: Tokenizer = {
  encode: (t: string) => t.split(" ").filter(Boolean).map(Number),
  decode: (ids: number[]) => ids.join(" "),
  tokenString: (i: number) => `${i}`,
  vocabSize: cfg.vocabSize,
  source: "test",
};

Deno.test("generateFastBatch: each sample's ids equal generateFast alone with its seed (cached and recomputed)", async () => {
  const seed = freshSeed();
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, seed, { std: 0.3 }));
  try {
    const samples = [
      { ids: [3], maxOutLen: 7, seed: seed + 1 },
      { ids: [4, 2], maxOutLen: 5, seed: seed + 2 },
      { ids: [3], maxOutLen: 3, seed: seed + 3 },
      { ids: [1, 9, 5], maxOutLen: 2, seed: seed + 4 }, // shorter than the prompt: no new token
      { ids: [7], maxOutLen: 40, seed: seed + 5 }, // past the context of 12
      { ids: [0, 6], maxOutLen: 9, seed: seed + 6 },
      { ids: [3], maxOutLen: 7, seed: seed + 7 },
    ];
    const got = await generateFastBatch(model, tok, samples);
    assert.equal(got.length, samples.length);
    for (const [i, s] of samples.entries()) {
      const alone = await generateFast(model, tok, s.ids, { maxOutLen: s.maxOutLen, seed: s.seed });
      const recomputed = await generateFast(model, tok, s.ids, {
        maxOutLen: s.maxOutLen,
        seed: s.seed,
        cache: false,
      });
      assert.deepEqual(got[i].ids, alone.ids, `sample ${i} (seed ${seed})`);
      assert.deepEqual(got[i].ids, recomputed.ids, `sample ${i} recomputed (seed ${seed})`);
      assert.equal(got[i].text, alone.text);
      assert.equal(got[i].ids.length, Math.max(s.ids.length, Math.min(s.maxOutLen, cfg.nPositions)));
    }
    // Different seeds give different texts (the test can fail: the samplers are not shared).
    assert.notDeepEqual(
      got[0].ids,
      got[6].ids,
      `samples 0 and 6 share a prompt; seeds differ (seed ${seed})`,
    );
  } finally {
    model.destroy();
  }
});

Deno.test("world model: batched ROME and MEMIT templates equal the one-by-one sampling", async () => {
  const { model, tokenizer } = await loadModel(new URL("../fixtures/world/model", import.meta.url).pathname, {
    requireTokenizer: true,
  });
  try {
    const seed = 3;
    const rome = await romeContextTemplates(model, tokenizer, [[5, 4], [8, 3]], seed);
    const start = [tokenizer.eosId!];
    let k = 0;
    const want: string[][] = [["{}"]];
    for (const [len, n] of [[5, 4], [8, 3]]) {
      const g: string[] = [];
      for (let i = 0; i < n; i++) {
        const { text } = await generateFast(model, tokenizer, start, {
          maxOutLen: len,
          seed: seed * 1000 + k++,
        });
        g.push(`${text.replaceAll("{", "").replaceAll("}", "")}. {}`);
      }
      want.push(g);
    }
    assert.deepEqual(rome, want);
    const memit = await memitContextTemplates(model, tokenizer, [[6, 10]], seed);
    k = 0;
    const wantM: string[] = [];
    for (const word of MEMIT_TEMPLATE_SEEDS) {
      for (let i = 0; i < 2; i++) {
        const { text } = await generateFast(model, tokenizer, tokenizer.encode(word), {
          maxOutLen: 6,
          seed: seed * 1000 + k++,
        });
        wantM.push(`${text.replaceAll("{", " ").replaceAll("}", " ")}. {}`);
      }
    }
    assert.deepEqual(memit, [["{}"], wantM]);
  } finally {
    model.destroy();
  }
});
