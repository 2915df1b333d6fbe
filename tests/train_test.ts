/**
 * Training: reproducible for a seed, the loss falls, checkpoints are loadable Hugging Face folders,
 * and bad input (empty corpus, over-long lines, diverging loss, existing output) is a clear error
 * that loses nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../src/gpu/device.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import { parseTrainConfig, type TrainConfig } from "../src/train/config.ts";
import { epochBatches, train } from "../src/train/trainer.ts";
import { makeBatch } from "../src/train/corpus.ts";
import { lossAndGradients } from "../src/model/backward.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { mulberry32 } from "../src/model/generate.ts";
import { engram } from "./_util.ts";
import { TRAIN_FACTS, writeCorpus } from "./_train_corpus.ts";

const WORLD = new URL("../fixtures/world", import.meta.url).pathname;

function config(dir: string, corpusPath: string, extra: Record<string, unknown> = {}): TrainConfig {
  return parseTrainConfig(
    {
      corpus: corpusPath,
      tokenizer: WORLD,
      out: join(dir, "out"),
      model: { n_layer: 1, n_head: 2, n_embd: 16, n_positions: 16 },
      epochs: 10,
      batch_size: 4,
      lr: 0.01,
      seed: 7,
      ...extra,
    },
    join(dir, "train.json"),
  );
}

Deno.test("training is reproducible for a seed, lowers the loss and writes loadable checkpoints", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir();
  try {
    const c = await writeCorpus(dir, TRAIN_FACTS);
    const r1 = await train(gpu, config(dir, c));
    assert.ok(r1.log.at(-1)!.loss < r1.log[0].loss * 0.7, `loss ${r1.log[0].loss} -> ${r1.log.at(-1)!.loss}`);
    assert.equal(r1.steps, 20);
    assert.equal(r1.checkpoints.length, 9, "a checkpoint after each epoch but the last");
    const ck = await loadHFModel(r1.checkpoints[0]);
    assert.equal(ck.config.nEmbd, 16);
    assert.ok(ck.tokenizer, "checkpoints carry the tokenizer");
    const m1 = await loadHFModel(join(dir, "out"));
    const log = (await Deno.readTextFile(join(dir, "out", "train_log.jsonl"))).trim().split("\n");
    assert.equal(log.length, 20);
    assert.deepEqual(Object.keys(JSON.parse(log[0])), [
      "step",
      "epoch",
      "loss",
      "grad_norm",
      "lr",
      "tokens_per_second",
    ]);
    // Same seed, same bytes.
    const cfg2 = { ...config(dir, c), out: join(dir, "out2") };
    await train(gpu, cfg2);
    const a = await Deno.readFile(join(dir, "out", "model.safetensors"));
    const b = await Deno.readFile(join(dir, "out2", "model.safetensors"));
    assert.deepEqual(a, b, "two runs with one seed differ");
    assert.ok(m1.weights.get("wte.weight")!.data.some((x) => x !== 0));
    // Existing output is refused, then replaced with overwrite.
    await assert.rejects(train(gpu, config(dir, c)), { name: "EngramError", message: /already exists/ });
    await train(gpu, config(dir, c, { seed: 8 }), { overwrite: true, maxSteps: 2 });
    assert.notDeepEqual(await Deno.readFile(join(dir, "out", "model.safetensors")), a);
    const leftovers = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("."));
    assert.deepEqual(leftovers, [], "no work folders left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("training a Llama-family model: the loss falls and the folder loads as Llama (GQA, rotary, RMSNorm)", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir();
  try {
    const c = await writeCorpus(dir, TRAIN_FACTS);
    const cfg = config(dir, c, {
      model: {
        n_layer: 2,
        n_head: 4,
        n_kv_head: 2,
        n_embd: 16,
        n_positions: 16,
        n_inner: 24,
        family: "llama",
      },
    });
    const r = await train(gpu, cfg);
    assert.ok(r.log.at(-1)!.loss < r.log[0].loss * 0.7, `loss ${r.log[0].loss} -> ${r.log.at(-1)!.loss}`);
    const m = await loadHFModel(join(dir, "out"));
    assert.equal(m.config.family, "llama");
    assert.equal(m.config.nKvHead, 2);
    assert.equal(m.config.norm, "rmsnorm");
    assert.equal(m.config.activation, "silu");
    assert.equal(m.config.rope?.dim, 4);
    assert.equal(m.config.rope?.theta, 10000);
    assert.equal(m.config.qkvBias, false);
    assert.ok(m.tokenizer, "the tokenizer is copied");
    const hf = JSON.parse(await Deno.readTextFile(join(dir, "out", "config.json")));
    assert.equal(hf.model_type, "llama");
    assert.equal(hf.tie_word_embeddings, true);
    assert.ok(![...m.weights.keys()].some((k) => k.includes("bias")), "no biases");
    // Norm weights start at 1 and were trained.
    const norm = [...m.weights].find(([k]) => k.includes("norm"))!;
    assert.ok(norm[1].data.some((x) => x !== 1));
    // The saved q / k / v are the trained slices of the fused GPU tensor: the folder scores the corpus
    // as well as training ended (a mixed-up slice would not).
    const tok = m.tokenizer!;
    const inst = TRAIN_FACTS.map((t, i) => ({
      id: `c${i}`,
      line: i,
      text: t,
      ids: [tok.eosId!, ...tok.encode(t), tok.eosId!],
    }));
    const { batch, targets } = makeBatch(inst, tok.eosId!);
    const gm = TransformerModel.create(gpu, m.config, m.weights);
    try {
      const { loss } = await lossAndGradients(gm, batch, { targets });
      const last = r.log.at(-1)!.loss;
      assert.ok(Math.abs(loss - last) < 0.2 * last, `saved model's loss ${loss}, training ended at ${last}`);
    } finally {
      gm.destroy();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("training bad input: empty corpus, over-long line, bad JSON, diverging loss", async () => {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir();
  try {
    const empty = join(dir, "empty.jsonl");
    await Deno.writeTextFile(empty, "\n\n");
    await assert.rejects(train(gpu, config(dir, empty)), { name: "InputError", message: /corpus is empty/ });
    const long = await writeCorpus(dir, ["Narnux was born in Tarvos .", Array(40).fill("Narnux").join(" ")]);
    await assert.rejects(train(gpu, config(dir, long)), {
      name: "InputError",
      message: /line 2.*context of 17/,
    });
    const bad = join(dir, "bad.jsonl");
    await Deno.writeTextFile(bad, '{"id": "a", "text": "ok ."}\n{"id": "b", "text": \n');
    await assert.rejects(train(gpu, config(dir, bad)), {
      name: "InputError",
      message: /bad\.jsonl.*line 2.*JSON/,
    });
    // An absurd learning rate makes the loss non-finite after the first checkpoint.
    const c = await writeCorpus(dir, TRAIN_FACTS);
    const err = await train(gpu, config(dir, c, { lr: 1e30, warmup_steps: 0, grad_clip: 0, batch_size: 6 }))
      .then(
        () => undefined,
        (e) => e,
      );
    assert.ok(err, "training with lr 1e30 should diverge");
    assert.equal(err.name, "TrainingDivergedError");
    const kept = /kept at (\S+)/.exec(err.message);
    assert.ok(kept, err.message);
    const ck = await loadHFModel(kept[1].replace(/;$/, ""));
    assert.ok(ck.weights.get("wte.weight")!.data.every(Number.isFinite), "the kept checkpoint is a good one");
    assert.ok(!(await Deno.stat(join(dir, "out")).then(() => true, () => false)), "no half-written output");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train CLI: config errors name the file and field", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = join(dir, "t.json");
    await Deno.writeTextFile(cfg, JSON.stringify({ corpus: "x.jsonl", tokenizer: WORLD, out: "o", lr: -1 }));
    const r = await engram("train", "--config", cfg);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /t\.json.*field 'lr'/);
    await Deno.writeTextFile(
      cfg,
      JSON.stringify({ corpus: "x.jsonl", tokenizer: WORLD, out: "o", lerning_rate: 1 }),
    );
    assert.match((await engram("train", "--config", cfg)).stderr, /field 'lerning_rate': unknown field/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("length buckets: every instance once per epoch, less padding, batch order still random", () => {
  const rand = mulberry32(5);
  const data = Array.from(
    { length: 203 },
    (_, i) => ({ i, ids: Array(3 + Math.floor(rand() * 17)).fill(0) }),
  );
  const padded = (bs: { ids: number[] }[][]) =>
    bs.reduce((n, b) => n + b.length * Math.max(...b.map((x) => x.ids.length)), 0);
  const plain = epochBatches(data, 8, 1, mulberry32(1));
  const bucketed = epochBatches(data, 8, 16, mulberry32(1));
  for (const bs of [plain, bucketed]) {
    const seen = bs.flat().map((x) => x.i).sort((a, b) => a - b);
    assert.deepEqual(seen, data.map((x) => x.i), "each instance exactly once");
    assert.ok(bs.every((b) => b.length >= 1 && b.length <= 8));
  }
  assert.ok(padded(bucketed) < 0.8 * padded(plain), `${padded(bucketed)} vs ${padded(plain)} padded tokens`);
  // The bucketed batch order is shuffled, not sorted by length, and depends on the seed.
  const lens = bucketed.map((b) => b[0].ids.length);
  assert.notDeepEqual(lens, [...lens].sort((a, b) => a - b));
  assert.notDeepEqual(
    epochBatches(data, 8, 16, mulberry32(2)).map((b) => b[0].i),
    bucketed.map((b) => b[0].i),
  );
  assert.throws(() => config("/tmp", "/tmp/c.jsonl", { length_buckets: 0 }), /length_buckets/);
});
