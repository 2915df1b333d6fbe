import assert from "node:assert/strict";
import { ConfigError, InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { saveHFModel } from "../src/io/hf_model.ts";
import { GPT2Model } from "../src/model/gpt2.ts";
import { randomGPT2 } from "../src/model/random.ts";
import {
  exampleGradients,
  instanceScores,
  listCheckpoints,
  promptExample,
  topK,
  trainingExample,
} from "../src/attribute/instances.ts";
import { assertClose, freshSeed, rng } from "./_util.ts";

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

Deno.test("batched per-example c_proj gradients equal one-at-a-time whole-model gradients", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const model = GPT2Model.create(gpu, CONFIG, randomGPT2(CONFIG, seed, { std: 0.3 }));
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
    const m1 = GPT2Model.create(gpu, CONFIG, w1), m2 = GPT2Model.create(gpu, CONFIG, w2);
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
