/**
 * The methods on a tiny Llama (GQA, SwiGLU, RMS norm, rotary) and a tiny NeoX (parallel residual,
 * partial rotary, layer norm, erf GELU), against independent float64 computations from the family
 * reference forward (src/reference/transformer.ts; patched through tests/_family_hooked_ref.ts, which is
 * first checked against it): causal tracing, activation patching, integrated-gradient neurons, the KN
 * editor, FT-L's loss and first Adam step, and instance-attribution gradients (finite differences of the
 * float64 loss). Each editor (rome, memit, kn, ft-l) changes only the family's MLP output projection;
 * apply + restore and revert through an edit log are bit-exact on the host and GPU copies.
 */
import assert from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { readTensor } from "../src/gpu/tensor.ts";
import type { ModelConfig, WeightMap } from "../src/model/config.ts";
import { randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";
import { causalTrace, kindSite, TRACE_KINDS, windowLayers } from "../src/locate/trace.ts";
import { corruptionHooks, embeddingStd, patchActivations, subjectNoise } from "../src/locate/patching.ts";
import { integratedGradients } from "../src/attribute/neurons.ts";
import {
  defaultIaParams,
  exampleGradients,
  instanceScores,
  promptExample,
  trainingExample,
} from "../src/attribute/instances.ts";
import { applyEdit, EDITORS } from "../src/edit/editors.ts";
import { mlpOutModules } from "../src/edit/ft.ts";
import { modelWeights } from "../src/edit/apply.ts";
import { readEditLog, revertWeights, writeEditLog } from "../src/edit/log.ts";
import { InputError } from "../src/errors.ts";
import { hookedForwardRef, logSoftmaxRow, type RefPatch } from "./_family_hooked_ref.ts";
import { wordTokenizer } from "./_edit_util.ts";
import { rng } from "./_util.ts";

const V = 13; // the word tokenizer's vocabulary: w0..w11 and end-of-text 12
const EOS = V - 1;

const FAMILIES: Record<string, ModelConfig> = {
  llama: {
    family: "llama",
    architecture: "LlamaForCausalLM",
    nLayer: 2,
    vocabSize: V,
    nPositions: 16,
    layerNormEpsilon: 1e-5,
    nHead: 4,
    nKvHead: 2,
    headDim: 4,
    nEmbd: 11,
    nInner: 9,
    norm: "rmsnorm",
    activation: "silu",
    rope: { dim: 4, style: "half", theta: 10000, maxPositionEmbeddings: 16 },
    qkvBias: false,
    attnOutBias: false,
    mlpBias: false,
  },
  neox: {
    family: "neox",
    architecture: "GPTNeoXForCausalLM",
    nLayer: 2,
    vocabSize: V,
    nPositions: 16,
    layerNormEpsilon: 1e-5,
    nHead: 3,
    nEmbd: 12,
    nInner: 11,
    norm: "layernorm",
    activation: "gelu_erf",
    rope: { dim: 2, style: "half", theta: 10000, maxPositionEmbeddings: 16 },
    parallelResidual: "two_norms",
  },
};

/** Fixed seeds (reproducible numbers for the notes); the llama one is untied. */
const SEEDS: Record<string, number> = { llama: 7, neox: 5 };

/** Measured errors, printed at the end of each test for NOTES-famethods.md. */
function report(what: string, v: number) {
  console.log(`  ${what}: ${v.toExponential(2)}`);
}

async function setup(fam: string) {
  const cfg = FAMILIES[fam];
  const weights = randomWeights(cfg, SEEDS[fam], { untiedHead: fam === "llama", std: 0.4 });
  const model = TransformerModel.create(await getGpu(), cfg, weights);
  return { cfg, weights, model };
}

function argmax(a: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i;
  return b;
}

/** Captures sites of a hooked float64 run (after its own patches) into `into`. */
function capturing(sites: string[], into: Map<string, Float64Array>, patch: Record<string, RefPatch> = {}) {
  const out: Record<string, RefPatch> = { ...patch };
  for (const s of sites) {
    const prev = out[s];
    out[s] = (v, T, w) => {
      prev?.(v, T, w);
      into.set(s, v.slice());
    };
  }
  return out;
}

/** Float64 patch: the embedding rows of tokens [a, b) become clean + noise sample `s`. */
function noisePatch(noise: Float64Array, a: number, b: number, s: number): RefPatch {
  return (v, _T, C) => {
    for (let j = 0; j < b - a; j++) {
      for (let c = 0; c < C; c++) v[(a + j) * C + c] += noise[(s * (b - a) + j) * C + c];
    }
  };
}

/** Float64 patch: rows `rows` of the site take their values from `src` [T, width]. */
function restoreRows(src: Float64Array, rows: number[]): RefPatch {
  return (v, _T, w) => {
    for (const t of rows) v.set(src.subarray(t * w, (t + 1) * w), t * w);
  };
}

function compose(...ps: Array<Record<string, RefPatch>>): Record<string, RefPatch> {
  const out: Record<string, RefPatch> = {};
  for (const p of ps) {
    for (const [s, f] of Object.entries(p)) {
      const prev = out[s];
      out[s] = prev ? (v, T, w) => (prev(v, T, w), f(v, T, w)) : f;
    }
  }
  return out;
}

for (const fam of Object.keys(FAMILIES)) {
  Deno.test(`${fam}: the hooked float64 forward of the tests equals the family reference`, async () => {
    const { cfg, weights, model } = await setup(fam);
    try {
      const ids = [EOS, 3, 8, 1, 5, 10];
      const ref = transformerForwardRef(cfg, weights, ids).logits;
      const mine = hookedForwardRef(cfg, weights, ids);
      let e = 0;
      for (let i = 0; i < ref.length; i++) e = Math.max(e, Math.abs(ref[i] - mine[i]));
      report(`${fam} hooked vs reference logits, max abs`, e);
      assert.ok(e < 1e-12, `${fam}: ${e}`);
    } finally {
      model.destroy();
    }
  });

  Deno.test(`${fam}: causal trace (hidden, mlp, attn; first and sequence) equals the float64 trace`, async () => {
    const { cfg, weights, model } = await setup(fam);
    try {
      const L = cfg.nLayer, C = cfg.nEmbd;
      const ids = [EOS, 4, 9, 2, 7];
      const range: [number, number] = [1, 3];
      const std = 3 * embeddingStd(weights, C, undefined, model.spec.embed);
      const samples = 2, window = 2, seed = 3;
      const noise = subjectNoise(samples, 2, C, std, seed);
      let worst = 0;
      for (const targetProb of ["first", "sequence"] as const) {
        const answer = targetProb === "sequence" ? [6, 1] : undefined;
        const res = await causalTrace(model, ids, range, {
          kinds: [...TRACE_KINDS],
          samples,
          noiseStd: std,
          window,
          seed,
          answer,
          targetProb,
          maxRows: 64,
        });
        const ans = res.answer;
        const seq = targetProb === "sequence" ? [...ids, ...ans.slice(0, -1)] : ids;
        const T0 = ids.length;
        const prob = (logits: Float64Array) => {
          let lp = 0;
          for (let j = 0; j < ans.length; j++) lp += logSoftmaxRow(logits, T0 - 1 + j, V)[ans[j]];
          return Math.exp(lp);
        };
        const clean = new Map<string, Float64Array>();
        const sites = TRACE_KINDS.flatMap((k) => Array.from({ length: L }, (_, l) => kindSite(k, l)));
        const pClean = prob(hookedForwardRef(cfg, weights, seq, { patch: capturing(sites, clean) }));
        if (targetProb === "first") {
          assert.equal(
            ans[0],
            argmax(transformerForwardRef(cfg, weights, ids).logits.subarray((T0 - 1) * V)),
          );
        }
        const corrupted = (restore: Record<string, RefPatch>) => {
          let p = 0;
          for (let s = 0; s < samples; s++) {
            const patch = compose({ embed: noisePatch(noise, 1, 3, s) }, restore);
            p += prob(hookedForwardRef(cfg, weights, seq, { patch })) / samples;
          }
          return p;
        };
        const pCorrupt = corrupted({});
        const scale = Math.max(pClean, pCorrupt, 1e-3);
        worst = Math.max(
          worst,
          Math.abs(res.pClean - pClean) / scale,
          Math.abs(res.pCorrupt - pCorrupt) / scale,
        );
        assert.ok(Math.abs(res.pClean - pClean) < 2e-5 * scale, `${fam} p_clean ${res.pClean} vs ${pClean}`);
        assert.ok(Math.abs(res.pCorrupt - pCorrupt) < 2e-5 * scale, `${fam} p_corrupt`);
        assert.ok(Math.abs(pClean - pCorrupt) > 1e-3, `${fam}: the noise must matter`);
        for (const t of res.traces) {
          for (let tok = 0; tok < T0; tok++) {
            for (let l = 0; l < L; l++) {
              const restore: Record<string, RefPatch> = {};
              for (const x of windowLayers(t.kind, l, window, L)) {
                const s = kindSite(t.kind, x);
                restore[s] = restoreRows(clean.get(s)!, [tok]);
              }
              const want = corrupted(restore);
              const got = t.scores[tok][l];
              worst = Math.max(worst, Math.abs(got - want) / scale);
              assert.ok(
                Math.abs(got - want) < 2e-5 * scale,
                `${fam} ${targetProb} ${t.kind} token ${tok} layer ${l}: ${got} vs ${want}`,
              );
            }
          }
        }
      }
      report(`${fam} trace max |score - ref| / scale`, worst);
    } finally {
      model.destroy();
    }
  });

  Deno.test(`${fam}: activation patching of head_out, mlp_post and attn_out equals the float64 patch`, async () => {
    const { cfg, weights, model } = await setup(fam);
    try {
      const C = cfg.nEmbd;
      const ids = [EOS, 4, 9, 2, 7], other = [EOS, 11, 0, 6, 3, 8];
      const noise = subjectNoise(1, 2, C, 1.5, 9);
      let worst = 0;
      const check = (got: Float32Array, logits: Float64Array, T: number, what: string) => {
        const want = logSoftmaxRow(logits, T - 1, V);
        let e = 0;
        for (let v = 0; v < V; v++) e = Math.max(e, Math.abs(got[v] - want[v]));
        worst = Math.max(worst, e);
        assert.ok(e < 2e-5, `${fam} ${what}: max |Δ log p| ${e}`);
      };
      // clean -> corrupted, three sites at once.
      const patches = [
        { site: "head_out.1", positions: [2, 4] },
        { site: "mlp_post.0", positions: [2] },
        { site: "attn_out.0", positions: [1, 3] },
      ];
      const r = await patchActivations(model, { ids }, {
        ids,
        hooks: corruptionHooks(model, ids, [1, 3], noise),
      }, patches);
      const src = new Map<string, Float64Array>();
      hookedForwardRef(cfg, weights, ids, { patch: capturing(patches.map((p) => p.site), src) });
      const restore: Record<string, RefPatch> = {};
      for (const p of patches) restore[p.site] = restoreRows(src.get(p.site)!, p.positions);
      const corrupt = { embed: noisePatch(noise, 1, 3, 0) };
      check(
        r.targetLogprobs,
        hookedForwardRef(cfg, weights, ids, { patch: corrupt }),
        ids.length,
        "corrupted",
      );
      check(
        r.patchedLogprobs,
        hookedForwardRef(cfg, weights, ids, { patch: compose(corrupt, restore) }),
        ids.length,
        "clean->corrupted",
      );
      // The patched run really differs from the unpatched one.
      assert.ok(Math.abs(r.patchedLogprobs[3] - r.targetLogprobs[3]) > 1e-4);
      // prompt A -> prompt B with a position map.
      const r2 = await patchActivations(model, { ids }, { ids: other }, [
        { site: "head_out.0", positions: [5, 1], sourcePositions: [4, 2] },
      ]);
      const srcHo = new Map<string, Float64Array>();
      hookedForwardRef(cfg, weights, ids, { patch: capturing(["head_out.0"], srcHo) });
      const hd = model.config.nHead * model.config.headDim;
      const ab: RefPatch = (v) => {
        v.set(srcHo.get("head_out.0")!.subarray(4 * hd, 5 * hd), 5 * hd);
        v.set(srcHo.get("head_out.0")!.subarray(2 * hd, 3 * hd), 1 * hd);
      };
      check(
        r2.patchedLogprobs,
        hookedForwardRef(cfg, weights, other, { patch: { "head_out.0": ab } }),
        other.length,
        "A->B",
      );
      report(`${fam} patching max |Δ log p|`, worst);
    } finally {
      model.destroy();
    }
  });
}

/**
 * Float64 IG of the reference definition: p(target) with layer l's last-token `mlp_post` replaced by
 * α_k · w (w its clean float64 value), gradient by central differences, IG_i = w_i / m Σ_k ∂p/∂a_i.
 */
function refIG(
  cfg: ModelConfig,
  weights: WeightMap,
  ids: number[],
  target: number,
  layer: number,
  m: number,
  points: "left" | "linspace",
) {
  const T = ids.length;
  const cap = new Map<string, Float64Array>();
  const site = `mlp_post.${layer}`;
  hookedForwardRef(cfg, weights, ids, { patch: capturing([site], cap) });
  const I = cap.get(site)!.length / T;
  const w = cap.get(site)!.slice((T - 1) * I);
  const p = (a: Float64Array) =>
    Math.exp(
      logSoftmaxRow(
        hookedForwardRef(cfg, weights, ids, { patch: { [site]: (v) => v.set(a, (T - 1) * I) } }),
        T - 1,
        V,
      )[target],
    );
  const ig = new Float64Array(I);
  const h = 1e-5;
  for (let k = 0; k < m; k++) {
    const alpha = points === "left" ? k / m : k / (m - 1);
    for (let i = 0; i < I; i++) {
      const a = w.map((x) => alpha * x);
      a[i] += h;
      const up = p(a);
      a[i] -= 2 * h;
      ig[i] += (up - p(a)) / (2 * h);
    }
  }
  return ig.map((g, i) => (g * w[i]) / m);
}

function strictCoarse(scores: Float64Array[], ratio: number): { set: Set<string>; margin: number } {
  const max = Math.max(...scores.flatMap((s) => [...s]));
  const set = new Set<string>();
  let margin = Infinity;
  scores.forEach((s, l) =>
    s.forEach((x, i) => {
      if (x > ratio * max) set.add(`${l}:${i}`);
      margin = Math.min(margin, Math.abs(x - ratio * max) / max);
    })
  );
  return { set, margin };
}

for (const fam of Object.keys(FAMILIES)) {
  Deno.test(`${fam}: integrated gradients over mlp_post equal the float64 Riemann sum; 'pre' is refused`, async () => {
    const { cfg, weights, model } = await setup(fam);
    try {
      const ids = [EOS, 1, 2, 3];
      const target = 6;
      let worst = 0;
      for (const points of ["left", "linspace"] as const) {
        const m = 5;
        const a = await integratedGradients(model, ids, target, { steps: m, points });
        assert.equal(a.activation, "post");
        for (const [li, l] of a.layers.entries()) {
          const want = refIG(cfg, weights, ids, target, l, m, points);
          let e = 0, s = 0;
          for (let i = 0; i < want.length; i++) {
            e = Math.max(e, Math.abs(a.scores[li][i] - want[i]));
            s = Math.max(s, Math.abs(want[i]));
          }
          worst = Math.max(worst, e / s);
          assert.ok(s > 1e-6, `${fam}: attributions vanish`);
          assert.ok(e < 1e-3 * s, `${fam} ${points} layer ${l}: max error ${e} of scale ${s}`);
        }
        const p = Math.exp(
          logSoftmaxRow(transformerForwardRef(cfg, weights, ids).logits, ids.length - 1, V)[target],
        );
        assert.ok(Math.abs(a.prob - p) < 1e-5 * Math.max(p, 1e-3), `${fam} p(x) ${a.prob} vs ${p}`);
        const base = Math.exp(
          logSoftmaxRow(
            hookedForwardRef(cfg, weights, ids, {
              patch: { "mlp_post.1": (v, T, w) => v.fill(0, (T - 1) * w, T * w) },
            }),
            ids.length - 1,
            V,
          )[target],
        );
        assert.ok(Math.abs(a.baselineProb[1] - base) < 1e-5 * Math.max(base, 1e-3), `${fam} baseline`);
      }
      report(`${fam} IG max error / max score`, worst);
      await assert.rejects(
        () => integratedGradients(model, ids, target, { steps: 2, activation: "pre" }),
        InputError,
      );
    } finally {
      model.destroy();
    }
  });

  Deno.test(`${fam}: the KN editor edits the float64 IG neurons' value vectors (down-projection columns) by -2 e(old) + e(new)`, async () => {
    const { cfg, weights, model } = await setup(fam);
    try {
      const tok = wordTokenizer(V);
      const req = { prompt: "w1 {} w3", subject: "w2", target_new: "w4", ground_truth: "w6" };
      const ids = [EOS, 1, 2, 3];
      const steps = 6;
      const refScores = [0, 1].map((l) => refIG(cfg, weights, ids, 6, l, steps, "linspace"));
      const { set: want, margin } = strictCoarse(refScores, 0.2);
      assert.ok(
        margin > 1e-3,
        `${fam}: a neuron sits on the threshold (margin ${margin}); pick another seed`,
      );
      assert.ok(want.size > 0);
      const old = argmax(logSoftmaxRow(transformerForwardRef(cfg, weights, ids).logits, ids.length - 1, V));
      const before = new Map([...weights].map(([k, v]) => [k, v.data.slice()]));
      const h = await applyEdit(model, tok, "kn", [req], { hparams: { steps } });
      const info = h.result.info.requests as Array<
        { neurons: { layer: number; neuron: number }[]; erased: number[] }
      >;
      assert.equal(h.result.hparams.ig_activation, "post");
      assert.deepEqual(info[0].erased, [old]);
      const got = new Set(info[0].neurons.map((n) => `${n.layer}:${n.neuron}`));
      assert.deepEqual([...got].sort(), [...want].sort(), `${fam} neurons`);
      const spec = model.spec;
      const emb = before.get(spec.embed)!;
      assert.equal(spec.layer(model.config, 0).down.layout, "linear");
      const C = cfg.nEmbd, I = cfg.nInner!;
      let worst = 0;
      for (const [name, orig] of before) {
        const now = model.weights.get(name)!.data;
        const layer = [0, 1].find((l) => spec.layer(model.config, l).down.weight === name);
        for (let j = 0; j < orig.length; j++) {
          // nn.Linear [C, I]: element (c, i) at c * I + i; the value vector of neuron i is column i.
          const c = Math.floor(j / I), i = j % I;
          if (layer !== undefined && got.has(`${layer}:${i}`)) {
            const expect = orig[j] - 2 * emb[old * C + c] + emb[4 * C + c];
            worst = Math.max(worst, Math.abs(now[j] - expect) / (Math.abs(expect) + 1e-3));
          } else assert.equal(now[j], orig[j], `${fam}: ${name}[${j}] must not change`);
        }
      }
      report(`${fam} KN value-vector update rel error`, worst);
      assert.ok(worst < 1e-5, `${fam}: ${worst}`);
      h.restore();
      for (const [name, orig] of before) assert.deepEqual(model.weights.get(name)!.data, orig, name);
    } finally {
      model.destroy();
    }
  });
}

/** Mean next-token NLL of `ex` over counted positions, float64, with optional weight overrides. */
function refLoss(
  cfg: ModelConfig,
  w: WeightMap,
  ex: { input: number[]; targets: number[] },
  override?: Map<string, Float64Array>,
) {
  const logits = hookedForwardRef(cfg, w, ex.input, { override });
  let s = 0, n = 0;
  ex.targets.forEach((y, t) => {
    if (y < 0) return;
    s -= logSoftmaxRow(logits, t, V)[y];
    n++;
  });
  return s / n;
}

/** ∂loss/∂(every entry of `name`) by central differences in float64. */
function fdGrad(name: string, w: WeightMap, loss: (o: Map<string, Float64Array>) => number): Float64Array {
  const base = Float64Array.from(w.get(name)!.data);
  const g = new Float64Array(base.length);
  const h = 1e-5;
  const o = new Map([[name, base]]);
  for (let j = 0; j < base.length; j++) {
    const x = base[j];
    base[j] = x + h;
    const up = loss(o);
    base[j] = x - h;
    g[j] = (up - loss(o)) / (2 * h);
    base[j] = x;
  }
  return g;
}

for (const fam of Object.keys(FAMILIES)) {
  Deno.test(`${fam}: instance-attribution gradients of the down projections equal float64 finite differences`, async () => {
    const { cfg, weights, model } = await setup(fam);
    try {
      const r = rng(SEEDS[fam] + 100);
      const tokn = () => Math.floor(r() * (V - 1));
      const train = [4, 5, 4].map((n) => trainingExample([EOS, ...Array.from({ length: n }, tokn), EOS]));
      const test = promptExample([EOS, 1, 2, 3], 6);
      const params = defaultIaParams(cfg);
      assert.deepEqual(params, [0, 1].map((l) => model.spec.layer(model.config, l).down.weight));
      const grads = await exampleGradients(model, [...train, test], params);
      // The general path (one example at a time through the full backward) for a mixed list.
      const mixed = [params[1], model.spec.finalNorm.weight];
      const slow = await exampleGradients(model, [train[0]], mixed);
      let worst = 0;
      const refs: Float64Array[] = [];
      for (const [k, ex] of [...train, test].entries()) {
        const want = params.flatMap((p) => [...fdGrad(p, weights, (o) => refLoss(cfg, weights, ex, o))]);
        refs.push(Float64Array.from(want));
        let e = 0, s = 0;
        for (let j = 0; j < want.length; j++) {
          e = Math.max(e, Math.abs(grads[k][j] - want[j]));
          s = Math.max(s, Math.abs(want[j]));
        }
        worst = Math.max(worst, e / s);
        assert.ok(e < 1e-4 * s, `${fam} example ${k}: max error ${e} of scale ${s}`);
      }
      const wantSlow = mixed.flatMap((
        p,
      ) => [...fdGrad(p, weights, (o) => refLoss(cfg, weights, train[0], o))]);
      let es = 0, ss = 0;
      for (let j = 0; j < wantSlow.length; j++) {
        es = Math.max(es, Math.abs(slow[0][j] - wantSlow[j]));
        ss = Math.max(ss, Math.abs(wantSlow[j]));
      }
      assert.ok(es < 1e-4 * ss, `${fam} general path: ${es} of ${ss}`);
      const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
        let s = 0;
        for (let i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
      };
      const scores = await instanceScores(model, train, test, { method: "grad-cos" });
      scores.forEach((s, i) => {
        const want = dot(refs[i], refs[3]) / Math.sqrt(dot(refs[i], refs[i]) * dot(refs[3], refs[3]));
        assert.ok(Math.abs(s - want) < 1e-4, `${fam} grad-cos ${i}: ${s} vs ${want}`);
      });
      report(
        `${fam} IA gradient max error / scale (fast path); general path ${(es / ss).toExponential(2)}`,
        worst,
      );
    } finally {
      model.destroy();
    }
  });

  Deno.test(`${fam}: FT-L trains the family's mlpOutModules; loss and first Adam step match float64`, async () => {
    const { cfg, weights, model } = await setup(fam);
    try {
      const tok = wordTokenizer(V);
      const req = { prompt: "w1 {} w3", subject: "w2", target_new: "w4 w5" };
      const p = [EOS, 1, 2, 3];
      const names = mlpOutModules(cfg).map((m) => `${model.spec.blockPrefix}1.${m}`);
      assert.deepEqual(names[0], model.spec.layer(model.config, 1).down.weight);
      const loss = (o?: Map<string, Float64Array>) => {
        const lp = logSoftmaxRow(hookedForwardRef(cfg, weights, p, { override: o }), p.length - 1, V);
        return -(lp[4] + lp[5]) / 2;
      };
      // The host map is the model's own copy, which the edit changes: the float64 side first.
      const want = loss();
      const gRef = new Map(names.map((n) => [n, fdGrad(n, weights, (o) => loss(o))]));
      const before = new Map([...weights].map(([k, v]) => [k, v.data.slice()]));
      const lr = 1e-3;
      const h = await applyEdit(model, tok, "ft-l", [req], {
        layers: [1],
        hparams: { lr, num_steps: 1, early_stop_loss: 0, norm_constraint: 1 },
      });
      assert.deepEqual(h.result.weights, names);
      const got = (h.result.info.losses as number[])[0];
      report(`${fam} FT-L loss rel error`, Math.abs(got - want) / want);
      assert.ok(Math.abs(got - want) < 1e-5 * want, `${fam} loss ${got} vs ${want}`);
      // Adam's first step is -lr · g / (|g| + eps), eps = 1e-8 (torch.optim.Adam's, ROME's).
      let worst = 0, counted = 0;
      for (const n of names) {
        const g = gRef.get(n)!;
        const now = model.weights.get(n)!.data, orig = before.get(n)!;
        for (let j = 0; j < g.length; j++) {
          if (Math.abs(g[j]) < 1e-6) continue;
          counted++;
          worst = Math.max(worst, Math.abs((now[j] - orig[j]) + (lr * g[j]) / (Math.abs(g[j]) + 1e-8)) / lr);
        }
      }
      report(`${fam} FT-L first step |ΔW + lr g/(|g|+eps)| / lr over ${counted} entries`, worst);
      assert.ok(counted > 10 && worst < 1e-3, `${fam}: ${worst} over ${counted}`);
      for (const [n, orig] of before) {
        if (!names.includes(n)) assert.deepEqual(model.weights.get(n)!.data, orig, n);
      }
      h.restore();
      for (const [n, orig] of before) assert.deepEqual(model.weights.get(n)!.data, orig, n);
    } finally {
      model.destroy();
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Every editor: only the down projection changes; restore and revert are bit-exact on host and GPU.

const words = wordTokenizer(V);
/** The word tokenizer, also reading ROME's KL prompt "{} is a" ("is" = w10, "a" = w11). */
const romeTok = {
  ...words,
  encode: (t: string) =>
    words.encode(t.replace(/(^|\s)is(?=\s|$)/g, "$1w10").replace(/(^|\s)a(?=\s|$)/g, "$1w11")),
};

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

async function snapshot(model: TransformerModel) {
  const host = new Map([...model.weights].map(([k, v]) => [k, v.data.slice()]));
  const gpu = new Map<string, Float32Array>();
  for (const n of model.weightNames()) gpu.set(n, await readTensor(model.weight(n)));
  return { host, gpu };
}

async function assertSame(model: TransformerModel, snap: Awaited<ReturnType<typeof snapshot>>, what: string) {
  for (const [n, d] of snap.host) assert.ok(sameBits(model.weights.get(n)!.data, d), `${what}: host ${n}`);
  for (const [n, d] of snap.gpu) {
    assert.ok(sameBits(await readTensor(model.weight(n)), d), `${what}: GPU ${n}`);
  }
}

for (const fam of Object.keys(FAMILIES)) {
  Deno.test(`${fam}: rome, memit, kn, ft-l change only the down projection; restore and log revert are bit-exact`, async () => {
    const { model } = await setup(fam);
    const dir = await Deno.makeTempDir({ prefix: "engram_fammethods_" });
    try {
      const r = rng(21);
      const lines = Array.from(
        { length: 30 },
        () =>
          JSON.stringify({
            text: Array.from({ length: 3 + Math.floor(r() * 5) }, () => `w${Math.floor(r() * 12)}`).join(" "),
          }),
      );
      const corpus = `${dir}/c.jsonl`;
      await Deno.writeTextFile(corpus, lines.join("\n") + "\n");
      const requests = [{ prompt: "w1 {} w3", subject: "w2", target_new: "w4", ground_truth: "w6" }];
      const romeLike = { v_num_grad_steps: 3, context_template_length_params: [] as number[][] };
      const opts: Record<string, Record<string, unknown>> = {
        rome: { layers: [0], statsCorpus: corpus, statsDir: dir, hparams: romeLike },
        memit: {
          layers: [0, 1],
          statsCorpus: corpus,
          statsDir: dir,
          hparams: { ...romeLike, fact_token: "last" },
        },
        kn: { hparams: { steps: 4 } },
        "ft-l": { layers: [1], hparams: { num_steps: 2, lr: 0.01, early_stop_loss: 0 } },
      };
      const spec = model.spec;
      const downs = new Set([0, 1].flatMap((l) => {
        const d = spec.layer(model.config, l).down;
        return [d.weight, ...(d.bias ? [d.bias] : [])];
      }));
      const snap = await snapshot(model);
      for (const method of Object.keys(opts)) {
        assert.ok(EDITORS.has(method));
        const h = await applyEdit(model, romeTok, method, requests, opts[method]);
        assert.ok(h.result.weights.length > 0, `${fam} ${method}: nothing changed`);
        for (const n of h.result.weights) assert.ok(downs.has(n), `${fam} ${method} changed ${n}`);
        if (method !== "ft-l") {
          for (const n of h.result.weights) {
            assert.equal(n, spec.layer(model.config, Number(n.split(".")[1])).down.weight);
          }
        }
        let moved = 0;
        for (const [n, d] of snap.host) {
          const now = model.weights.get(n)!.data;
          if (!h.result.weights.includes(n)) {
            assert.ok(sameBits(now, d), `${fam} ${method}: ${n} must not change`);
          } else moved += now.filter((x, i) => x !== d[i]).length;
          const ref = model.weightRef(n);
          if (ref.gpuName === n) {
            assert.ok(sameBits(await readTensor(model.weight(n)), now), `${fam} ${method}: GPU ${n} = host`);
          }
        }
        assert.ok(moved > 0, `${fam} ${method}: no value moved`);
        // The edit log, written and read back, reverts bit-exactly.
        const logDir = `${dir}/log_${method}`;
        await writeEditLog(logDir, h.result, requests, model.weights);
        const log = await readEditLog(logDir);
        const reverted = await revertWeights(modelWeights(model), log);
        assert.deepEqual(reverted, h.result.weights);
        await assertSame(model, snap, `${fam} ${method} revert`);
        // Apply again and restore through the handle.
        const h2 = await applyEdit(model, romeTok, method, requests, opts[method]);
        for (const n of h2.result.weights) assert.ok(downs.has(n));
        h2.restore();
        await assertSame(model, snap, `${fam} ${method} restore`);
      }
    } finally {
      model.destroy();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
