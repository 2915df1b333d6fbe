/**
 * EMMET on the GPU against its float64 twin (src/reference/emmet.ts: the reference's literal inverses),
 * on a tiny GPT-2 (Conv1D) and a tiny Llama (nn.Linear), over two layers so the residual split and the
 * recomputed keys matter, with w, λ_E at which every term of D weighs; and the equality constraints:
 * with λ_E = 0 every edited key gets exactly its residual (ΔW k_j = r_j), and with λ_E > 0 exactly
 * r (I − λ_E D⁻¹).
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { getEditor } from "../src/edit/editors.ts";
import { emmetDefaults } from "../src/edit/emmet_hparams.ts";
import { publishedModel } from "../src/edit/hparams.ts";
import { toKeyValue } from "../src/edit/target.ts";
import { familySpec } from "../src/model/families/mod.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import type { ValueHparams } from "../src/reference/edit_value.ts";
import { emmetRef } from "../src/reference/emmet.ts";
import { secondMomentRef } from "../src/reference/key_stats.ts";
import { solveRef } from "../src/reference/solve.ts";
import { copyWeights } from "./_edit_util.ts";
import { freshSeed } from "./_util.ts";
import {
  clampBindingLr,
  NO_PREFIX,
  REF_EDIT_CONFIG,
  refRequests,
  refWordTokenizer,
  rel,
  usedTemplates,
  writeCorpus,
} from "./_edit_ref_util.ts";

const LLAMA: ModelConfig = {
  nLayer: 4,
  vocabSize: 47,
  nPositions: 20,
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
};
const CONFIGS: Record<string, ModelConfig> = { gpt2: { ...REF_EDIT_CONFIG, family: "gpt2" }, llama: LLAMA };

const BASE: ValueHparams = {
  v_num_grad_steps: 6,
  v_lr: 0,
  v_weight_decay: 0.5,
  clamp_norm_factor: 0.3,
  kl_factor: 0.0625,
  early_stop_loss: 5e-2,
};
const LAYERS = [1, 2];
const N = 3;

/** ΔW_kv k for each key (float64). */
function applyKv(dKV: ArrayLike<number>, K: Float64Array[], I: number, C: number): Float64Array[] {
  return K.map((k) => {
    const out = new Float64Array(C);
    for (let a = 0; a < I; a++) for (let c = 0; c < C; c++) out[c] += dKV[a * C + c] * k[a];
    return out;
  });
}

for (const [fam, cfg] of Object.entries(CONFIGS)) {
  const tok = refWordTokenizer(cfg.vocabSize);
  for (const emmetLambda of [0, 4]) {
    Deno.test(`${fam}: GPU EMMET ΔW per layer equals the float64 twin; equality constraints (λ_E ${emmetLambda})`, async () => {
      const seed = freshSeed();
      const gpu = await getGpu();
      const weights = randomWeights(cfg, seed, { untiedHead: true });
      const before = copyWeights(weights);
      const original = new Map(
        [...weights].map(([k, v]) => [k, { shape: [...v.shape], data: before.get(k)! }]),
      );
      const model = TransformerModel.create(gpu, cfg, weights);
      const tmp = await Deno.makeTempDir({ prefix: "engram_emmet_" });
      try {
        const { file, seqs } = await writeCorpus(tmp, seed + 1, 90, tok, { nPositions: cfg.nPositions });
        const requests = refRequests(seed + 2, N, cfg.vocabSize);
        const HP = {
          ...BASE,
          v_lr: clampBindingLr(tok, original, requests[0], `resid_post.${LAYERS[1]}`, cfg),
        };
        // w = 2: D's diagonal ≈ nInner / 2, so λ_E = 4 relaxes the constraints visibly; μ = 0.05 enters C'.
        const o = { mom2UpdateWeight: 2, updateNormLambda: 0.05, emmetLambda };
        const computed = await getEditor("emmet")(model, tok, requests, {
          layers: LAYERS,
          statsCorpus: file,
          statsDir: tmp,
          hparams: {
            ...HP,
            ...NO_PREFIX,
            mom2_update_weight: o.mom2UpdateWeight,
            update_norm_lambda: o.updateNormLambda,
            emmet_lambda: o.emmetLambda,
            mom2_n_samples: 1000,
            context_template_length_params: [[3, 5]],
            fact_token: "subject_last",
          },
        });
        for (const [k, v] of before) {
          assert.ok(model.weights.get(k)!.data.every((x, i) => Object.is(x, v[i])), `${k} changed`);
        }
        const groups = usedTemplates(computed.info);
        const mom2 = new Map(LAYERS.map((l) => [l, secondMomentRef(cfg, original, seqs, l).mom2]));
        const ref = emmetRef(cfg, original, tok, requests, { layers: LAYERS, groups, mom2, ...o, hp: HP });
        const I = cfg.nInner, C = cfg.nEmbd;
        const spec = familySpec(model.config);
        const lines: string[] = [];
        ref.layers.forEach((L) => {
          const proj = spec.layer(model.config, L.layer).down;
          assert.equal(proj.weight, L.weight);
          const d = computed.deltas.get(L.weight)!;
          const e = rel(d.data, L.dW);
          // Equality constraints, on the twin (exact algebra) and on the GPU delta (float32).
          const refOut = applyKv(L.dKV, L.K, I, C);
          const gpuOut = applyKv(toKeyValue(proj, d.data), L.K, I, C);
          let want: Float64Array[] = L.resid;
          if (emmetLambda > 0) {
            // r (I − λ_E D⁻¹), D = Kᵀ(wC + μI)⁻¹K + λ_E I, from the twin's inputs.
            const Cp = Float64Array.from(mom2.get(L.layer)!, (x) => o.mom2UpdateWeight * x);
            for (let a = 0; a < I; a++) Cp[a * I + a] += o.updateNormLambda;
            const Kc = new Float64Array(I * N);
            L.K.forEach((k, r) => k.forEach((x, a) => (Kc[a * N + r] = x)));
            const Y = solveRef(Cp, Kc, I, N);
            const D = new Float64Array(N * N);
            for (let r = 0; r < N; r++) {
              for (let s = 0; s < N; s++) {
                for (let a = 0; a < I; a++) D[r * N + s] += L.K[r][a] * Y[a * N + s];
              }
              D[r * N + r] += emmetLambda;
            }
            const eye = new Float64Array(N * N).map((_, i) => (i % (N + 1) === 0 ? 1 : 0));
            const Dinv = solveRef(D, eye, N, N);
            want = L.resid.map((_, j) =>
              Float64Array.from({ length: C }, (_, c) => {
                let s = 0;
                for (let q = 0; q < N; q++) {
                  s += L.resid[q][c] * ((q === j ? 1 : 0) - emmetLambda * Dinv[q * N + j]);
                }
                return s;
              })
            );
            // The relaxation is visible: the output is not the full residual.
            assert.ok(
              rel(refOut.flatMap((v) => [...v]), L.resid.flatMap((v) => [...v])) > 1e-3,
              "λ_E had no effect",
            );
          }
          const eRef = rel(refOut.flatMap((v) => [...v]), want.flatMap((v) => [...v]));
          const eGpu = rel(gpuOut.flatMap((v) => [...v]), want.flatMap((v) => [...v]));
          lines.push(
            `layer ${L.layer}: ΔW ${e.toExponential(2)}, constraint twin ${eRef.toExponential(2)} GPU ${
              eGpu.toExponential(2)
            }`,
          );
          assert.ok(e < 2e-4, `layer ${L.layer}: ΔW relative error ${e} (seed ${seed})`);
          assert.ok(eRef < 1e-8, `layer ${L.layer}: twin constraint error ${eRef}`);
          assert.ok(eGpu < 5e-4, `layer ${L.layer}: GPU constraint error ${eGpu} (seed ${seed})`);
        });
        console.log(
          `${fam} EMMET λ_E ${emmetLambda} (seed ${seed}): ${lines.join("; ")}; clamped ${
            ref.values.map((v) => v.clamped)
          }`,
        );
        assert.ok(ref.values[0].clamped > 0, "clamp never bound");
        assert.deepEqual([...computed.deltas.keys()], ref.layers.map((l) => l.weight));
      } finally {
        model.destroy();
        await Deno.remove(tmp, { recursive: true });
      }
    });
  }
}

Deno.test("EMMET defaults: EasyEdit's gpt2-xl file; w scaled by width elsewhere", () => {
  const xl = {
    nLayer: 48,
    nEmbd: 1600,
    nInner: 6400,
    nHead: 25,
    vocabSize: 50257,
    nPositions: 1024,
    layerNormEpsilon: 1e-5,
  };
  assert.equal(publishedModel(xl), "gpt2-xl");
  const d = emmetDefaults(xl);
  assert.deepEqual(d.layers, [17]);
  assert.equal(d.mom2_update_weight, 10000);
  assert.equal(d.emmet_lambda, 0.1);
  assert.equal(d.update_norm_lambda, 0);
  const small = emmetDefaults(REF_EDIT_CONFIG);
  assert.equal(small.mom2_update_weight, (10000 * REF_EDIT_CONFIG.nInner) / 6400);
  assert.equal(small.layers.length, 1);
});
