/**
 * ROME's `key` hparam: "original" (kmeng01/rome) divides by the bare prompt's key k₀ and subtracts its
 * output, so the edited layer maps k₀ to v*; "consistent" (r-ROME, EasyEdit `r_rome`) uses the
 * template-averaged key k* in both places, so it maps k* itself to v*. The keys are recomputed here from
 * the float64 reference forward, and the edited layer's output W'k + b in float64 from the edited weights.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { loadTokenizer } from "../src/io/tokenizer.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { randomGPT2 } from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { applyComputed } from "../src/edit/apply.ts";
import { EDITORS } from "../src/edit/editors.ts";
import { tokenizePrompt } from "../src/edit/compute.ts";
import { readRequests } from "../src/edit/requests.ts";
import { ConfigError, InputError } from "../src/errors.ts";
import { freshSeed } from "./_util.ts";

const WORLD = new URL("../fixtures/world/", import.meta.url).pathname;
const tokenizer = await loadTokenizer(WORLD);
const cfg = {
  nLayer: 2,
  nHead: 2,
  nEmbd: 16,
  vocabSize: tokenizer.vocabSize,
  nPositions: 24,
  nInner: 64,
  layerNormEpsilon: 1e-5,
};
const [request] = (await readRequests(`${WORLD}/counterfact.json`)).slice(0, 1);

/** float64 key (c_proj input at the subject's last token) of `template` filled with the request. */
function refKey(weights: Parameters<typeof gpt2ForwardRef>[1], template: string): Float64Array {
  const p = tokenizePrompt(
    tokenizer,
    cfg.nPositions,
    template,
    request.prompt,
    request.subject,
    undefined,
    true,
  );
  const I = cfg.nInner;
  const a =
    gpt2ForwardRef(cfg, weights, p.ids, { hooks: { capture: new Set(["mlp_post.0"]) } }).cache["mlp_post.0"];
  return Float64Array.from({ length: I }, (_, i) => a[p.lookup * I + i]);
}

/** W k + b in float64 (Conv1D layout W [nInner, nEmbd]). */
function layerOut(w: Float32Array, b: Float32Array, k: Float64Array): Float64Array {
  const C = b.length;
  const out = Float64Array.from(b);
  for (let i = 0; i < k.length; i++) for (let j = 0; j < C; j++) out[j] += k[i] * w[i * C + j];
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const maxAbs = (a: ArrayLike<number>) => maxDiff(a, new Float64Array(a.length));

Deno.test("ROME key 'consistent' (r-ROME) maps the template-averaged key k* to v*; 'original' maps k0", async () => {
  const seed = freshSeed();
  const weights = randomGPT2(cfg, seed);
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  const tmp = await Deno.makeTempDir({ prefix: "engram_rrome_" });
  const corpus = `${tmp}/c.jsonl`;
  await Deno.writeTextFile(
    corpus,
    (await Deno.readTextFile(`${WORLD}/train.jsonl`)).split("\n").slice(0, 300).join("\n"),
  );
  try {
    const W = "h.0.mlp.c_proj.weight", B = "h.0.mlp.c_proj.bias";
    const run = (key: string) =>
      EDITORS.get("rome")!(model, tokenizer, [request], {
        layers: [0],
        statsCorpus: corpus,
        statsDir: tmp,
        hparams: { v_num_grad_steps: 6, context_template_length_params: [[3, 2]], key },
      });
    const orig = await run("original");
    const cons = await run("consistent");
    assert.equal(orig.hparams.key, "original");
    assert.equal(cons.hparams.key, "consistent");
    // Same u and v* (the key choice only enters the right vector).
    const vStar = orig.tensors.get("request.0.v_star")!.data;
    assert.ok(
      maxDiff(vStar, cons.tensors.get("request.0.v_star")!.data) <= 1e-6 * Math.max(1, maxAbs(vStar)),
    );
    assert.ok(maxDiff(orig.tensors.get("request.0.u")!.data, cons.tensors.get("request.0.u")!.data) < 1e-6);
    // k* from the float64 forward over the templates; k0 from the bare prompt.
    const templates = orig.info.context_templates as string[];
    assert.equal(templates.length, 3);
    const keys = templates.map((t) => refKey(weights, t));
    const kStar = Float64Array.from(keys[0], (_, i) => keys.reduce((s, k) => s + k[i], 0) / keys.length);
    const k0 = refKey(weights, "{}");
    assert.ok(maxDiff(kStar, k0) > 1e-3 * maxAbs(k0), `seed ${seed}: the prefixes must move the key`);
    const dO = orig.deltas.get(W)!.data, dC = cons.deltas.get(W)!.data;
    assert.ok(maxDiff(dO, dC) > 1e-3 * maxAbs(dO), `seed ${seed}: the two updates must differ`);
    const b = model.weights.get(B)!.data;
    const tol = 1e-4 * Math.max(1, maxAbs(vStar));
    const edited = (computed: typeof orig) => {
      const h = applyComputed(model, computed);
      const w = model.weights.get(W)!.data.slice();
      h.restore();
      return w;
    };
    const wO = edited(orig), wC = edited(cons);
    const errC = maxDiff(layerOut(wC, b, kStar), vStar), errO = maxDiff(layerOut(wO, b, k0), vStar);
    assert.ok(errC <= tol, `seed ${seed}: consistent |W'k* + b − v*| = ${errC}`);
    assert.ok(errO <= tol, `seed ${seed}: original |W'k0 + b − v*| = ${errO}`);
    // The original update does not map the averaged key to v* (the inconsistency r-ROME removes).
    const missO = maxDiff(layerOut(wO, b, kStar), vStar);
    assert.ok(missO > 100 * tol, `seed ${seed}: original |W'k* + b − v*| = ${missO} should be large`);
  } finally {
    model.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("ROME key: bad values are ConfigErrors; MEMIT refuses the ROME-only 'consistent'", async () => {
  const model = TransformerModel.create(await getGpu(), cfg, randomGPT2(cfg, 5));
  try {
    const opts = (key: unknown) => ({ layers: [0], hparams: { key } as Record<string, unknown> });
    await assert.rejects(EDITORS.get("rome")!(model, tokenizer, [request], opts("averaged")), ConfigError);
    await assert.rejects(EDITORS.get("memit")!(model, tokenizer, [request], opts("consistent")), InputError);
  } finally {
    model.destroy();
  }
});
