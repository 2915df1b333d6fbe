/**
 * GPU GPT-2 forward vs the float64 CPU reference (llm.c style: load, run, compare tensor by tensor).
 * Bar: next-token log-probs agree to 1e-4 max abs on the shared tiny checkpoints and random configs.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { hookSiteNames } from "../src/model/hooks.ts";
import { randomConfig, randomGPT2 } from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { freshSeed, maxAbsErr, relErr, rng, SHARED } from "./_util.ts";

const TOL = 1e-4;

function randomIds(r: () => number, T: number, V: number): number[] {
  return Array.from({ length: T }, () => Math.floor(r() * V));
}

Deno.test("forward matches float64 reference on the shared tiny GPT-2 checkpoints", async () => {
  const gpu = await getGpu();
  for (const sub of ["gpt2-tiny-random-lmbuddy/fake_gpt2", "gpt2-tiny-random-lmbuddy/tiny_gpt2_toyvocab"]) {
    const hf = await loadHFModel(SHARED + sub);
    const model = TransformerModel.create(gpu, hf.config, hf.weights);
    const r = rng(7);
    for (const T of [1, 5, 17]) {
      const ids = randomIds(r, T, hf.config.vocabSize);
      const { logprobs } = await model.forward([ids]);
      const ref = gpt2ForwardRef(hf.config, hf.weights, ids).logprobsLast;
      const e = maxAbsErr(logprobs[0], ref);
      assert.ok(e <= TOL, `${sub} T=${T}: max abs log-prob error ${e} > ${TOL}`);
    }
    model.destroy();
  }
});

Deno.test("forward matches float64 reference on random GPT-2 configurations (batched)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const configs: ModelConfig[] = [
    randomConfig(seed),
    randomConfig(seed + 1),
    { nLayer: 3, nHead: 3, nEmbd: 21, vocabSize: 97, nPositions: 32, nInner: 84, layerNormEpsilon: 1e-5 },
    { nLayer: 2, nHead: 4, nEmbd: 64, vocabSize: 301, nPositions: 64, nInner: 256, layerNormEpsilon: 1e-5 },
  ];
  for (const cfg of configs) {
    const weights = randomGPT2(cfg, seed);
    const model = TransformerModel.create(gpu, cfg, weights);
    const T = 1 + Math.floor(r() * Math.min(cfg.nPositions, 24));
    const batch = [
      randomIds(r, T, cfg.vocabSize),
      randomIds(r, T, cfg.vocabSize),
      randomIds(r, T, cfg.vocabSize),
    ];
    const { logprobs, logits } = await model.forward(batch, { allLogits: true });
    for (let b = 0; b < batch.length; b++) {
      const ref = gpt2ForwardRef(cfg, weights, batch[b]);
      const e = maxAbsErr(logprobs[b], ref.logprobsLast);
      assert.ok(
        e <= TOL,
        `cfg ${JSON.stringify(cfg)} b=${b} T=${T}: log-prob error ${e} > ${TOL} (seed ${seed})`,
      );
      const V = cfg.vocabSize;
      const mine = logits!.subarray(b * T * V, (b + 1) * T * V);
      const le = relErr(mine, ref.logits);
      assert.ok(le <= 1e-4, `all-position logits rel error ${le} (seed ${seed})`);
    }
    model.destroy();
  }
});

Deno.test("every hook site captures the same values as the reference", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const cfg: ModelConfig = {
    nLayer: 2,
    nHead: 2,
    nEmbd: 10,
    vocabSize: 53,
    nPositions: 16,
    nInner: 40,
    layerNormEpsilon: 1e-5,
  };
  const weights = randomGPT2(cfg, seed);
  const model = TransformerModel.create(gpu, cfg, weights);
  const ids = randomIds(rng(seed), 7, cfg.vocabSize);
  // The GPT-2 twin predates the per-head site head_out (tests/families_test.ts checks it).
  const sites = hookSiteNames(cfg.nLayer).filter((s) => !s.startsWith("head_out."));
  const { captured } = await model.forward([ids], { hooks: { capture: sites } });
  const ref = gpt2ForwardRef(cfg, weights, ids, { hooks: { capture: new Set(sites) } });
  for (const s of sites) {
    const { data, shape } = captured.get(s)!;
    // Each site carries its shape: [B, T, width], or [B, H, T, T] for the attention probabilities.
    const want = s.startsWith("attn_pattern.") ? [1, cfg.nHead, 7, 7] : [1, 7, ref.cache[s].length / 7];
    assert.deepEqual(shape, want, s);
    assert.equal(data.length, shape.reduce((a, b) => a * b, 1), s);
    const e = relErr(data, ref.cache[s]);
    assert.ok(e <= 1e-4, `site ${s}: rel error ${e} (seed ${seed})`);
  }
  model.destroy();
});

Deno.test("patching a site at chosen (batch, token) rows matches a reference patch", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const cfg: ModelConfig = {
    nLayer: 3,
    nHead: 2,
    nEmbd: 12,
    vocabSize: 41,
    nPositions: 16,
    nInner: 48,
    layerNormEpsilon: 1e-5,
  };
  const weights = randomGPT2(cfg, seed);
  const model = TransformerModel.create(gpu, cfg, weights);
  const T = 6;
  const ids = randomIds(r, T, cfg.vocabSize);
  for (
    const [site, width] of [
      ["mlp_post.1", cfg.nInner],
      ["resid_pre.2", cfg.nEmbd],
      ["attn_out.0", cfg.nEmbd],
      ["embed", cfg.nEmbd],
    ] as const
  ) {
    const toks = [1, 4];
    const values = new Float32Array(toks.length * width).map(() => r() * 2 - 1);
    // Batch of 2: only sequence 1 is patched, sequence 0 must stay clean.
    const { logprobs } = await model.forward([ids, ids], {
      hooks: { patch: [{ site, rows: toks.map((t) => [1, t] as [number, number]), values }] },
    });
    const clean = gpt2ForwardRef(cfg, weights, ids).logprobsLast;
    const patched = gpt2ForwardRef(cfg, weights, ids, {
      hooks: {
        patch: {
          [site]: (v: Float64Array) =>
            toks.forEach((t, i) => v.set(values.subarray(i * width, (i + 1) * width), t * width)),
        },
      },
    }).logprobsLast;
    assert.ok(maxAbsErr(logprobs[0], clean) <= TOL, `${site}: unpatched sequence changed (seed ${seed})`);
    assert.ok(
      maxAbsErr(logprobs[1], patched) <= TOL,
      `${site}: patched sequence differs from reference (seed ${seed})`,
    );
    assert.ok(maxAbsErr(patched, clean) > 1e-3, `${site}: the patch had no effect, test is vacuous`);
  }
  model.destroy();
});

Deno.test("host-side edit hook sees and changes the site", async () => {
  const gpu = await getGpu();
  const cfg: ModelConfig = {
    nLayer: 1,
    nHead: 1,
    nEmbd: 8,
    vocabSize: 29,
    nPositions: 8,
    nInner: 32,
    layerNormEpsilon: 1e-5,
  };
  const weights = randomGPT2(cfg, 3);
  const model = TransformerModel.create(gpu, cfg, weights);
  const ids = [1, 2, 3];
  let seen: number[] = [];
  const { logprobs } = await model.forward([ids], {
    hooks: {
      edit: [{ site: "mlp_post.0", fn: (v, B, T, W) => ((seen = [B, T, W]), v.fill(0)) }],
    },
  });
  assert.deepEqual(seen, [1, 3, 32]);
  const ref = gpt2ForwardRef(cfg, weights, ids, {
    hooks: { patch: { "mlp_post.0": (v: Float64Array) => v.fill(0) } },
  });
  assert.ok(maxAbsErr(logprobs[0], ref.logprobsLast) <= TOL);
  model.destroy();
});

Deno.test("bad batches and hook names are typed errors", async () => {
  const gpu = await getGpu();
  const cfg: ModelConfig = {
    nLayer: 1,
    nHead: 1,
    nEmbd: 4,
    vocabSize: 11,
    nPositions: 4,
    nInner: 16,
    layerNormEpsilon: 1e-5,
  };
  const model = TransformerModel.create(gpu, cfg, randomGPT2(cfg, 1));
  await assert.rejects(model.forward([[]]), { name: "InputError", message: /empty prompt/ });
  await assert.rejects(model.forward([[1, 2, 3, 4, 5]]), {
    name: "InputError",
    message: /longer than the model's context of 4/,
  });
  await assert.rejects(model.forward([[1, 11]]), { name: "InputError", message: /token id 11 out of range/ });
  await assert.rejects(model.forward([[1, 2], [1]]), { name: "InputError", message: /differ in length/ });
  await assert.rejects(model.forward([[1]], { hooks: { capture: ["mlp_post.1"] } }), {
    name: "InputError",
    message: /layer 1 out of range/,
  });
  await assert.rejects(model.forward([[1]], { hooks: { capture: ["mlp_pre.0"] } }), {
    name: "InputError",
    message: /unknown hook site/,
  });
  model.destroy();
});
