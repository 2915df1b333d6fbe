import assert from "node:assert/strict";
import { InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import {
  captureRun,
  corruptionHooks,
  embeddingRow,
  patchActivations,
  subjectNoise,
} from "../src/locate/patching.ts";
import { freshSeed, maxAbsErr, rng } from "./_util.ts";

const CFG = {
  nLayer: 2,
  nHead: 3,
  nEmbd: 9,
  vocabSize: 29,
  nPositions: 12,
  nInner: 36,
  layerNormEpsilon: 1e-5,
};

async function setup(seed: number) {
  const weights = randomGPT2(CFG, seed, { std: 0.5 });
  const model = TransformerModel.create(await getGpu(), CFG, weights);
  const r = rng(seed);
  const ids = (n: number) => Array.from({ length: n }, () => Math.floor(r() * CFG.vocabSize));
  return { weights, model, a: ids(6), b: ids(5) };
}

Deno.test("activation patching: prompt A -> prompt B equals the float64 reference", async () => {
  const seed = freshSeed();
  const { weights, model, a, b } = await setup(seed);
  const patches = [
    { site: "mlp_out.0", positions: [4], sourcePositions: [5] },
    { site: "resid_post.1", positions: [1, 2], sourcePositions: [0, 3] },
    { site: "mlp_post.1", positions: [4] },
  ];
  const res = await patchActivations(model, { ids: a }, { ids: b }, patches, { capture: ["mlp_out.0"] });
  const src = gpt2ForwardRef(CFG, weights, a, { hooks: { capture: new Set(patches.map((p) => p.site)) } });
  const setRows =
    (site: string, pairs: Array<[number, number]>) => (v: Float64Array, _T: number, w: number) => {
      for (const [t, s] of pairs) for (let c = 0; c < w; c++) v[t * w + c] = src.cache[site][s * w + c];
    };
  const ref = gpt2ForwardRef(CFG, weights, b, {
    hooks: {
      patch: {
        "mlp_out.0": setRows("mlp_out.0", [[4, 5]]),
        "resid_post.1": setRows("resid_post.1", [[1, 0], [2, 3]]),
        "mlp_post.1": setRows("mlp_post.1", [[4, 4]]),
      },
    },
  });
  const e = maxAbsErr(res.patchedLogprobs, ref.logprobsLast);
  assert.ok(e < 2e-4, `patched log-probs error ${e} (seed ${seed})`);
  const unpatched = gpt2ForwardRef(CFG, weights, b).logprobsLast;
  assert.ok(maxAbsErr(res.targetLogprobs, unpatched) < 2e-4);
  assert.ok(maxAbsErr(res.sourceLogprobs, src.logprobsLast) < 2e-4);
  // The captured patched site shows the source's value at the patched row.
  const w = CFG.nEmbd;
  const got = res.captured.get("mlp_out.0")!.data.subarray(4 * w, 5 * w);
  assert.ok(maxAbsErr(got, res.sourceValues.get("mlp_out.0")!.data.subarray(5 * w, 6 * w)) === 0);
  model.destroy();
});

Deno.test("activation patching: clean <-> corrupted directions", async () => {
  const seed = freshSeed();
  const { model, a } = await setup(seed);
  const noise = subjectNoise(1, 2, CFG.nEmbd, 1.0, seed);
  const corrupt = corruptionHooks(model, a, [1, 3], noise);
  // The corruption patch is clean embedding + noise.
  const e0 = corrupt.patch![0].values.subarray(0, CFG.nEmbd);
  const clean0 = embeddingRow(model.weights, CFG.nEmbd, a[1], 1);
  for (let c = 0; c < CFG.nEmbd; c++) assert.ok(Math.abs(e0[c] - (clean0[c] + noise[c])) < 1e-6);
  const clean = await captureRun(model, { ids: a }, ["embed"]);
  const dirty = await captureRun(model, { ids: a, hooks: corrupt }, ["embed"]);
  assert.ok(maxAbsErr(clean.logprobs, dirty.logprobs) > 1e-4, "the corruption must change the output");
  // Corrupted -> clean at every subject row of "embed" reproduces the corrupted run exactly.
  const c2d = await patchActivations(model, { ids: a, hooks: corrupt }, { ids: a }, [{
    site: "embed",
    positions: [1, 2],
  }]);
  assert.ok(maxAbsErr(c2d.patchedLogprobs, dirty.logprobs) < 1e-5);
  // Clean -> corrupted of the last layer's residual at the last token restores the clean output.
  const d2c = await patchActivations(model, { ids: a }, { ids: a, hooks: corrupt }, [
    { site: `resid_post.${CFG.nLayer - 1}`, positions: [a.length - 1] },
  ]);
  assert.ok(maxAbsErr(d2c.patchedLogprobs, clean.logprobs) < 1e-5);
  assert.ok(maxAbsErr(d2c.targetLogprobs, dirty.logprobs) < 1e-5);
  model.destroy();
});

Deno.test("activation patching: bad positions and sites are typed errors", async () => {
  const { model, a, b } = await setup(5);
  await assert.rejects(patchActivations(model, { ids: a }, { ids: b }, []), InputError);
  await assert.rejects(
    patchActivations(model, { ids: a }, { ids: b }, [{ site: "mlp_out.7", positions: [0] }]),
    InputError,
  );
  await assert.rejects(
    patchActivations(model, { ids: a }, { ids: b }, [{ site: "embed", positions: [5] }]),
    InputError,
  );
  await assert.rejects(
    patchActivations(model, { ids: a }, { ids: b }, [{
      site: "embed",
      positions: [0],
      sourcePositions: [9],
    }]),
    InputError,
  );
  assert.throws(() => corruptionHooks(model, a, [3, 9], subjectNoise(1, 6, CFG.nEmbd, 1, 1)), InputError);
  model.destroy();
});
