/**
 * NAS norm anchoring (src/edit/nas.ts): the rescale against its definition written again in float64 here
 * (v* = v₀ + δ scaled to the anchor, δ' = v*' − v₀; dropped above 2× the anchor); with NAS off (absent or
 * `nas: false`) ROME's and MEMIT's deltas are bit-identical; with it on, ROME's solved v* has the anchor's
 * norm and MEMIT's z − h + v₀ (v₀ and h read on the float64 reference forward) has it too.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { NAS_EPS, nasAnchorOf, nasRescale } from "../src/edit/nas.ts";
import { romeEditor } from "../src/edit/rome.ts";
import { memitEditor } from "../src/edit/memit.ts";
import type { EditDeltas } from "../src/edit/apply.ts";
import { freshSeed, randn, rng } from "./_util.ts";
import { TINY_EDIT_CONFIG, wordTokenizer } from "./_edit_util.ts";

const cfg = TINY_EDIT_CONFIG;
const words = wordTokenizer(cfg.vocabSize);
const tok = {
  ...words,
  encode: (t: string) =>
    words.encode(t.replace(/(^|\s)is(?=\s|$)/g, "$1w10").replace(/(^|\s)a(?=\s|$)/g, "$1w11")),
};
const REQS = [
  { prompt: "w1 {} w3", subject: "w2", target_new: "w4 w5", ground_truth: "w6" },
  { prompt: "{} w7", subject: "w6", target_new: "w8", ground_truth: "w9" },
];

Deno.test("nasRescale equals the definition in float64; skip above 2x; anchor ≤ 0 leaves δ; trimmed mean", () => {
  const seed = freshSeed();
  const r = rng(seed);
  for (let t = 0; t < 20; t++) {
    const n = 3 + (t % 7);
    const v0 = randn(r, n), d = randn(r, n, 0.5 + t / 10);
    const vs = Array.from(v0, (x, i) => x + d[i]);
    const vn = Math.sqrt(vs.reduce((a, x) => a + x * x, 0));
    const anchor = vn * (0.3 + 0.1 * t); // below and above ‖v*‖/2
    const got = nasRescale(v0, d, anchor);
    if (vn > 2 * anchor) {
      assert.ok(got.skipped && got.delta.every((x) => x === 0), `draw ${t}: skipped (seed ${seed})`);
      continue;
    }
    assert.ok(!got.skipped);
    for (let i = 0; i < n; i++) {
      const want = vs[i] * anchor / (vn + NAS_EPS) - v0[i];
      assert.ok(
        Math.abs(got.delta[i] - want) <= 1e-12 * (1 + Math.abs(want)),
        `draw ${t} [${i}] (seed ${seed})`,
      );
    }
    const after = Math.sqrt(Array.from(v0, (x, i) => (x + got.delta[i]) ** 2).reduce((a, b) => a + b, 0));
    assert.ok(Math.abs(after - anchor) < 1e-9 * anchor && Math.abs(got.scaledNorm - anchor) < 1e-9 * anchor);
  }
  // skipFactor 0 never skips; anchor 0 returns δ as it is.
  const v0 = [3, 4], d = [30, 40];
  assert.ok(!nasRescale(v0, d, 1, 0).skipped);
  assert.deepEqual([...nasRescale(v0, d, 0).delta], d);
  // The reference's trimmed mean: 20 values drop the largest one.
  const xs = Array.from({ length: 20 }, (_, i) => i + 1);
  assert.equal(nasAnchorOf(xs), (19 * 20) / 2 / 19);
  assert.equal(nasAnchorOf([2, 4]), 3);
});

function sameDeltas(a: EditDeltas, b: EditDeltas, what: string) {
  assert.deepEqual([...a.deltas.keys()], [...b.deltas.keys()], what);
  for (const [k, d] of a.deltas) {
    const x = new Uint32Array(d.data.buffer), y = new Uint32Array(b.deltas.get(k)!.data.buffer);
    assert.ok(x.length === y.length && x.every((v, i) => v === y[i]), `${what}: ${k} differs`);
  }
}

Deno.test("NAS off is bit-identical (ROME, MEMIT); on, v* and z − h + v₀ have the anchor norm", async () => {
  const seed = freshSeed();
  const w = randomGPT2(cfg, seed, { std: 0.5 });
  const model = TransformerModel.create(await getGpu(), cfg, w);
  const dir = await Deno.makeTempDir({ prefix: "engram_nas_" });
  try {
    const r = rng(seed + 1);
    const lines = Array.from({ length: 40 }, () =>
      JSON.stringify({
        text: Array.from({ length: 3 + Math.floor(r() * 6) }, () => `w${Math.floor(r() * 12)}`).join(" "),
      }));
    await Deno.writeTextFile(`${dir}/c.jsonl`, lines.join("\n") + "\n");
    const base = { v_num_grad_steps: 4, context_template_length_params: [] as number[][] };
    const rome = (h: Record<string, unknown>) =>
      romeEditor(model, tok, REQS, { layers: [0], hparams: { ...base, mom2_adjustment: false, ...h } });
    const memit = (h: Record<string, unknown>) =>
      memitEditor(model, tok, REQS, {
        layers: [0],
        statsCorpus: `${dir}/c.jsonl`,
        statsDir: dir,
        hparams: { ...base, fact_token: "last", ...h },
      });
    sameDeltas(await rome({}), await rome({ nas: false }), "ROME nas:false");
    sameDeltas(await memit({}), await memit({ nas: false }), "MEMIT nas:false");

    // ROME on: each request's v* (= target_init + δ') has the given anchor's norm (skip factor off).
    const anchor = 1.7;
    const on = await rome({ nas: true, nas_norm: anchor, nas_skip_factor: 0 });
    for (let q = 0; q < REQS.length; q++) {
      const v = on.tensors.get(`request.${q}.v_star`)!.data;
      const nv = Math.hypot(...v);
      assert.ok(Math.abs(nv - anchor) < 1e-5 * anchor, `ROME request ${q}: ‖v*‖ ${nv} (seed ${seed})`);
    }
    // A tiny anchor with the reference's skip rule drops every request: a zero update.
    const dropped = await rome({ nas: true, nas_norm: 1e-6 });
    assert.ok([...dropped.deltas.values()].every((d) => d.data.every((x) => x === 0)));
    assert.deepEqual((dropped.info.nas as { skipped: number[] }).skipped, [0, 1]);

    // MEMIT on: z = h + δ' with ‖v₀ + δ'‖ = anchor, v₀ and h from the float64 forward at the last token.
    const mOn = await memit({ nas: true, nas_norm: anchor, nas_skip_factor: 0 });
    const z = mOn.tensors.get("z")!.data;
    const C = cfg.nEmbd;
    REQS.forEach((q, i) => {
      const ids = [cfg.vocabSize - 1, ...words.encode(q.prompt.replace("{}", q.subject))];
      const { cache } = gpt2ForwardRef(cfg, w, ids, {
        hooks: { capture: new Set(["mlp_out.0", "resid_post.0"]) },
      });
      const p = ids.length - 1;
      const v0 = cache["mlp_out.0"].slice(p * C, (p + 1) * C),
        h = cache["resid_post.0"].slice(p * C, (p + 1) * C);
      const vs = Array.from({ length: C }, (_, j) => z[i * C + j] - h[j] + v0[j]);
      const nv = Math.hypot(...vs);
      assert.ok(Math.abs(nv - anchor) < 1e-4 * anchor, `MEMIT request ${i}: ‖v*‖ ${nv} (seed ${seed})`);
    });
    sameDeltas(await memit({}), await memit({ nas: false }), "MEMIT nas:false after NAS runs");
  } finally {
    model.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});
