/**
 * No forward finishes silently on non-finite values: the GPU scan (kernels/nonfinite.wgsl) against its
 * float64 twin, and the forward's typed error naming the first non-finite site.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { firstNonFinite } from "../src/gpu/nonfinite.ts";
import { createTensor } from "../src/gpu/tensor.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { NonFiniteError } from "../src/model/nonfinite.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { refFirstNonFinite } from "../src/reference/nonfinite.ts";
import { rng } from "./_util.ts";

Deno.test("first_nonfinite kernel agrees with its float64 twin (odd sizes, NaN / ±Inf anywhere)", async () => {
  const gpu = await getGpu();
  const r = rng(7);
  let found = 0;
  for (const n of [1, 5, 255, 257, 4097, 9001, 70001]) {
    for (const poison of [[], [NaN], [Infinity], [-Infinity], [NaN, -Infinity], [Infinity, NaN, NaN]]) {
      // Large finite values, denormals and -0 must not be flagged.
      const x = Float32Array.from(
        { length: n },
        (_, i) => i % 97 === 0 ? 3.4e38 : i % 89 === 0 ? 1e-45 : r() - 0.5,
      );
      x[n - 1] = -0;
      for (const v of poison) x[Math.floor(r() * n)] = v;
      const t = createTensor(gpu, [n], { data: x });
      const got = await firstNonFinite(gpu, t);
      t.destroy();
      const want = refFirstNonFinite(x);
      assert.equal(got, want, `n=${n} poison=${poison}`);
      if (want >= 0) found++;
    }
  }
  assert.ok(found >= 30, `non-finite cases tested: ${found}`);
});

const CFG: ModelConfig = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 6,
  nPositions: 9,
  nInner: 10,
  vocabSize: 13,
  layerNormEpsilon: 1e-5,
};

Deno.test("forward: a NaN weight gives NonFiniteError naming the first non-finite site; finite gives none", async () => {
  const gpu = await getGpu();
  const batch = [[1, 4, 7], [2, 2, 12]];
  const good = TransformerModel.create(gpu, CFG, randomGPT2(CFG, 3));
  try {
    const res = await good.forward(batch);
    assert.ok(res.logprobs.every((row) => row.every(Number.isFinite)));
    const saved = await good.forwardForBackward(batch);
    saved.saved.destroy();
  } finally {
    good.destroy();
  }
  const cases: [string, number, string][] = [
    ["h.1.mlp.c_fc.weight", 3, "mlp_post.1"],
    ["h.0.ln_2.bias", 5, "mlp_post.0"], // ln_2 is not a site: the first one after it is mlp_post.0
    ["wpe.weight", 1 * 6 + 2, "embed"], // position 1 of each sequence
    ["ln_f.weight", 0, "ln_f"],
  ];
  for (const [name, at, site] of cases) {
    const w = randomGPT2(CFG, 3);
    w.get(name)!.data[at] = name === "h.0.ln_2.bias" ? Infinity : NaN;
    const model = TransformerModel.create(gpu, CFG, w);
    try {
      for (const save of [false, true]) {
        const run = save ? model.forwardForBackward(batch) : model.forward(batch);
        await assert.rejects(run, (e: unknown) => {
          assert.ok(e instanceof NonFiniteError, String(e));
          assert.equal(e.site, site, e.message);
          assert.equal(e.weight, name);
          assert.match(e.message, new RegExp(`first non-finite site '${site.replace(".", "\\.")}'`));
          return true;
        });
      }
      // The check can be turned off: the values come back as they are.
      const raw = await model.forward(batch, { allowNonFinite: true });
      assert.ok(raw.logprobs.some((row) => row.some((v) => !Number.isFinite(v))));
    } finally {
      model.destroy();
    }
  }
});

Deno.test("forward with allLogits: a non-finite logit at an earlier position is a NonFiniteError too", async () => {
  const gpu = await getGpu();
  const model = TransformerModel.create(gpu, CFG, randomGPT2(CFG, 5));
  try {
    const batch = [[1, 4, 7, 3]];
    // ln_f comes after every attention: a NaN there at position 0 reaches only position 0's logits.
    const edit = [{
      site: "ln_f",
      fn: (v: Float32Array) => {
        v[2] = NaN;
      },
    }];
    const lastOnly = await model.forward(batch, { hooks: { edit } });
    assert.ok(lastOnly.logprobs[0].every(Number.isFinite), "the last position is untouched");
    await assert.rejects(model.forward(batch, { hooks: { edit }, allLogits: true }), (e: unknown) => {
      assert.ok(e instanceof NonFiniteError, String(e));
      assert.match(e.message, /non-finite logits/);
      assert.match(e.message, /position 0/);
      return true;
    });
    const raw = await model.forward(batch, { hooks: { edit }, allLogits: true, allowNonFinite: true });
    assert.ok(Number.isNaN(raw.logits![0]));
  } finally {
    model.destroy();
  }
});
