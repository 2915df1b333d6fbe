/**
 * `ForwardOptions.stopAfter` and `taps` (src/model/transformer.ts): a forward that runs blocks up to L
 * only gives the same captured (and tapped) sites, bitwise, as the whole forward (the same kernels in the
 * same order); sites above L, a backward, a KV cache and allLogits are refused. The key statistics (src/edit/stats.ts) use it
 * and check their keys: a NaN below the layer is a NonFiniteError, one above it does not matter.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { copyTensor, createTensor, type GpuTensor, readTensor } from "../src/gpu/tensor.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { InputError } from "../src/errors.ts";
import { NonFiniteError } from "../src/model/nonfinite.ts";
import { layerStats } from "../src/edit/stats.ts";
import { freshSeed } from "./_util.ts";
import { wordTokenizer } from "./_edit_util.ts";

const CFG: ModelConfig = {
  nLayer: 3,
  nHead: 2,
  nEmbd: 10,
  nPositions: 9,
  nInner: 22,
  vocabSize: 13,
  layerNormEpsilon: 1e-5,
};

Deno.test("forward stopAfter: captured sites equal the whole forward's bitwise; bad uses are InputErrors", async () => {
  const seed = freshSeed();
  const model = TransformerModel.create(await getGpu(), CFG, randomGPT2(CFG, seed));
  try {
    const batch = [[1, 4, 7, 2, 9], [3, 3, 12, 0, 5]];
    const sites = ["embed", "resid_pre.0", "mlp_post.0", "attn_out.1", "mlp_post.1", "resid_post.1"];
    const full = await model.forward(batch, { hooks: { capture: sites } });
    const part = await model.forward(batch, { hooks: { capture: sites }, stopAfter: 1 });
    assert.deepEqual(part.logprobs, [], "no head");
    for (const s of sites) {
      assert.deepEqual(part.captured.get(s)!.data, full.captured.get(s)!.data, `${s} (seed ${seed})`);
      assert.deepEqual(part.captured.get(s)!.shape, full.captured.get(s)!.shape, s);
    }
    const bad = [
      { hooks: { capture: ["mlp_post.2"] }, stopAfter: 1 },
      { hooks: { capture: ["ln_f"] }, stopAfter: 2 },
      { stopAfter: 3 },
      { stopAfter: -1 },
      { stopAfter: 0.5 },
      { allLogits: true, stopAfter: 1 },
    ];
    for (const o of bad) await assert.rejects(() => model.forward(batch, o), InputError, JSON.stringify(o));
    await assert.rejects(() => model.forwardForBackward(batch, { stopAfter: 1 }), InputError);
    // A tap sees the site's values when the forward reaches them (in inference the blocks share buffers).
    const copies = new Map<string, GpuTensor>();
    const taps = new Map(["mlp_post.0", "mlp_post.1"].map((s) => [s, (t: GpuTensor) => {
      const c = createTensor(model.gpu, [t.numel], { name: `tap:${s}` });
      copyTensor(t, c);
      copies.set(s, c);
      return Promise.resolve();
    }]));
    await model.forward(batch, { stopAfter: 1, taps });
    for (const [s, c] of copies) {
      assert.deepEqual(await readTensor(c), full.captured.get(s)!.data, `tap ${s} (seed ${seed})`);
      c.destroy();
    }
    await assert.rejects(
      () => model.forward(batch, { stopAfter: 0, taps: new Map([["mlp_post.1", () => Promise.resolve()]]) }),
      InputError,
    );
  } finally {
    model.destroy();
  }
});

Deno.test("key statistics: a NaN below the layer is a NonFiniteError; a NaN above it changes nothing", async () => {
  const seed = freshSeed();
  const tok = wordTokenizer(CFG.vocabSize);
  const dir = await Deno.makeTempDir({ prefix: "engram-stop-stats" });
  try {
    const corpus = `${dir}/corpus.txt`;
    await Deno.writeTextFile(
      corpus,
      "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w3 w3",
    );
    const clean = randomGPT2(CFG, seed);
    const good = TransformerModel.create(await getGpu(), CFG, clean);
    const want = await layerStats(good, tok, [0], { corpus, cacheDir: `${dir}/a` });
    good.destroy();
    // NaN in block 2 only: blocks above layer 0 never run, so the statistics are the clean ones.
    const above = randomGPT2(CFG, seed);
    above.get("h.2.mlp.c_fc.weight")!.data[3] = NaN;
    const m2 = TransformerModel.create(await getGpu(), CFG, above);
    const got = await layerStats(m2, tok, [0], { corpus, cacheDir: `${dir}/b` });
    m2.destroy();
    assert.deepEqual(got.get(0)!.mom2, want.get(0)!.mom2, `seed ${seed}`);
    assert.ok(want.get(0)!.mom2.every(Number.isFinite) && want.get(0)!.count > 0);
    // NaN in block 0's c_fc: the keys of layer 0 are NaN.
    const below = randomGPT2(CFG, seed);
    below.get("h.0.mlp.c_fc.weight")!.data[3] = NaN;
    const m0 = TransformerModel.create(await getGpu(), CFG, below);
    try {
      await assert.rejects(
        () => layerStats(m0, tok, [0], { corpus, cacheDir: `${dir}/c` }),
        (e: unknown) => e instanceof NonFiniteError && e.site === "mlp_post.0",
      );
    } finally {
      m0.destroy();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
