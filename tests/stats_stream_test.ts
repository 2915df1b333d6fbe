/**
 * Key statistics at real sizes (src/edit/stats.ts): the corpus is streamed in windows of records (a
 * corpus of many windows equals float64 E[kkᵀ] over all its tokens), Kahan-compensated accumulation
 * equals it too, a token limit cuts the record that crosses it (FastMEMIT's reduced sample), and each
 * option gets its own cache entry. Bad options are typed errors.
 */
import assert from "node:assert/strict";
import { InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { layerStats, reducedSampleTokens, statsCacheFile, statsSumOptions } from "../src/edit/stats.ts";
import { secondMomentRef } from "../src/reference/key_stats.ts";
import { freshSeed } from "./_util.ts";
import { REF_EDIT_CONFIG as cfg, refWordTokenizer, rel, writeCorpus } from "./_edit_ref_util.ts";

const tok = refWordTokenizer(cfg.vocabSize);

/** The first `n` tokens of `seqs`, the record crossing `n` cut. */
function firstTokens(seqs: number[][], n: number): number[][] {
  const out: number[][] = [];
  let left = n;
  for (const s of seqs) {
    if (left <= 0) break;
    out.push(s.slice(0, left));
    left -= Math.min(left, s.length);
  }
  return out;
}

Deno.test("layerStats streams a corpus in windows (60 records, 7 per window); kahan and a token limit equal float64", async () => {
  const seed = freshSeed();
  const gpu = await getGpu();
  const weights = randomGPT2(cfg, seed);
  const model = TransformerModel.create(gpu, cfg, weights);
  const tmp = await Deno.makeTempDir({ prefix: "engram_stats_stream_" });
  try {
    const { file, seqs } = await writeCorpus(tmp, seed + 1, 60, tok, { format: "jsonl" });
    const base = { corpus: file, cacheDir: tmp, batchTokens: 64, windowRecords: 7 };
    const all = (await layerStats(model, tok, [1], base)).get(1)!;
    const ref = secondMomentRef(cfg, weights, seqs, 1);
    assert.equal(all.count, ref.count, "every token of both windows counted");
    const eAll = rel(all.mom2, ref.mom2);
    assert.ok(eAll < 1e-5, `streamed f32: rel err ${eAll} (seed ${seed})`);

    const kahan = (await layerStats(model, tok, [1], { ...base, accumulation: "kahan" })).get(1)!;
    assert.equal(kahan.cached, false, "kahan statistics are not the f32 ones from the cache");
    assert.notEqual(kahan.file, all.file);
    const eK = rel(kahan.mom2, ref.mom2);
    assert.ok(eK < 1e-5, `kahan: rel err ${eK} (seed ${seed})`);

    // A limit that falls inside a record: that record is cut, the count is exactly the limit.
    const limit = Math.floor(ref.count / 3) + 3;
    const cut = (await layerStats(model, tok, [1], { ...base, maxTokens: limit })).get(1)!;
    assert.equal(cut.count, limit);
    const refCut = secondMomentRef(cfg, weights, firstTokens(seqs, limit), 1);
    assert.equal(refCut.count, limit);
    const eC = rel(cut.mom2, refCut.mom2);
    assert.ok(eC < 1e-5, `maxTokens ${limit}: rel err ${eC} (seed ${seed})`);
    const again = (await layerStats(model, tok, [1], { ...base, maxTokens: limit })).get(1)!;
    assert.equal(again.cached, true);
    assert.equal(
      again.file,
      await statsCacheFile(model, tok, 1, file, { cacheDir: tmp, maxTokens: limit }),
      "statsCacheFile names the file layerStats used",
    );
    console.log(
      `streamed ${ref.count} tokens: f32 ${eAll.toExponential(2)}, kahan ${eK.toExponential(2)}, cut ${
        eC.toExponential(2)
      }`,
    );
  } finally {
    model.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("statsSumOptions: mom2_dtype float64 is kahan, mom2_reduced is 10 × d_k tokens; bad options are InputErrors", async () => {
  assert.deepEqual(statsSumOptions({}, 42), { accumulation: "f32" });
  assert.deepEqual(statsSumOptions({ mom2_dtype: "float64", mom2_reduced: true }, 42), {
    accumulation: "kahan",
    maxTokens: 420,
  });
  assert.equal(reducedSampleTokens(3072), 30720);
  const gpu = await getGpu();
  const model = TransformerModel.create(gpu, cfg, randomGPT2(cfg, 1));
  const tmp = await Deno.makeTempDir({ prefix: "engram_stats_bad_" });
  try {
    const { file } = await writeCorpus(tmp, 2, 5, tok, { format: "jsonl" });
    for (
      const [opts, field] of [
        [{ accumulation: "f64" }, "accumulation"],
        [{ maxTokens: 0 }, "maxTokens"],
        [{ windowRecords: 1.5 }, "windowRecords"],
      ] as const
    ) {
      await assert.rejects(
        () => layerStats(model, tok, [0], { corpus: file, cacheDir: tmp, ...opts } as never),
        (e: unknown) => e instanceof InputError && e.field === field,
      );
    }
  } finally {
    model.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
});
