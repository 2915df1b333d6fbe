/**
 * The logit lens (src/locate/logit_lens.ts) against the same lens computed independently in float64:
 * the reference forward's residual streams (src/reference/transformer.ts), the final norm from the norm
 * twins, the unembedding and a log-softmax written here. At the last layer it must equal the model's own
 * output distribution. Plus the SVG (src/report/logit_lens.ts) and the JSON shape.
 */
import assert from "node:assert/strict";
import { InputError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { logitLens } from "../src/locate/logit_lens.ts";
import type { Family } from "../src/model/config.ts";
import { type FamilyVariant, randomFamilyConfig, randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { layerNormRef } from "../src/reference/layernorm.ts";
import { rmsNormRef } from "../src/reference/rmsnorm.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";
import { logitLensSvg } from "../src/report/logit_lens.ts";

const tok = { decode: (ids: number[]) => ids.map((i) => (i % 3 === 0 ? ` w${i}` : `t${i}`)).join("") };

/** The lens in float64: final norm, head (+ bias), log-softmax of each residual row. */
function lensRef(model: TransformerModel, resid: Float64Array, T: number): Float64Array[] {
  const c = model.config, spec = model.spec, W = model.weights;
  const C = c.nEmbd, V = c.vocabSize;
  const g = W.get(spec.finalNorm.weight)!.data;
  const normed = c.norm === "layernorm"
    ? layerNormRef(resid, g, W.get(spec.finalNorm.bias!)!.data, T, C, c.layerNormEpsilon).out
    : rmsNormRef(resid, g, T, C, c.layerNormEpsilon).out;
  const head = (W.get(spec.head) ?? W.get(spec.embed)!).data;
  const bias = spec.headBias ? W.get(spec.headBias)?.data : undefined;
  const rows: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    const z = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let s = bias ? bias[v] : 0;
      for (let i = 0; i < C; i++) s += normed[t * C + i] * head[v * C + i];
      z[v] = s;
    }
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
    rows.push(z.map((x) => x - lse));
  }
  return rows;
}

const CASES: Array<[Family, FamilyVariant, boolean]> = [
  ["gpt2", "gpt2", false],
  ["llama", "llama", true],
  ["gptj", "gptj", true],
];

for (const [family, variant, untied] of CASES) {
  Deno.test(`logit lens equals a float64 lens of the reference forward: ${variant}`, async () => {
    const gpu = await getGpu();
    const cfg = randomFamilyConfig(family, 4, variant);
    const weights = randomWeights(cfg, 8, { std: 0.5, untiedHead: untied });
    const model = TransformerModel.create(gpu, cfg, weights);
    const V = model.config.vocabSize, L = model.config.nLayer;
    const ids = [2, 5, 1, 6, 3].map((x) => x % V);
    const k = 3, target = 4 % V;
    const lens = await logitLens(model, tok, ids, { topK: k, target });
    assert.deepEqual(lens.shape, [L + 1, ids.length, k]);
    assert.deepEqual(lens.layers, ["embed", ...Array.from({ length: L }, (_, l) => String(l))]);
    const ref = transformerForwardRef(cfg, weights, ids, { capture: lens.sites });
    let err = 0;
    lens.sites.forEach((site, li) => {
      const rows = lensRef(model, ref.sites.get(site)!, ids.length);
      rows.forEach((row, t) => {
        const ti = lens.topIds[li][t];
        // Top ids are the reference's top ids (up to ties within float32 noise).
        const order = [...row.keys()].sort((a, b) => row[b] - row[a]);
        ti.forEach((id, j) => assert.ok(Math.abs(row[id] - row[order[j]]) < 1e-4, `${site} t ${t} k ${j}`));
        ti.forEach((id, j) => (err = Math.max(err, Math.abs(lens.topProbs[li][t][j] - Math.exp(row[id])))));
        assert.equal(lens.topTokens[li][t][0], tok.decode([ti[0]]));
        const rank = 1 + row.filter((x) => x > row[target] + 1e-9).length;
        assert.ok(Math.abs(lens.target!.rank[li][t] - rank) <= 1, `rank ${site} t ${t}`);
        err = Math.max(err, Math.abs(lens.target!.prob[li][t] - Math.exp(row[target])));
      });
    });
    console.log(`${variant}: max |p_lens - p_float64| = ${err.toExponential(2)}`);
    assert.ok(err < 1e-5, `lens vs float64 ${err}`);
    // The last layer is the model's own output distribution at every position.
    const { logits } = await model.forward([ids], { allLogits: true });
    for (let t = 0; t < ids.length; t++) {
      const z = logits!.subarray(t * V, (t + 1) * V);
      const m = Math.max(...z);
      const s = z.reduce((a, x) => a + Math.exp(x - m), 0);
      lens.topIds[L][t].forEach((id, j) => {
        assert.ok(Math.abs(lens.topProbs[L][t][j] - Math.exp(z[id] - m) / s) < 1e-6, `last layer t ${t}`);
      });
    }
    // JSON-able and plotted.
    const back = JSON.parse(JSON.stringify(lens));
    assert.deepEqual(back.topIds, lens.topIds);
    const svg = logitLensSvg(lens);
    assert.ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"));
    const cells = svg.match(/<rect [^>]*stroke="white"/g) ?? [];
    assert.equal(cells.length, (L + 1) * ids.length);
    assert.ok(svg.includes(`>${tok.decode([lens.topIds[L][ids.length - 1][0]]).replace(/ /g, "␣")}</text>`));
    assert.ok(logitLensSvg(lens, { colorBy: "target" }).includes("p(target)"));
    model.destroy();
  });
}

Deno.test("logit lens: bad topK or target is an InputError; a patch hook changes the lens", async () => {
  const gpu = await getGpu();
  const cfg = randomFamilyConfig("gpt2", 4);
  const model = TransformerModel.create(gpu, cfg, randomWeights(cfg, 8, { std: 0.5 }));
  const V = cfg.vocabSize;
  await assert.rejects(() => logitLens(model, tok, [1, 2], { topK: 0 }), InputError);
  await assert.rejects(() => logitLens(model, tok, [1, 2], { target: V }), InputError);
  const a = await logitLens(model, tok, [1, 2, 3], { topK: 1 });
  const C = cfg.nEmbd;
  const b = await logitLens(model, tok, [1, 2, 3], {
    topK: 1,
    hooks: { patch: [{ site: "embed", rows: [[0, 2]], values: new Float32Array(C).fill(3) }] },
  });
  assert.deepEqual(a.topProbs[0][0], b.topProbs[0][0]);
  assert.notDeepEqual(a.topProbs[0][2], b.topProbs[0][2]);
  model.destroy();
});
