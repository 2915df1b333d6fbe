/**
 * Key statistics and u's direction against float64: `layerStats` (src/edit/stats.ts) equals
 * C = Σ kkᵀ / count of keys computed with the float64 forward on the same tokens (JSONL with and without
 * end-of-text delimiters, plain text in context-sized chunks, a sample limit, several layers in one
 * pass, the cache); and ROME's left vector — read off the rank-one ΔW, so independently of what the
 * editor reports — points along C⁻¹k* (or k* without mom2_adjustment), on a case where the two differ.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { applyEdit } from "../src/edit/editors.ts";
import { layerStats } from "../src/edit/stats.ts";
import { refPrompt } from "../src/reference/edit_value.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { secondMomentRef } from "../src/reference/key_stats.ts";
import { solveRef } from "../src/reference/solve.ts";
import { copyWeights } from "./_edit_util.ts";
import { freshSeed } from "./_util.ts";
import {
  cosine,
  NO_PREFIX,
  REF_EDIT_CONFIG as cfg,
  refRequests,
  refWordTokenizer,
  rel,
  usedTemplates,
  weightDelta,
  writeCorpus,
} from "./_edit_ref_util.ts";

const tok = refWordTokenizer(cfg.vocabSize);
const I = cfg.nInner, C = cfg.nEmbd;

for (
  const [format, eosDelimit] of [["jsonl", true], ["jsonl", false], ["text", false]] as const
) {
  Deno.test(`layerStats (${format}${format === "jsonl" ? `, eosDelimit ${eosDelimit}` : ""}) equals float64 E[kkᵀ] over the same tokens`, async () => {
    const seed = freshSeed();
    const gpu = await getGpu();
    const weights = randomGPT2(cfg, seed);
    const model = TransformerModel.create(gpu, cfg, weights);
    const tmp = await Deno.makeTempDir({ prefix: "engram_stats_" });
    try {
      const { file, seqs } = await writeCorpus(tmp, seed + 1, 50, tok, { format, eosDelimit });
      const maxSamples = seqs.length - 7; // the limit counts records (JSONL lines / text chunks)
      const layers = [0, 2];
      // Small batches: many forward passes per length bucket, accumulated on the GPU.
      const opts = { corpus: { file, eosDelimit }, maxSamples, cacheDir: tmp, batchTokens: 64 };
      const got = await layerStats(model, tok, layers, opts);
      const errs = layers.map((l) => {
        const ref = secondMomentRef(cfg, weights, seqs.slice(0, maxSamples), l);
        const st = got.get(l)!;
        assert.equal(st.count, ref.count, `layer ${l}: token count`);
        assert.equal(st.cached, false);
        return rel(st.mom2, ref.mom2);
      });
      console.log(
        `layerStats ${format}/${eosDelimit}: rel err per layer ${errs.map((e) => e.toExponential(2))}`,
      );
      errs.forEach((e, i) => assert.ok(e < 1e-5, `layer ${layers[i]}: rel err ${e} (seed ${seed})`));
      // Second call: from the cache, the same matrices.
      const again = await layerStats(model, tok, layers, opts);
      for (const l of layers) {
        assert.equal(again.get(l)!.cached, true, `layer ${l}: cached`);
        assert.ok(again.get(l)!.mom2.every((x, i) => x === got.get(l)!.mom2[i]), `layer ${l}: cache differs`);
      }
    } finally {
      model.destroy();
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

for (const adjust of [true, false]) {
  Deno.test(`ROME's u (from the rank-one ΔW) is along ${adjust ? "C⁻¹k*" : "k* (mom2_adjustment false)"}`, async () => {
    const seed = freshSeed();
    const gpu = await getGpu();
    const weights = randomGPT2(cfg, seed);
    const before = copyWeights(weights);
    const original = new Map(
      [...weights].map(([k, v]) => [k, { shape: [...v.shape], data: before.get(k)! }]),
    );
    const model = TransformerModel.create(gpu, cfg, weights);
    const tmp = await Deno.makeTempDir({ prefix: "engram_udir_" });
    try {
      const { file, seqs } = await writeCorpus(tmp, seed + 1, 90, tok);
      const [req] = refRequests(seed + 2, 1, cfg.vocabSize);
      const layer = 1;
      const h = await applyEdit(model, tok, "rome", [req], {
        layers: [layer],
        statsCorpus: file,
        statsDir: tmp,
        hparams: {
          ...NO_PREFIX,
          mom2_adjustment: adjust,
          v_num_grad_steps: 2, // one Adam step: δ ≠ 0, so ΔW = u rightᵀ ≠ 0
          context_template_length_params: [[3, 2]],
          fact_token: "subject_last",
        },
      });
      const dW = weightDelta(model.weights, before, `h.${layer}.mlp.c_proj.weight`); // [I, C]
      // The left factor: the column of ΔW with the largest norm (every column is a multiple of u).
      const col = (c: number) => Float64Array.from({ length: I }, (_, a) => dW[a * C + c]);
      let best = 0;
      for (let c = 1; c < C; c++) if (Math.hypot(...col(c)) > Math.hypot(...col(best))) best = c;
      const u = col(best);
      for (let c = 0; c < C; c++) {
        if (Math.hypot(...col(c)) > 1e-3 * Math.hypot(...u)) {
          assert.ok(Math.abs(cosine(col(c), u)) > 1 - 1e-5, `ΔW is not rank one (column ${c})`);
        }
      }
      const templates = usedTemplates(h.result.info).flat();
      const site = `mlp_post.${layer}`;
      const kStar = new Float64Array(I);
      for (const t of templates) {
        const p = refPrompt(tok, t, req.prompt, req.subject);
        const k = gpt2ForwardRef(cfg, original, p.ids, { hooks: { capture: new Set([site]) } }).cache[site];
        for (let a = 0; a < I; a++) kStar[a] += k[p.lookup * I + a] / templates.length;
      }
      const { mom2 } = secondMomentRef(cfg, original, seqs, layer);
      const ck = solveRef(mom2, kStar, I, 1);
      const want = adjust ? ck : kStar, other = adjust ? kStar : ck;
      const cWant = Math.abs(cosine(u, want)), cOther = Math.abs(cosine(u, other));
      console.log(
        `u direction (adjust ${adjust}): |cos(u, expected)| = 1 − ${(1 - cWant).toExponential(2)}, ` +
          `|cos(u, other)| = ${cOther.toFixed(3)} (seed ${seed})`,
      );
      assert.ok(
        Math.abs(cosine(ck, kStar)) < 0.9,
        `C⁻¹k* ∥ k*: the case cannot tell them apart (seed ${seed})`,
      );
      assert.ok(
        1 - cWant < 1e-5,
        `u off ${adjust ? "C⁻¹k*" : "k*"}: 1 − |cos| = ${1 - cWant} (seed ${seed})`,
      );
    } finally {
      model.destroy();
      await Deno.remove(tmp, { recursive: true });
    }
  });
}
