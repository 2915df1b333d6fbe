/**
 * Key statistics (src/edit/stats.ts): the cache key hashes exactly the weights the keys at a layer
 * depend on, so an edit of that layer's mlp.c_proj (ROME, MEMIT, FT-L) hits the cache and a change of
 * its c_fc or of an earlier layer does not; there is no silent default corpus; a model folder's
 * declaration, prebuilt statistics files and the CLI's flags resolve as documented.
 */
import assert from "node:assert/strict";
import { zipSync } from "fflate";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { weightShapes } from "../src/model/families/mod.ts";
import {
  checkStatsSource,
  declaredStatsCorpus,
  keyWeightNames,
  layerStats,
  modelKeyHash,
  resolveStatsSource,
  statsCacheFile,
} from "../src/edit/stats.ts";
import { InputError } from "../src/errors.ts";
import { TINY_EDIT_CONFIG, wordTokenizer } from "./_edit_util.ts";
import { engram, freshSeed, rng } from "./_util.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { saveHFModel } from "../src/io/hf_model.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const cfg = { ...TINY_EDIT_CONFIG, nLayer: 3, nInner: 20 };
const tok = wordTokenizer(cfg.vocabSize);

function bump(w: Map<string, { data: Float32Array }>, name: string) {
  w.get(name)!.data[1] += 0.25;
}

Deno.test("stats key: only embeddings, earlier blocks and the layer's ln_1 / attn / ln_2 / c_fc", () => {
  const names = keyWeightNames(weightShapes(cfg).keys(), 1);
  assert.ok(names.includes("wte.weight") && names.includes("wpe.weight"));
  assert.ok(names.includes("h.0.mlp.c_proj.weight"), "earlier c_proj feeds the residual");
  assert.ok(names.includes("h.1.mlp.c_fc.bias") && names.includes("h.1.attn.c_attn.weight"));
  for (const n of ["h.1.mlp.c_proj.weight", "h.1.mlp.c_proj.bias", "h.2.ln_1.weight", "ln_f.weight"]) {
    assert.ok(!names.includes(n), n);
  }
  const seed = freshSeed();
  const model = { config: cfg, weights: randomGPT2(cfg, seed) };
  const k1 = modelKeyHash(model, 1), k2 = modelKeyHash(model, 2);
  for (const n of ["h.1.mlp.c_proj.weight", "h.1.mlp.c_proj.bias", "h.2.mlp.c_fc.weight", "ln_f.bias"]) {
    bump(model.weights, n);
    assert.equal(modelKeyHash(model, 1), k1, `editing ${n} keeps layer 1's key (seed ${seed})`);
  }
  assert.notEqual(modelKeyHash(model, 2), k2, "layer 2's keys see layer 1's c_proj");
  for (const n of ["h.1.mlp.c_fc.weight", "h.0.mlp.c_proj.weight", "wpe.weight"]) {
    const before = modelKeyHash(model, 1);
    bump(model.weights, n);
    assert.notEqual(modelKeyHash(model, 1), before, `${n} changes layer 1's key`);
  }
  assert.notEqual(
    modelKeyHash({ ...model, config: { ...cfg, layerNormEpsilon: 1e-6 } }, 1),
    modelKeyHash(model, 1),
  );
});

Deno.test("layerStats: sequential edits of mlp.c_proj hit the cache; c_fc edits recompute; E[kkᵀ] symmetric PSD", async () => {
  const seed = freshSeed();
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, seed));
  const tmp = await Deno.makeTempDir({ prefix: "engram_stats_cache_" });
  try {
    const corpus = `${tmp}/c.jsonl`;
    const lines = Array.from(
      { length: 9 },
      (_, i) =>
        JSON.stringify({
          text: Array.from({ length: 3 + (i % 4) }, (_, j) => ` w${(i * 5 + j * 3) % 12}`).join(""),
        }),
    );
    await Deno.writeTextFile(corpus, lines.join("\n") + "\n");
    const opts = { corpus, cacheDir: tmp };
    const a = (await layerStats(model, tok, [1], opts)).get(1)!;
    assert.equal(a.cached, false);
    assert.equal(a.count, lines.reduce((s, l) => s + JSON.parse(l).text.trim().split(" ").length, 0));
    assert.equal(a.file, await statsCacheFile(model, tok, 1, corpus, { cacheDir: tmp }));
    const I = cfg.nInner;
    let diag = 0;
    for (let i = 0; i < I; i++) {
      diag += a.mom2[i * I + i];
      for (let j = 0; j < I; j++) assert.equal(a.mom2[i * I + j], a.mom2[j * I + i]);
    }
    assert.ok(diag > 0);

    // A ROME-style edit of layer 1 (its c_proj, host and GPU copy) keeps the key: cached, same C.
    bump(model.weights, "h.1.mlp.c_proj.weight");
    model.syncWeight("h.1.mlp.c_proj.weight");
    const b = (await layerStats(model, tok, [1], opts)).get(1)!;
    assert.equal(b.cached, true);
    assert.equal(b.file, a.file);
    assert.deepEqual(b.mom2, a.mom2);

    // The [eos] framing is part of the key.
    const framed =
      (await layerStats(model, tok, [1], { ...opts, corpus: { file: corpus, eosDelimit: true } })).get(1)!;
    assert.equal(framed.cached, false);
    assert.equal(framed.count, a.count + 2 * lines.length);

    // c_fc of layer 1 feeds the keys: a new file, new statistics.
    bump(model.weights, "h.1.mlp.c_fc.weight");
    model.syncWeight("h.1.mlp.c_fc.weight");
    const c = (await layerStats(model, tok, [1], opts)).get(1)!;
    assert.equal(c.cached, false);
    assert.notEqual(c.file, a.file);
    assert.ok(c.mom2.some((x, i) => x !== a.mom2[i]), `statistics changed (seed ${seed})`);

    // Prebuilt statistics: the cache file itself, and a ROME .npz holding the sum and the count.
    const sum = Float32Array.from(c.mom2, (x) => x * c.count);
    const npy = (descr: string, shape: string, data: Uint8Array) => {
      let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
      while ((h.length + 11) % 64) h += " ";
      h += "\n";
      const out = new Uint8Array(10 + h.length + data.length);
      out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 255, h.length >> 8]);
      for (let i = 0; i < h.length; i++) out[10 + i] = h.charCodeAt(i);
      out.set(data, 10 + h.length);
      return out;
    };
    const cnt = new Uint8Array(8);
    new DataView(cnt.buffer).setBigInt64(0, BigInt(c.count), true);
    const rome = `${tmp}/transformer.h.1.mlp.c_proj_float32_mom2_100000.npz`;
    await Deno.writeFile(
      rome,
      zipSync({
        "mom2.mom2.npy": npy("<f4", `(${I}, ${I})`, new Uint8Array(sum.buffer)),
        "mom2.count.npy": npy("<i8", "()", cnt),
      }),
    );
    const viaNpz = (await layerStats(model, tok, [1], { files: [rome] })).get(1)!;
    assert.equal(viaNpz.count, c.count);
    for (let i = 0; i < I * I; i++) {
      assert.ok(Math.abs(viaNpz.mom2[i] - c.mom2[i]) <= 1e-6 * Math.max(1, Math.abs(c.mom2[i])), `C[${i}]`);
    }
    const viaCache = (await layerStats(model, tok, [1], { files: [c.file] })).get(1)!;
    assert.deepEqual(viaCache.mom2, c.mom2);
    await assert.rejects(
      () => layerStats(model, tok, [0, 1], { files: [rome] }),
      /no statistics for layer\(s\) 0/,
    );
  } finally {
    model.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("layerStats: no corpus is an InputError asking for --stats-corpus or --stats; 'wikipedia' asks for ROME's files", async () => {
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, 1));
  try {
    await assert.rejects(() => layerStats(model, tok, [0], {}), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /--stats-corpus FILE .*--stats FILE/);
      return true;
    });
    await assert.rejects(() => layerStats(model, tok, [2], { corpus: "wikipedia" }), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.match(
        e.message,
        /field 'mom2_dataset'.*transformer\.h\.2\.mlp\.c_proj_float32_mom2_100000\.npz/,
      );
      return true;
    });
  } finally {
    model.destroy();
  }
});

Deno.test("model folder declaration: the world model names its corpus; bad declarations and flags are typed errors", async () => {
  const world = await declaredStatsCorpus(ROOT + "fixtures/world/model");
  assert.deepEqual(world, { file: ROOT + "fixtures/world/train.jsonl", eosDelimit: true });
  assert.equal(await declaredStatsCorpus(ROOT + "fixtures/world"), undefined, "no declaration, no corpus");

  const tmp = await Deno.makeTempDir({ prefix: "engram_stats_decl_" });
  try {
    const decl = `${tmp}/engram_stats.json`;
    const bad: [unknown, RegExp][] = [
      [{ corpus: "missing.jsonl" }, /field 'corpus': corpus .*missing\.jsonl/],
      [
        { corpus: 3 },
        /engram_stats\.json: \$\.corpus: expected the corpus file, relative to the folder, got 3/,
      ],
      [{ corpus: "../x", eos_delimit: "yes" }, /\$\.eos_delimit: expected true or false/],
      [{ corpus: "x", extra: 1 }, /unknown key 'extra'/],
    ];
    for (const [o, re] of bad) {
      await Deno.writeTextFile(decl, JSON.stringify(o));
      await assert.rejects(
        () => declaredStatsCorpus(tmp),
        (e: Error) => e instanceof InputError && re.test(e.message),
      );
    }
    await Deno.writeTextFile(`${tmp}/text.txt`, "w1 w2");
    await Deno.writeTextFile(decl, JSON.stringify({ corpus: "text.txt" }));
    assert.deepEqual(await declaredStatsCorpus(tmp), { file: `${tmp}/text.txt`, eosDelimit: false });

    // Flags: --stats-corpus takes the model's framing; --stats wins over the declaration; not both.
    const w = await resolveStatsSource(ROOT + "fixtures/world/model", "other.jsonl");
    assert.deepEqual(w.statsCorpus, { file: "other.jsonl", eosDelimit: true });
    const s = await resolveStatsSource(ROOT + "fixtures/world/model", undefined, "a.npz, b.npz");
    assert.deepEqual(s.stats, ["a.npz", "b.npz"]);
    assert.equal(s.statsCorpus, undefined);
    await assert.rejects(() => resolveStatsSource(tmp, "c.jsonl", "a.npz"), /not both/);
    const none = await resolveStatsSource(ROOT + "fixtures/world");
    assert.throws(() => checkStatsSource("rome", undefined, none), /field '--stats-corpus': rome: no corpus/);
    assert.throws(() => checkStatsSource("memit", { mom2_dataset: "wikipedia" }, none), InputError);
    checkStatsSource("rome", { mom2_adjustment: false }, none);
    checkStatsSource("memit", { mom2_dataset: "corpus.jsonl" }, none);
    checkStatsSource("ft-l", undefined, none);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("CLI: edit and eval without statistics stop with --stats-corpus; --stats takes a ROME .npz; a declared corpus follows the edited copy", async () => {
  const WORLD = ROOT + "fixtures/world/";
  const c = { ...cfg, vocabSize: (await loadTokenizer(WORLD)).vocabSize, nPositions: 24, nInner: 24 };
  const tmp = await Deno.makeTempDir({ prefix: "engram_stats_cli_" });
  try {
    await saveHFModel(`${tmp}/model`, {
      config: c,
      weights: randomGPT2(c, freshSeed()),
      tokenizerFrom: WORLD,
    });
    await Deno.writeTextFile(
      `${tmp}/hp.json`,
      JSON.stringify({ v_num_grad_steps: 2, context_template_length_params: [[3, 1]] }),
    );
    const edit = [
      "edit",
      "--method",
      "rome",
      "--model",
      `${tmp}/model`,
      "--hparams",
      `${tmp}/hp.json`,
      "--layers",
      "1",
    ];
    const req = ["--prompt", "{} was born in", "--subject", "Pilvun", "--target", "Sunmere"];
    const none = await engram(...edit, ...req, "--out", `${tmp}/o1`);
    assert.equal(none.code, 1, none.stderr);
    assert.match(none.stderr, /field '--stats-corpus': no corpus for the key statistics/);
    const ev = await engram(
      "eval",
      "--method",
      "ft-l,memit",
      "--model",
      `${tmp}/model`,
      "--data",
      `${WORLD}counterfact.json`,
      "--limit",
      "1",
    );
    assert.equal(ev.code, 1, ev.stderr);
    assert.match(ev.stderr, /memit: no corpus for the key statistics/);
    assert.doesNotMatch(ev.stderr, /eval ft-l/, "stops before any method runs");

    // ROME's file format for layer 1: the sum of k kᵀ over random keys and their count.
    const I = c.nInner, n = 3 * I;
    const sum = new Float32Array(I * I);
    const r = rng(freshSeed());
    for (let t = 0; t < n; t++) {
      const k = Array.from({ length: I }, () => r() - 0.5);
      for (let a = 0; a < I; a++) for (let b = 0; b < I; b++) sum[a * I + b] += k[a] * k[b];
    }
    const npyFile = (descr: string, shape: string, data: Uint8Array) => {
      let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
      while ((h.length + 11) % 64) h += " ";
      h += "\n";
      const out = new Uint8Array(10 + h.length + data.length);
      out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 255, h.length >> 8]);
      for (let i = 0; i < h.length; i++) out[10 + i] = h.charCodeAt(i);
      out.set(data, 10 + h.length);
      return out;
    };
    const cnt = new Uint8Array(8);
    new DataView(cnt.buffer).setBigInt64(0, BigInt(n), true);
    await Deno.mkdir(`${tmp}/rome_stats`);
    const npz = `${tmp}/rome_stats/transformer.h.1.mlp.c_proj_float32_mom2_100000.npz`;
    await Deno.writeFile(
      npz,
      zipSync({
        "mom2.mom2.npy": npyFile("<f4", `(${I}, ${I})`, new Uint8Array(sum.buffer)),
        "mom2.count.npy": npyFile("<i8", "()", cnt),
      }),
    );
    const viaNpz = await engram(
      ...edit,
      ...req,
      "--stats",
      `${tmp}/rome_stats`,
      "--out",
      `${tmp}/o2`,
      "--json",
    );
    assert.equal(viaNpz.code, 0, viaNpz.stderr);
    const info = JSON.parse(viaNpz.stdout).info;
    assert.equal(JSON.stringify(info).includes(npz), true, "the edit reports the statistics file it used");

    // Wrong shape: the file and the entry are named.
    const small = `${tmp}/transformer.h.1.mlp.c_proj_float32_mom2_100000.npz`;
    await Deno.writeFile(
      small,
      zipSync({
        "mom2.mom2.npy": npyFile("<f4", "(2, 2)", new Uint8Array(16)),
        "mom2.count.npy": npyFile("<i8", "()", cnt),
      }),
    );
    const bad = await engram(...edit, ...req, "--stats", small, "--out", `${tmp}/o3`);
    assert.equal(bad.code, 1);
    assert.ok(bad.stderr.includes(`${small}, field 'mom2.mom2': statistics of shape [2,2]`), bad.stderr);

    // A declared corpus is used without flags, and the edited copy points at it too.
    await Deno.writeTextFile(`${tmp}/corpus.txt`, "Pilvun was born in Sunmere . Tarvo lives in Pilvun .");
    await Deno.writeTextFile(`${tmp}/model/engram_stats.json`, JSON.stringify({ corpus: "../corpus.txt" }));
    const decl = await engram(...edit, ...req, "--stats-dir", `${tmp}/cache`, "--out", `${tmp}/o4`);
    assert.equal(decl.code, 0, decl.stderr);
    assert.deepEqual(await declaredStatsCorpus(`${tmp}/o4`), {
      file: `${tmp}/corpus.txt`,
      eosDelimit: false,
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
