/**
 * ROME and MEMIT on a tiny Llama (GQA, SwiGLU, RMS norm, rotary, nn.Linear [out, in] weights) and a
 * tiny NeoX (parallel residual from two norms, partial rotary, layer norm, exact-erf GELU, fused
 * per-head q/k/v) against the float64 references (src/reference/rome.ts, memit.ts, edit_value.ts,
 * key_stats.ts, which run the family-generic float64 forward and tail). The GPU editors' ΔW, k*, v*
 * (ROME) and z, (λC + KKᵀ)⁻¹K, residuals, ΔW per layer (MEMIT) are compared by relative error; the
 * editor's delta must be on exactly the family's down projection (down_proj / dense_4h_to_h), the
 * editor must leave the model unchanged, applying must change only that weight (host and GPU copies
 * equal), and restoring must be bit-exact. Setup as tests/rome_reference_test.ts and
 * tests/memit_reference_test.ts (same corpus, templates read from the editor's result, a v_lr at which
 * the clamp binds).
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { readTensor } from "../src/gpu/tensor.ts";
import { applyDeltas, modelWeights, restoreWeights } from "../src/edit/apply.ts";
import { getEditor } from "../src/edit/editors.ts";
import type { ModelConfig, WeightMap } from "../src/model/config.ts";
import { familySpec } from "../src/model/families/mod.ts";
import { randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import type { ValueHparams } from "../src/reference/edit_value.ts";
import { secondMomentRef } from "../src/reference/key_stats.ts";
import { memitRef } from "../src/reference/memit.ts";
import { romeRef } from "../src/reference/rome.ts";
import { copyWeights } from "./_edit_util.ts";
import { freshSeed } from "./_util.ts";
import {
  clampBindingLr,
  cosine,
  NO_PREFIX,
  refRequests,
  refWordTokenizer,
  rel,
  usedTemplates,
  writeCorpus,
} from "./_edit_ref_util.ts";

const common = { nLayer: 4, vocabSize: 47, nPositions: 20 };

/** Tiny odd-sized models: 4 layers (MEMIT edits 0–2; the loss needs a layer after the edited one). */
const FAMILIES: Record<string, ModelConfig> = {
  llama: {
    ...common,
    family: "llama",
    architecture: "LlamaForCausalLM",
    nHead: 4,
    nKvHead: 2,
    headDim: 6,
    nEmbd: 22,
    nInner: 29,
    layerNormEpsilon: 1e-5,
    norm: "rmsnorm",
    activation: "silu",
    rope: { dim: 6, style: "half", theta: 10000, maxPositionEmbeddings: 20 },
    qkvBias: false,
    attnOutBias: false,
    mlpBias: false,
  },
  neox: {
    ...common,
    family: "neox",
    architecture: "GPTNeoXForCausalLM",
    nHead: 3,
    nEmbd: 18,
    nInner: 25,
    layerNormEpsilon: 1e-5,
    norm: "layernorm",
    activation: "gelu_erf",
    rope: { dim: 2, style: "half", theta: 10000, maxPositionEmbeddings: 20 },
    parallelResidual: "two_norms",
  },
};

const DOWN: Record<string, RegExp> = {
  llama: /^layers\.\d+\.mlp\.down_proj\.weight$/,
  neox: /^layers\.\d+\.mlp\.dense_4h_to_h\.weight$/,
};

const BASE: ValueHparams = {
  v_num_grad_steps: 7,
  v_lr: 0,
  v_weight_decay: 0.5,
  clamp_norm_factor: 0.3,
  kl_factor: 0.0625,
  early_stop_loss: 5e-2,
};

function originalMap(w: WeightMap, before: Map<string, Float32Array>): WeightMap {
  return new Map([...w].map(([k, v]) => [k, { shape: [...v.shape], data: before.get(k)! }]));
}

/** The GPU copy of checkpoint tensor `name` (a slice of a fused GPU tensor for Llama's q/k/v). */
async function gpuCopy(model: TransformerModel, name: string): Promise<Float32Array> {
  const r = model.weightRef(name);
  const all = await readTensor(model.weight(r.gpuName));
  return all.slice(r.offset, r.offset + r.numel);
}

/** The model's host and GPU copies of every weight equal `want` bit for bit. */
async function assertWeights(model: TransformerModel, want: Map<string, Float32Array>, what: string) {
  for (const [k, v] of want) {
    const host = model.weights.get(k)!.data;
    assert.ok(host.every((x, i) => Object.is(x, v[i])), `${what}: host ${k}`);
    const gpu = await gpuCopy(model, k);
    assert.ok(gpu.every((x, i) => Object.is(x, v[i])), `${what}: GPU ${k}`);
  }
}

/** Applies `deltas`, checks that exactly `names` changed (host = GPU), restores, checks bit-exactness. */
async function applyAndRestore(
  model: TransformerModel,
  deltas: Parameters<typeof applyDeltas>[1],
  before: Map<string, Float32Array>,
  names: string[],
) {
  const target = modelWeights(model);
  const applied = applyDeltas(target, deltas);
  assert.deepEqual(applied.weights, names);
  for (const [k, v] of before) {
    const now = model.weights.get(k)!.data;
    if (names.includes(k)) {
      assert.ok(now.some((x, i) => x !== v[i]), `${k} did not change`);
      const gpu = await gpuCopy(model, k);
      assert.ok(gpu.every((x, i) => x === now[i]), `${k}: GPU and host differ`);
    } else assert.ok(now.every((x, i) => Object.is(x, v[i])), `${k} changed`);
  }
  restoreWeights(target, applied.originals);
  await assertWeights(model, before, "after restore");
}

for (const [fam, cfg] of Object.entries(FAMILIES)) {
  const tok = refWordTokenizer(cfg.vocabSize);
  const spec = familySpec(cfg);

  Deno.test(`${fam}: GPU ROME ΔW, k*, v* equal the float64 reference (2 sequential requests)`, async () => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const seed = freshSeed();
      const gpu = await getGpu();
      const weights = randomWeights(cfg, seed, { untiedHead: true });
      const before = copyWeights(weights);
      const original = originalMap(weights, before);
      const model = TransformerModel.create(gpu, cfg, weights);
      const tmp = await Deno.makeTempDir({ prefix: "engram_famrome_" });
      try {
        const { file, seqs } = await writeCorpus(tmp, seed + 1, 90, tok, { nPositions: cfg.nPositions });
        const requests = refRequests(seed + 2, 2, cfg.vocabSize);
        const layer = 2;
        const HP = { ...BASE, v_lr: clampBindingLr(tok, original, requests[0], `mlp_out.${layer}`, cfg) };
        const name = spec.layer(model.config, layer).down.weight;
        assert.match(name, DOWN[fam]);
        const computed = await getEditor("rome")(model, tok, requests, {
          layers: [layer],
          statsCorpus: file,
          statsDir: tmp,
          hparams: {
            ...HP,
            ...NO_PREFIX,
            mom2_adjustment: true,
            mom2_n_samples: 1000,
            context_template_length_params: [[3, 2]],
            fact_token: "subject_last",
          },
        });
        await assertWeights(model, before, "after the editor");
        assert.deepEqual([...computed.deltas.keys()], [name], "ROME's delta is on the down projection only");
        const templates = usedTemplates(computed.info).flat();
        assert.equal(templates.length, 3);
        const { mom2 } = secondMomentRef(cfg, original, seqs, layer);
        const ref = romeRef(cfg, original, tok, requests, { layer, templates, mom2, hp: HP });
        assert.equal(ref.weight, name);

        const d = computed.deltas.get(name)!;
        assert.deepEqual(d.shape, [cfg.nEmbd, cfg.nInner], "nn.Linear [out, in] layout");
        const errs: Record<string, number> = { dW: rel(d.data, ref.dW) };
        ref.steps.forEach((s, r) => {
          errs[`k*${r}`] = rel(computed.tensors.get(`request.${r}.k_star`)!.data, s.kStar);
          errs[`v*${r}`] = rel(computed.tensors.get(`request.${r}.v_star`)!.data, s.vStar);
          errs[`u${r}`] = rel(computed.tensors.get(`request.${r}.u`)!.data, s.u);
        });
        const step0 = ref.steps[0];
        console.log(
          `${fam} ROME rel err ${
            Object.entries(errs).map(([k, e]) => `${k} ${e.toExponential(2)}`).join(", ")
          } ` +
            `(seed ${seed}); ref steps ${ref.steps.map((s) => s.value.steps)}, clamped ${
              ref.steps.map((s) => s.value.clamped)
            }, cos(C⁻¹k*, k*) ${cosine(step0.u, step0.kStar).toFixed(3)}`,
        );
        const failing = Object.entries(errs).filter(([, e]) => !(e < 2e-4));
        if (failing.length > 0 && attempt < 2 && ref.steps.some((_, r) => errs[`v*${r}`] > 1e-5)) {
          // Adam's first steps on coordinates whose gradient is near zero follow rounding, so the f32 and
          // f64 optimisations of v* can part, and C⁻¹ amplifies it in ΔW. A bug fails every seed; such a
          // draw is replaced by another one.
          console.log(`${fam}: v* parted from the float64 optimisation (seed ${seed}); drawing another seed`);
          continue;
        }
        for (const [k, e] of Object.entries(errs)) {
          assert.ok(e < 2e-4, `${k}: relative error ${e} (seed ${seed})`);
        }
        assert.ok(step0.value.clamped > 0, "clamp never bound");
        assert.ok(ref.steps.every((s) => s.value.kl > 0 && s.value.wd > 0));
        assert.ok(cosine(step0.u, step0.kStar) < 0.9, "C⁻¹k* ∥ k*: the case cannot tell C from no C");
        await applyAndRestore(model, computed.deltas, before, [name]);
        return;
      } finally {
        model.destroy();
        await Deno.remove(tmp, { recursive: true });
      }
    }
  });

  Deno.test(`${fam}: GPU MEMIT over 3 layers equals the float64 reference (z, A⁻¹K, resid, ΔW)`, async () => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const seed = freshSeed();
      const gpu = await getGpu();
      const weights = randomWeights(cfg, seed, { untiedHead: true });
      const before = copyWeights(weights);
      const original = originalMap(weights, before);
      const model = TransformerModel.create(gpu, cfg, weights);
      const tmp = await Deno.makeTempDir({ prefix: "engram_fammemit_" });
      const LAYERS = [0, 1, 2], n = 3;
      try {
        const { file, seqs } = await writeCorpus(tmp, seed + 1, 90, tok, { nPositions: cfg.nPositions });
        const requests = refRequests(seed + 2, n, cfg.vocabSize);
        const zLayer = LAYERS[LAYERS.length - 1];
        const HP = {
          ...BASE,
          v_num_grad_steps: 6,
          v_lr: clampBindingLr(tok, original, requests[0], `resid_post.${zLayer}`, cfg),
        };
        const mom2 = new Map(LAYERS.map((l) => [l, secondMomentRef(cfg, original, seqs, l).mom2]));
        const lambda = n * 0.65;
        const computed = await getEditor("memit")(model, tok, requests, {
          layers: LAYERS,
          statsCorpus: file,
          statsDir: tmp,
          hparams: {
            ...HP,
            ...NO_PREFIX,
            mom2_update_weight: lambda,
            mom2_n_samples: 1000,
            context_template_length_params: [[3, 5]],
            fact_token: "subject_last",
          },
        });
        await assertWeights(model, before, "after the editor");
        const names = LAYERS.map((l) => spec.layer(model.config, l).down.weight);
        names.forEach((nm) => assert.match(nm, DOWN[fam]));
        assert.deepEqual(
          [...computed.deltas.keys()],
          names,
          "MEMIT's deltas are on the down projections only",
        );
        const groups = usedTemplates(computed.info);
        assert.deepEqual(groups.map((g) => g.length), [1, 5]);
        const ref = memitRef(cfg, original, tok, requests, { layers: LAYERS, groups, mom2, lambda, hp: HP });
        const errs: Record<string, number> = {
          z: rel(computed.tensors.get("z")!.data, Float64Array.from(ref.z.flatMap((z) => [...z]))),
        };
        ref.layers.forEach((l, i) => {
          assert.equal(l.weight, names[i]);
          errs[`X${l.layer}`] = rel(computed.tensors.get(`layer.${l.layer}.x`)!.data, l.X);
          errs[`resid${l.layer}`] = rel(
            computed.tensors.get(`layer.${l.layer}.resid`)!.data,
            Float64Array.from(l.resid.flatMap((r) => [...r])),
          );
          const d = computed.deltas.get(l.weight)!;
          assert.deepEqual(d.shape, [cfg.nEmbd, cfg.nInner], "nn.Linear [out, in] layout");
          errs[`dW${l.layer}`] = rel(d.data, l.dW);
        });
        console.log(
          `${fam} MEMIT rel err ${
            Object.entries(errs).map(([k, e]) => `${k} ${e.toExponential(2)}`).join(", ")
          } ` +
            `(seed ${seed}); z steps ${ref.values.map((v) => v.steps)}, clamped ${
              ref.values.map((v) => v.clamped)
            }`,
        );
        const failing = Object.entries(errs).filter(([, e]) => !(e < 2e-4));
        if (failing.length > 0 && attempt < 2 && errs.z > 1e-5) {
          // As in the ROME test: Adam's first steps on coordinates whose gradient is near zero follow
          // rounding, so the f32 and f64 optimisations of z can part (the clamp then binds at other steps);
          // the solve amplifies it. A bug fails every seed; such a draw is replaced by another one.
          console.log(`${fam}: z parted from the float64 optimisation (seed ${seed}); drawing another seed`);
          continue;
        }
        for (const [k, e] of Object.entries(errs)) {
          assert.ok(e < 2e-4, `${k}: relative error ${e} (seed ${seed})`);
        }
        assert.ok(ref.values[0].clamped > 0, "clamp never bound");
        await applyAndRestore(model, computed.deltas, before, names);
        return;
      } finally {
        model.destroy();
        await Deno.remove(tmp, { recursive: true });
      }
    }
  });
}
