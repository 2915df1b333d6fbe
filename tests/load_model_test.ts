/** loadModel's requireTokenizer: a typed tokenizer when the folder has one, a typed error naming it otherwise. */
import assert from "node:assert/strict";
import { EngramError } from "../src/errors.ts";
import type { Tokenizer } from "../src/io/tokenizer.ts";
import { saveHFModel } from "../src/io/hf_model.ts";
import { loadModel } from "../src/model/load.ts";
import { randomGPT2 } from "../src/model/random.ts";

const FAKE = new URL("../fixtures/models/fake-gpt2", import.meta.url).pathname;

Deno.test("loadModel requireTokenizer: the tokenizer is typed as present, a folder without one is refused", async () => {
  const lm = await loadModel(FAKE, { requireTokenizer: true });
  const tok: Tokenizer = lm.tokenizer; // compiles only because the overload narrows the type
  assert.deepEqual(tok.encode("Hello world"), [15496, 995]);
  lm.model.destroy();

  const tmp = await Deno.makeTempDir();
  try {
    const cfg = {
      nLayer: 1,
      nHead: 1,
      nEmbd: 4,
      vocabSize: 9,
      nPositions: 5,
      nInner: 8,
      layerNormEpsilon: 1e-5,
    };
    await saveHFModel(`${tmp}/m`, { config: cfg, weights: randomGPT2(cfg, 3) });
    const plain = await loadModel(`${tmp}/m`);
    assert.equal(plain.tokenizer, undefined);
    plain.model.destroy();
    await assert.rejects(
      loadModel(`${tmp}/m`, { requireTokenizer: true }),
      (e: unknown) => e instanceof EngramError && e.code === "tokenizer" && e.file === `${tmp}/m`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
