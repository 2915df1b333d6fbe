/**
 * AlphaEdit: the host eigendecomposition (src/edit/eigen.ts) on known matrices, by reconstruction and
 * against the twin's Jacobi rotations; the GPU editor against its float64 twin (src/reference/alphaedit.ts:
 * Jacobi P, the reference's literal solve, cache_c) for two sequential edits on a tiny GPT-2 and a tiny
 * Llama; the null-space property (the update does not move any key in the preserved subspace of C:
 * ΔW_kv = P ΔW_kv); K_p K_pᵀ shrinking the second edit's effect on the first edit's keys; and the state
 * resetting after a restore, refusing another model's shape.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { applyComputed } from "../src/edit/apply.ts";
import { alphaEditCompute, alphaEditEditor } from "../src/edit/alphaedit.ts";
import { alphaEditDefaults } from "../src/edit/alphaedit_hparams.ts";
import { EigenError, symmetricEigen } from "../src/edit/eigen.ts";
import { toKeyValue } from "../src/edit/target.ts";
import { InputError } from "../src/errors.ts";
import { familySpec } from "../src/model/families/mod.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { alphaEditRef, jacobiEigenRef, nullSpaceProjectionRef } from "../src/reference/alphaedit.ts";
import type { ValueHparams } from "../src/reference/edit_value.ts";
import { secondMomentRef } from "../src/reference/key_stats.ts";
import { copyWeights } from "./_edit_util.ts";
import { freshSeed, rng } from "./_util.ts";
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

function reconstructionError(a: Float64Array, n: number) {
  const { values, vectors } = symmetricEigen(a, n);
  let err = 0, orth = 0, scale = 0;
  for (let i = 0; i < n * n; i++) scale = Math.max(scale, Math.abs(a[i]));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0, o = 0;
      for (let k = 0; k < n; k++) {
        s += vectors[k * n + i] * values[k] * vectors[k * n + j];
        o += vectors[i * n + k] * vectors[j * n + k];
      }
      err = Math.max(err, Math.abs(s - a[i * n + j]) / scale);
      orth = Math.max(orth, Math.abs(o - (i === j ? 1 : 0)));
    }
  }
  return { err, orth, values };
}

Deno.test("symmetricEigen: known spectra, reconstruction, orthogonality, Jacobi agreement, bad input", () => {
  // [[2, 1], [1, 2]]: eigenvalues 1 and 3, vectors (1, −1)/√2 and (1, 1)/√2.
  const two = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
  assert.ok(Math.abs(two.values[0] - 1) < 1e-14 && Math.abs(two.values[1] - 3) < 1e-14);
  assert.ok(Math.abs(Math.abs(two.vectors[0] * Math.SQRT2) - 1) < 1e-14);
  assert.ok(Math.abs(two.vectors[0] + two.vectors[1]) < 1e-14);
  // Diagonal, unsorted: values come back ascending.
  const diag = symmetricEigen(Float64Array.from([5, 0, 0, 0, -2, 0, 0, 0, 0.5]), 3);
  assert.deepEqual([...diag.values], [-2, 0.5, 5]);
  // I + u uᵀ (repeated eigenvalue 1, and 1 + ‖u‖²), n = 7.
  const n7 = 7, u = [1, -2, 0.5, 3, 0, 1, -1];
  const a7 = new Float64Array(n7 * n7);
  for (let i = 0; i < n7; i++) for (let j = 0; j < n7; j++) a7[i * n7 + j] = (i === j ? 1 : 0) + u[i] * u[j];
  const r7 = reconstructionError(a7, n7);
  const uu = u.reduce((s, x) => s + x * x, 0);
  assert.ok(
    r7.values.slice(0, 6).every((v) => Math.abs(v - 1) < 1e-12) && Math.abs(r7.values[6] - 1 - uu) < 1e-12,
  );
  assert.ok(r7.err < 1e-13 && r7.orth < 1e-13, `I+uuᵀ: ${r7.err} ${r7.orth}`);
  // Random symmetric and a rank-deficient PSD Gram matrix (odd sizes), against the twin's Jacobi.
  const r = rng(7);
  for (const [n, rank] of [[37, 37], [29, 11]]) {
    const G = Array.from({ length: rank * n }, () => r() - 0.5);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        for (let k = 0; k < rank; k++) a[i * n + j] += G[k * n + i] * G[k * n + j];
        if (rank === n) a[i * n + j] -= i === j ? 3 : 0; // indefinite
      }
    }
    const got = reconstructionError(a, n);
    const want = [...jacobiEigenRef(a, n).values].sort((x, y) => x - y);
    const e = rel(got.values, want);
    console.log(
      `eigen n ${n} rank ${rank}: reconstruction ${got.err.toExponential(2)}, orthogonality ${
        got.orth.toExponential(2)
      }, vs Jacobi ${e.toExponential(2)}`,
    );
    assert.ok(got.err < 1e-12 && got.orth < 1e-12 && e < 1e-12);
    if (rank < n) {
      assert.ok(got.values.slice(0, n - rank).every((v) => Math.abs(v) < 1e-12), "null eigenvalues");
    }
  }
  assert.throws(() => symmetricEigen(Float64Array.from([1, NaN, NaN, 1]), 2), EigenError);
});

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

/** A τ in the widest gap of the pooled log-spectrum's middle half, so P has about half the rank everywhere. */
function pickTau(mom2: Float64Array[], n: number): number {
  const all = mom2.flatMap((m) => [...jacobiEigenRef(m, n).values].map(Math.abs)).sort((a, b) => a - b);
  let best = 0, tau = 0;
  for (let i = Math.floor(all.length / 4); i < Math.floor((3 * all.length) / 4); i++) {
    const g = Math.log(all[i + 1] / all[i]);
    if (g > best) [best, tau] = [g, Math.sqrt(all[i] * all[i + 1])];
  }
  return tau;
}

/** ‖(I − P) X‖_F / ‖X‖_F for X [I, C] key→value. */
function outsideNullSpace(P: Float64Array, X: ArrayLike<number>, I: number, C: number): number {
  let out = 0, all = 0;
  for (let a = 0; a < I; a++) {
    for (let c = 0; c < C; c++) {
      let px = 0;
      for (let b = 0; b < I; b++) px += P[a * I + b] * X[b * C + c];
      out += (X[a * C + c] - px) ** 2;
      all += X[a * C + c] ** 2;
    }
  }
  return Math.sqrt(out / all);
}

/** max_j ‖ΔW_kvᵀ k_j‖ / ‖ΔW_kv‖_F over keys K. */
function moveOn(dKV: ArrayLike<number>, K: Float64Array[], I: number, C: number): number {
  let f = 0;
  for (let i = 0; i < I * C; i++) f += dKV[i] ** 2;
  return Math.max(...K.map((k) => {
    let s = 0;
    for (let c = 0; c < C; c++) {
      let o = 0;
      for (let a = 0; a < I; a++) o += dKV[a * C + c] * k[a];
      s += o * o;
    }
    return Math.sqrt(s / f);
  }));
}

for (const [fam, cfg] of Object.entries(CONFIGS)) {
  const tok = refWordTokenizer(cfg.vocabSize);
  Deno.test(`${fam}: GPU AlphaEdit equals the float64 twin over two sequential edits; null-space property; state`, async () => {
    // A seed whose z differs between float32 and float64 (Adam moves a coordinate with a ~0 gradient by
    // ±v_lr, its sign set by rounding) tests the value optimisation, not AlphaEdit: draw another (3 tries).
    for (let attempt = 0;; attempt++) {
      const seed = attempt === 0 ? Number(Deno.env.get("ALPHA_SEED") ?? freshSeed()) : freshSeed();
      if (await alphaEditCase(fam, cfg, tok, seed, attempt < 3)) break;
    }
  });
}

async function alphaEditCase(
  fam: string,
  cfg: ModelConfig,
  tok: ReturnType<typeof refWordTokenizer>,
  seed: number,
  mayRetry: boolean,
): Promise<boolean> {
  const gpu = await getGpu();
  const weights = randomWeights(cfg, seed, { untiedHead: true });
  const before = copyWeights(weights);
  const original = new Map(
    [...weights].map(([k, v]) => [k, { shape: [...v.shape], data: before.get(k)! }]),
  );
  const model = TransformerModel.create(gpu, cfg, weights);
  const tmp = await Deno.makeTempDir({ prefix: "engram_alphaedit_" });
  const I = cfg.nInner, C = cfg.nEmbd;
  try {
    const { file, seqs } = await writeCorpus(tmp, seed + 1, 90, tok, { nPositions: cfg.nPositions });
    const reqs = refRequests(seed + 2, 6, cfg.vocabSize);
    const first = reqs.slice(0, 3), second = reqs.slice(3);
    const HP = { ...BASE, v_lr: clampBindingLr(tok, original, first[0], `resid_post.${LAYERS[1]}`, cfg) };
    const mom2 = new Map(LAYERS.map((l) => [l, secondMomentRef(cfg, original, seqs, l).mom2]));
    const tau = pickTau([...mom2.values()], I);
    const alpha = 0.05;
    const opts = {
      layers: LAYERS,
      statsCorpus: file,
      statsDir: tmp,
      hparams: {
        ...HP,
        ...NO_PREFIX,
        nullspace_threshold: tau,
        L2: alpha,
        mom2_n_samples: 1000,
        context_template_length_params: [[3, 5]] as [number, number][],
        fact_token: "subject_last",
      },
    };
    const c1 = await alphaEditEditor(model, tok, first, opts);
    for (const [k, v] of before) {
      assert.ok(model.weights.get(k)!.data.every((x, i) => Object.is(x, v[i])), `${k} changed`);
    }
    const groups = usedTemplates(c1.info);
    const ref1 = alphaEditRef(cfg, original, tok, first, {
      layers: LAYERS,
      groups,
      mom2,
      tau,
      alpha,
      hp: HP,
    });
    const spec = familySpec(model.config);
    const lines: string[] = [];
    const check = (c: typeof c1, ref: typeof ref1, tag: string) => {
      ref.layers.forEach((L, i) => {
        const proj = spec.layer(model.config, L.layer).down;
        const d = c.deltas.get(L.weight)!;
        const e = rel(d.data, L.dW);
        const { P, rank } = nullSpaceProjectionRef(mom2.get(L.layer)!, I, tau);
        const upd = (c.info.layer_updates as Record<string, number>[])[i];
        assert.equal(upd.null_space_rank, rank, "GPU and twin null-space ranks");
        assert.ok(rank > 0 && rank < I, `rank ${rank} of ${I}: τ must split the spectrum`);
        const outTwin = outsideNullSpace(P, L.dKV, I, C);
        const outGpu = outsideNullSpace(P, toKeyValue(proj, d.data), I, C);
        lines.push(
          `${tag} layer ${L.layer}: rank ${rank}/${I}, ΔW ${e.toExponential(2)}, (I−P)Δ twin ${
            outTwin.toExponential(2)
          } GPU ${outGpu.toExponential(2)}`,
        );
        assert.ok(e < 5e-4, `${tag} layer ${L.layer}: ΔW relative error ${e} (seed ${seed})`);
        assert.ok(outTwin < 1e-10, `twin update leaves the null space: ${outTwin}`);
        assert.ok(outGpu < 1e-4, `GPU update leaves the null space: ${outGpu} (seed ${seed})`);
      });
    };
    const zErr = rel(c1.tensors.get("z")!.data, ref1.z.flatMap((v) => [...v]));
    if (zErr > 1e-3 && mayRetry) {
      console.log(
        `${fam} seed ${seed}: z differs from the twin by ${
          zErr.toExponential(2)
        } (Adam sign of a ~0 gradient); another seed`,
      );
      return false;
    }
    check(c1, ref1, "edit 1");
    assert.ok(ref1.values[0].clamped > 0, "clamp never bound");
    // Apply, then continue: the editor resumes the model's state (3 prior edits).
    const h1 = applyComputed(model, c1);
    const edited = new Map(
      [...model.weights].map(([k, v]) => [k, { shape: [...v.shape], data: Float32Array.from(v.data) }]),
    );
    const c2 = await alphaEditEditor(model, tok, second, opts);
    assert.equal(c2.info.prior_edits, 3);
    const groups2 = usedTemplates(c2.info); // sampled again, from the edited model
    const ref2 = alphaEditRef(cfg, edited, tok, second, {
      layers: LAYERS,
      groups: groups2,
      mom2,
      tau,
      alpha,
      hp: HP,
      state: ref1.state,
    });
    check(c2, ref2, "edit 2");
    // K_pK_pᵀ at work: the second update moves the first edit's keys less than a fresh-state update would.
    const fresh = alphaEditRef(cfg, edited, tok, second, {
      layers: LAYERS,
      groups: groups2,
      mom2,
      tau,
      alpha,
      hp: HP,
    });
    const K1 = ref1.layers.map((L) => L.K);
    const seqMove = ref2.layers.map((L, i) => moveOn(L.dKV, K1[i], I, C));
    const freshMove = fresh.layers.map((L, i) => moveOn(L.dKV, K1[i], I, C));
    lines.push(
      `edit 2 on edit 1's keys ‖Δᵀk‖/‖Δ‖: sequential ${seqMove.map((x) => x.toExponential(2))}, fresh state ${
        freshMove.map((x) => x.toExponential(2))
      }`,
    );
    console.log(
      `${fam} AlphaEdit (seed ${seed}, τ ${tau.toExponential(3)}, α ${alpha}): ${lines.join("; ")}`,
    );
    seqMove.forEach((m, i) =>
      assert.ok(m < freshMove[i], `K_pK_pᵀ did not protect edit 1's keys at layer ${LAYERS[i]}`)
    );
    // After a restore the state is gone: a new edit starts fresh.
    h1.restore();
    const c3 = await alphaEditEditor(model, tok, second, opts);
    assert.equal(c3.info.prior_edits, 0);
    // A state made for other layers is refused by the explicit API.
    const { state } = await alphaEditCompute(model, tok, first, opts);
    await assert.rejects(
      () => alphaEditCompute(model, tok, second, { ...opts, layers: [0, 2] }, state),
      (e) => e instanceof InputError && e.field === "state",
    );
    assert.equal(state.edits, 3);
    return true;
  } finally {
    model.destroy();
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("AlphaEdit defaults: EasyEdit's files (gpt2-xl τ 2e-2, α 10; Llama-3-8B α 1); MEMIT's layers elsewhere", () => {
  const xl = {
    nLayer: 48,
    nEmbd: 1600,
    nInner: 6400,
    nHead: 25,
    vocabSize: 50257,
    nPositions: 1024,
    layerNormEpsilon: 1e-5,
  };
  const d = alphaEditDefaults(xl);
  assert.deepEqual(d.layers, [13, 14, 15, 16, 17]);
  assert.equal(d.nullspace_threshold, 2e-2);
  assert.equal(d.L2, 10);
  const l3 = alphaEditDefaults({
    ...LLAMA,
    nLayer: 32,
    nEmbd: 4096,
    nInner: 14336,
    nHead: 32,
    nKvHead: 8,
    headDim: 128,
    vocabSize: 128256,
    rope: { dim: 128, style: "half", theta: 500000, maxPositionEmbeddings: 8192 },
  });
  assert.deepEqual(l3.layers, [4, 5, 6, 7, 8]);
  assert.equal(l3.L2, 1);
  assert.equal(l3.v_lr, 0.1);
  const small = alphaEditDefaults(REF_EDIT_CONFIG);
  assert.equal(small.L2, 10);
  assert.equal(small.nullspace_threshold, 2e-2);
});
