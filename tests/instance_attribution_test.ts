import assert from "node:assert/strict";
import { ConfigError, InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { saveHFModel } from "../src/io/hf_model.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import {
  exampleGradients,
  instanceScores,
  listCheckpoints,
  promptExample,
  topK,
  trainingExample,
} from "../src/attribute/instances.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import type { ModelConfig, WeightMap } from "../src/model/config.ts";
import { assertClose, freshSeed, relErr, rng } from "./_util.ts";

const CONFIG = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 12,
  vocabSize: 31,
  nPositions: 16,
  nInner: 48,
  layerNormEpsilon: 1e-5,
};

function examples(seed: number) {
  const r = rng(seed);
  const tok = () => Math.floor(r() * CONFIG.vocabSize);
  // Mixed lengths so that several length groups and batches form.
  const train = Array.from(
    { length: 7 },
    (_, i) => trainingExample(Array.from({ length: 3 + (i % 3) }, tok)),
  );
  const test = promptExample([tok(), tok(), tok(), tok()], tok());
  return { train, test };
}

/** An odd-sized model for the finite-difference tests (few c_proj entries keep them fast). */
const SMALL: ModelConfig = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 10,
  vocabSize: 23,
  nPositions: 12,
  nInner: 22,
  layerNormEpsilon: 1e-5,
};

/**
 * Float64 loss of one example by the reference definition: the mean over counted positions of
 * −log softmax(logits_t)[target_t], from the float64 reference forward. `bump` adds ε to one entry
 * (i, c) of layer L's c_proj weight, exactly in float64: since mlp_out = mlp_post · W + b, raising W[i, c]
 * by ε raises mlp_out[t, c] by ε · mlp_post[t, i] (the float32 weight array itself cannot hold W + ε).
 */
function refLoss(
  cfg: ModelConfig,
  w: WeightMap,
  ex: { input: number[]; targets: number[] },
  bump?: { layer: number; i: number; c: number; eps: number },
): number {
  const V = cfg.vocabSize;
  let post: Float64Array | undefined;
  const patch = bump
    ? {
      [`mlp_post.${bump.layer}`]: (v: Float64Array) => void (post = v.slice()),
      [`mlp_out.${bump.layer}`]: (v: Float64Array, T: number, width: number) => {
        for (let t = 0; t < T; t++) v[t * width + bump.c] += bump.eps * post![t * cfg.nInner + bump.i];
      },
    }
    : undefined;
  const { logits } = gpt2ForwardRef(cfg, w, ex.input, { hooks: { patch } });
  let loss = 0, n = 0;
  ex.targets.forEach((y, t) => {
    if (y < 0) return;
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[t * V + v]);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[t * V + v] - mx);
    loss += mx + Math.log(z) - logits[t * V + y];
    n++;
  });
  return loss / n;
}

/** Central finite-difference gradient of {@link refLoss} over every layer's c_proj weight, layer order. */
function refGrad(cfg: ModelConfig, w: WeightMap, ex: { input: number[]; targets: number[] }): Float64Array {
  const { nInner: I, nEmbd: C } = cfg;
  const g = new Float64Array(cfg.nLayer * I * C);
  const eps = 1e-5;
  for (let layer = 0; layer < cfg.nLayer; layer++) {
    for (let i = 0; i < I; i++) {
      for (let c = 0; c < C; c++) {
        const up = refLoss(cfg, w, ex, { layer, i, c, eps });
        const down = refLoss(cfg, w, ex, { layer, i, c, eps: -eps });
        g[(layer * I + i) * C + c] = (up - down) / (2 * eps);
      }
    }
  }
  return g;
}

const dot64 = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

Deno.test("per-example gradients, Grad-Dot, Grad-Cos and TracIn equal float64 finite differences of the reference loss", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const r = rng(seed);
  const tok = () => Math.floor(r() * SMALL.vocabSize);
  const train = Array.from(
    { length: 5 },
    (_, i) => trainingExample(Array.from({ length: 3 + (i % 3) }, tok)),
  );
  const test = promptExample([tok(), tok(), tok(), tok()], tok());
  const w1 = randomGPT2(SMALL, seed, { std: 0.3 });
  const w2 = randomGPT2(SMALL, seed + 7, { std: 0.3 });
  const dir = await Deno.makeTempDir({ prefix: "engram_ia_fd_" });
  const m1 = TransformerModel.create(gpu, SMALL, w1);
  try {
    const params = ["h.0.mlp.c_proj.weight", "h.1.mlp.c_proj.weight"];
    const ref1 = [...train, test].map((ex) => refGrad(SMALL, w1, ex));
    const got = await exampleGradients(m1, [...train, test], params);
    const gErr = Math.max(...got.map((g, i) => relErr(g, ref1[i], 1e-8)));
    assert.ok(gErr < 1e-4, `per-example gradient vs float64 FD: ${gErr} (seed ${seed})`);
    const gT = ref1[train.length];
    const dots = await instanceScores(m1, train, test, { method: "grad-dot" });
    const coss = await instanceScores(m1, train, test, { method: "grad-cos" });
    let dotErr = 0, cosErr = 0;
    for (let i = 0; i < train.length; i++) {
      const d = dot64(ref1[i], gT), na = Math.sqrt(dot64(ref1[i], ref1[i])), nb = Math.sqrt(dot64(gT, gT));
      dotErr = Math.max(dotErr, Math.abs(dots[i] - d) / (na * nb));
      cosErr = Math.max(cosErr, Math.abs(coss[i] - d / (na * nb)));
    }
    assert.ok(dotErr < 1e-4, `grad-dot vs float64: ${dotErr} (seed ${seed})`);
    assert.ok(cosErr < 1e-4, `grad-cos vs float64: ${cosErr} (seed ${seed})`);
    // TracIn over two checkpoints: Σ_c lr_c · g_train(c) · g_test(c), from the float64 gradients of each.
    await saveHFModel(`${dir}/checkpoints/step-000003`, { config: SMALL, weights: w1 });
    await saveHFModel(`${dir}/checkpoints/step-000010`, { config: SMALL, weights: w2 });
    await Deno.writeTextFile(
      `${dir}/train_log.jsonl`,
      [3, 10].map((s) => JSON.stringify({ step: s, lr: s === 3 ? 0.05 : 0.02 })).join("\n"),
    );
    const cks = await listCheckpoints(`${dir}/checkpoints`);
    const tr = await instanceScores(m1, train, test, { method: "tracin", checkpoints: cks });
    const ref2 = [...train, test].map((ex) => refGrad(SMALL, w2, ex));
    let trErr = 0;
    for (let i = 0; i < train.length; i++) {
      const want = 0.05 * dot64(ref1[i], ref1[train.length]) + 0.02 * dot64(ref2[i], ref2[train.length]);
      const scale = 0.05 * Math.sqrt(dot64(ref1[i], ref1[i]) * dot64(gT, gT)) +
        0.02 * Math.sqrt(dot64(ref2[i], ref2[i]) * dot64(ref2[train.length], ref2[train.length]));
      trErr = Math.max(trErr, Math.abs(tr[i] - want) / scale);
    }
    assert.ok(trErr < 1e-4, `TracIn vs float64: ${trErr} (seed ${seed})`);
    console.log(
      `vs float64 FD: gradients ${gErr.toExponential(1)}, grad-dot ${dotErr.toExponential(1)}, ` +
        `grad-cos ${cosErr.toExponential(1)}, TracIn ${trErr.toExponential(1)} (relative)`,
    );
  } finally {
    m1.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("batched per-example c_proj gradients equal one-at-a-time whole-model gradients", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const model = TransformerModel.create(gpu, CONFIG, randomGPT2(CONFIG, seed, { std: 0.3 }));
  const { train, test } = examples(seed);
  const fast = await exampleGradients(model, [...train, test], [
    "h.0.mlp.c_proj.weight",
    "h.1.mlp.c_proj.weight",
  ]);
  // Slow path: a parameter list that is not only c_proj weights forces Gradients one instance at a time.
  const slow = await exampleGradients(model, [...train, test], [
    "h.0.mlp.c_proj.weight",
    "h.1.mlp.c_proj.weight",
    "ln_f.bias",
  ]);
  const P = 2 * CONFIG.nInner * CONFIG.nEmbd;
  fast.forEach((g, i) => assertClose(g, slow[i].subarray(0, P), 1e-4, `example ${i}`, seed));
  // Grad-Dot / Grad-Cos from the streamed scores equal the dot / cosine of the stored gradients.
  const gT = fast[7];
  const dots = await instanceScores(model, train, test, { method: "grad-dot" });
  const coss = await instanceScores(model, train, test, { method: "grad-cos" });
  for (let i = 0; i < 7; i++) {
    let d = 0, na = 0, nb = 0;
    for (let j = 0; j < P; j++) {
      d += fast[i][j] * gT[j];
      na += fast[i][j] ** 2;
      nb += gT[j] ** 2;
    }
    assert.ok(Math.abs(dots[i] - d) <= 1e-5 * Math.sqrt(na * nb) + 1e-12, `dot ${i} (seed ${seed})`);
    assert.ok(Math.abs(coss[i] - d / Math.sqrt(na * nb)) < 1e-5, `cos ${i} (seed ${seed})`);
    assert.ok(coss[i] <= 1 + 1e-6 && coss[i] >= -1 - 1e-6);
  }
  assert.deepEqual(topK([0.1, 3, -2, 3], 3), [1, 3, 0]);
  await assert.rejects(() => exampleGradients(model, [test], ["h.9.mlp.c_proj.weight"]), InputError);
  model.destroy();
});

Deno.test("TracIn sums lr-weighted dot products over checkpoints; other architectures are refused", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir({ prefix: "engram_tracin_" });
  try {
    const w1 = randomGPT2(CONFIG, seed, { std: 0.3 });
    const w2 = randomGPT2(CONFIG, seed + 1, { std: 0.3 });
    await saveHFModel(`${dir}/checkpoints/step-000002`, { config: CONFIG, weights: w1 });
    await saveHFModel(`${dir}/checkpoints/step-000004`, { config: CONFIG, weights: w2 });
    await Deno.writeTextFile(
      `${dir}/train_log.jsonl`,
      [1, 2, 3, 4].map((s) => JSON.stringify({ step: s, lr: s / 10 })).join("\n"),
    );
    const cks = await listCheckpoints(`${dir}/checkpoints`);
    assert.deepEqual(cks.map((c) => [c.step, c.lr]), [[2, 0.2], [4, 0.4]]);
    const { train, test } = examples(seed);
    const m1 = TransformerModel.create(gpu, CONFIG, w1), m2 = TransformerModel.create(gpu, CONFIG, w2);
    const d1 = await instanceScores(m1, train, test, { method: "grad-dot" });
    const d2 = await instanceScores(m2, train, test, { method: "grad-dot" });
    const tr = await instanceScores(m1, train, test, { method: "tracin", checkpoints: cks });
    tr.forEach((s, i) =>
      assert.ok(
        Math.abs(s - (0.2 * d1[i] + 0.4 * d2[i])) <= 1e-6 * (Math.abs(d1[i]) + Math.abs(d2[i])) + 1e-12,
      )
    );
    await assert.rejects(() => instanceScores(m1, train, test, { method: "tracin" }), InputError);
    const other = { ...CONFIG, nInner: 24 };
    await saveHFModel(`${dir}/bad/step-000001`, { config: other, weights: randomGPT2(other, seed) });
    await assert.rejects(
      () =>
        instanceScores(m1, train, test, {
          method: "tracin",
          checkpoints: [{ dir: `${dir}/bad/step-000001`, step: 1, lr: 1 }],
        }),
      (e: Error) =>
        e instanceof ConfigError && /nInner/.test(e.message) &&
        /bad\/step-000001/.test(e.message + JSON.stringify(e)),
    );
    await assert.rejects(() => listCheckpoints(`${dir}/nothing`), InputError);
    m1.destroy();
    m2.destroy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: multi-token target, unfittable training line and foreign checkpoints are one-line typed errors", async () => {
  const { engram } = await import("./_util.ts");
  const dir = await Deno.makeTempDir({ prefix: "engram_attr_cli_" });
  try {
    const world = new URL("../fixtures/world", import.meta.url).pathname;
    const { loadTokenizer } = await import("../src/io/tokenizer.ts");
    const vocabSize = (await loadTokenizer(world)).vocabSize;
    const cfg = {
      nLayer: 1,
      nHead: 1,
      nEmbd: 8,
      vocabSize,
      nPositions: 12,
      nInner: 32,
      layerNormEpsilon: 1e-5,
    };
    await saveHFModel(`${dir}/m`, {
      config: cfg,
      weights: randomGPT2(cfg, 3),
      tokenizerFrom: world,
      extraConfig: { bos_token_id: 0 },
    });
    const r1 = await engram(
      "neurons",
      "--model",
      `${dir}/m`,
      "--prompt",
      "Narnux was born in",
      "--target",
      "Qzxqzxqzx",
      "--steps",
      "2",
    );
    assert.equal(r1.code, 1, r1.stderr);
    assert.match(r1.stderr, /single next token/);
    assert.doesNotMatch(r1.stderr, /at .*\.ts:\d+/);
    const long = Array.from({ length: 30 }, () => "Narnux").join(" ");
    await Deno.writeTextFile(
      `${dir}/train.jsonl`,
      `{"id":"a","text":"Narnux was born in Tarvos ."}\n{"id":"b","text":"${long}"}\n`,
    );
    const r2 = await engram(
      "attribute",
      "--model",
      `${dir}/m`,
      "--train",
      `${dir}/train.jsonl`,
      "--prompt",
      "Narnux was born in",
      "--target",
      "Tarvos",
      "--method",
      "grad-dot",
    );
    assert.equal(r2.code, 1, r2.stderr);
    assert.match(r2.stderr, /line 2/);
    assert.match(r2.stderr, /train\.jsonl/);
    const other = { ...cfg, nEmbd: 12, nInner: 48 };
    await saveHFModel(`${dir}/ck/step-000001`, { config: other, weights: randomGPT2(other, 4) });
    await Deno.writeTextFile(`${dir}/ok.jsonl`, `{"id":"a","text":"Narnux was born in Tarvos ."}\n`);
    const r3 = await engram(
      "attribute",
      "--model",
      `${dir}/m`,
      "--train",
      `${dir}/ok.jsonl`,
      "--prompt",
      "Narnux was born in",
      "--target",
      "Tarvos",
      "--method",
      "tracin",
      "--checkpoints",
      `${dir}/ck`,
    );
    assert.equal(r3.code, 1, r3.stderr);
    assert.match(r3.stderr, /different architecture/);
    const r4 = await engram(
      "attribute",
      "--model",
      `${dir}/m`,
      "--train",
      `${dir}/ok.jsonl`,
      "--prompt",
      "Narnux was born in",
      "--target",
      "Tarvos",
      "--method",
      "grad-cos",
      "--json",
    );
    assert.equal(r4.code, 0, r4.stderr);
    const rep = JSON.parse(r4.stdout);
    assert.equal(rep.top[0].id, "a");
    assert.ok(Math.abs(rep.top[0].score) <= 1 + 1e-6);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
