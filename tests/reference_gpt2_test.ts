/**
 * The float64 GPT-2 reference checked against facts that do not come from itself: an independent numpy
 * implementation (golden numbers), hand-computed special cases, causality, hook-site identities,
 * head-permutation symmetry. Also the seeded random weights and configurations.
 */
import assert from "node:assert/strict";
import type { ModelConfig, WeightMap } from "../src/model/config.ts";
import { weightShapes } from "../src/model/families/mod.ts";
import { hookSiteNames as modelHookSiteNames } from "../src/model/hooks.ts";
import { randomConfig, randomGPT2 } from "../src/model/random.ts";
import { geluNewRef, gpt2ForwardRef, hookSiteNames } from "../src/reference/gpt2.ts";
import { maxAbsErr, relErr, rng } from "./_util.ts";

/** All weights zero, layer-norm weights one. */
function zeroWeights(cfg: ModelConfig): WeightMap {
  const m: WeightMap = new Map();
  for (const [name, shape] of weightShapes(cfg)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (/ln_(1|2|f)\.weight$/.test(name)) data.fill(1);
    m.set(name, { shape, data });
  }
  return m;
}

function cloneWeights(w: WeightMap): WeightMap {
  return new Map([...w].map(([k, t]) => [k, { shape: t.shape.slice(), data: t.data.slice() }]));
}

function randomIds(r: () => number, T: number, V: number): number[] {
  return Array.from({ length: T }, () => Math.floor(r() * V));
}

Deno.test("reference matches an independent numpy GPT-2 on formula weights (golden numbers)", () => {
  // Weights w_k[i] = fround(s * sin(1 + 0.37 i + 1.91 k)) for the k-th tensor in weightShapes order;
  // s = 0.3 (matrices, embeddings), 0.05 (biases), layer-norm weights 1 + 0.1 sin(..). The expected
  // numbers come from a separate numpy float64 implementation of GPT-2 (tied head).
  const cfg: ModelConfig = {
    nLayer: 2,
    nHead: 2,
    nEmbd: 6,
    vocabSize: 11,
    nPositions: 8,
    nInner: 24,
    layerNormEpsilon: 1e-5,
  };
  const w: WeightMap = new Map();
  [...weightShapes(cfg)].forEach(([name, shape], k) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const isLn = /ln_(1|2|f)\.weight$/.test(name);
    for (let i = 0; i < data.length; i++) {
      const base = Math.sin(1 + 0.37 * i + 1.91 * k);
      data[i] = isLn ? 1 + 0.1 * base : name.endsWith(".bias") ? 0.05 * base : 0.3 * base;
    }
    w.set(name, { shape, data });
  });
  const ids = [3, 7, 1, 10, 0];
  const logits0 = [
    0.35721034404125984,
    0.6197307290799718,
    -1.1065295657600522,
    0.7181792042909044,
    0.23817584789895,
    -1.0061587108537526,
    0.9783751963394982,
    -0.176799214373233,
    -0.7646064277494343,
    1.1012883788140422,
    -0.5669663162895355,
  ];
  const lp = [
    -2.839839510389162,
    -3.228858746791333,
    -1.5982239656224932,
    -3.180812642570383,
    -2.8979322720203182,
    -1.6573755264035852,
    -3.4402186780942703,
    -2.525131670955932,
    -1.8487244249286738,
    -3.581658529636667,
    -2.1627672640956503,
  ];
  const ref = gpt2ForwardRef(cfg, w, ids);
  assert.equal(ref.logits.length, ids.length * cfg.vocabSize);
  assert.ok(relErr(ref.logits.subarray(0, cfg.vocabSize), logits0) < 1e-12, "position-0 logits");
  assert.ok(maxAbsErr(ref.logprobsLast, lp) < 1e-12, `last log-probs: ${maxAbsErr(ref.logprobsLast, lp)}`);
});

Deno.test("with empty blocks, logits are layer-normed embeddings times wte^T (by hand)", () => {
  // C = 2: LayerNorm([a, b]) = [s, -s] with s = d / sqrt(d² + eps), d = (a - b) / 2.
  const eps = 1e-5;
  const cfg: ModelConfig = {
    nLayer: 2,
    nHead: 1,
    nEmbd: 2,
    vocabSize: 3,
    nPositions: 4,
    nInner: 8,
    layerNormEpsilon: eps,
  };
  const w = zeroWeights(cfg);
  w.get("wte.weight")!.data.set([1, 0, 0, 1, 2, -1]);
  w.get("wpe.weight")!.data.set([0, 0, 1, 1, 0, 0, 0, 0]);
  const ref = gpt2ForwardRef(cfg, w, [0, 2]);
  // position 0: x = [1, 0] -> d = 0.5; position 1: x = [2, -1] + [1, 1] = [3, 0] -> d = 1.5.
  // logit_v = s * (wte[v, 0] - wte[v, 1]) = s * [1, -1, 3].
  const s0 = 0.5 / Math.sqrt(0.25 + eps), s1 = 1.5 / Math.sqrt(2.25 + eps);
  const expected = [s0, -s0, 3 * s0, s1, -s1, 3 * s1];
  assert.ok(maxAbsErr(ref.logits, expected) < 1e-14, `${[...ref.logits]} vs ${expected}`);
  // log-softmax of [s1, -s1, 3 s1] by hand.
  const lse = Math.log(Math.exp(s1) + Math.exp(-s1) + Math.exp(3 * s1));
  assert.ok(maxAbsErr(ref.logprobsLast, [s1 - lse, -s1 - lse, 3 * s1 - lse]) < 1e-14);

  // c_proj biases (attention and MLP) are added to the stream once per block: x0 += 2 * (ba + bm).
  for (let l = 0; l < 2; l++) {
    w.get(`h.${l}.attn.c_proj.bias`)!.data.set([0.25, 0]);
    w.get(`h.${l}.mlp.c_proj.bias`)!.data.set([0.5, -0.25]);
  }
  const ref2 = gpt2ForwardRef(cfg, w, [0]);
  // x = [1, 0] + 2 * [0.75, -0.25] = [2.5, -0.5] -> d = 1.5.
  assert.ok(maxAbsErr(ref2.logits, [s1, -s1, 3 * s1]) < 1e-14);
});

Deno.test("GELU is the tanh form, and zero q/k gives causal prefix means of v", () => {
  // gelu_new(1) and gelu_new(-1), as computed by PyTorch's gelu(approximate='tanh').
  assert.ok(Math.abs(geluNewRef(1) - 0.8411919906082768) < 1e-15);
  assert.ok(Math.abs(geluNewRef(-1) - -0.15880800939172324) < 1e-15);
  assert.equal(geluNewRef(0), 0);

  const C = 4, nHead = 2, T = 5, eps = 1e-5;
  const cfg: ModelConfig = {
    nLayer: 1,
    nHead,
    nEmbd: C,
    vocabSize: 7,
    nPositions: 8,
    nInner: 16,
    layerNormEpsilon: eps,
  };
  const w = zeroWeights(cfg);
  const r = rng(11);
  w.get("wte.weight")!.data.set(Array.from({ length: 7 * C }, () => r() * 2 - 1));
  w.get("wpe.weight")!.data.set(Array.from({ length: 8 * C }, () => r() * 2 - 1));
  // v = ln_1(x) (identity in the v block), q = k = 0; c_proj = identity.
  const ca = w.get("h.0.attn.c_attn.weight")!.data;
  for (let i = 0; i < C; i++) ca[i * 3 * C + 2 * C + i] = 1;
  const cp = w.get("h.0.attn.c_proj.weight")!.data;
  for (let i = 0; i < C; i++) cp[i * C + i] = 1;
  // MLP: c_fc = 0, bias alternating ±1, so every neuron is gelu_new(±1) regardless of input.
  w.get("h.0.mlp.c_fc.bias")!.data.set(Array.from({ length: 16 }, (_, i) => (i % 2 ? -1 : 1)));
  const ids = [1, 6, 0, 3, 3];
  const ref = gpt2ForwardRef(cfg, w, ids, {
    hooks: { capture: new Set(["embed", "attn_out.0", "mlp_post.0"]) },
  });
  const emb = ref.cache["embed"];
  const ln = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    const row = emb.subarray(t * C, t * C + C);
    const mean = row.reduce((a, b) => a + b, 0) / C;
    const v = row.reduce((a, b) => a + (b - mean) ** 2, 0) / C;
    for (let c = 0; c < C; c++) ln[t * C + c] = (row[c] - mean) / Math.sqrt(v + eps);
  }
  const expected = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let s = 0; s <= t; s++) for (let c = 0; c < C; c++) expected[t * C + c] += ln[s * C + c] / (t + 1);
  }
  assert.ok(maxAbsErr(ref.cache["attn_out.0"], expected) < 1e-14);
  const post = ref.cache["mlp_post.0"];
  assert.equal(post.length, T * 16);
  for (let i = 0; i < post.length; i++) {
    assert.ok(Math.abs(post[i] - (i % 2 ? -0.15880800939172324 : 0.8411919906082768)) < 1e-15);
  }
  // embed is wte[ids] + wpe[pos] exactly (float32 values summed in float64).
  const wte = w.get("wte.weight")!.data, wpe = w.get("wpe.weight")!.data;
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) assert.equal(emb[t * C + c], wte[ids[t] * C + c] + wpe[t * C + c]);
  }
});

Deno.test("causality: changing the last token leaves earlier positions unchanged", () => {
  const cfg: ModelConfig = {
    nLayer: 3,
    nHead: 3,
    nEmbd: 15,
    vocabSize: 37,
    nPositions: 16,
    nInner: 60,
    layerNormEpsilon: 1e-5,
  };
  const w = randomGPT2(cfg, 5);
  const r = rng(5);
  const ids = randomIds(r, 9, cfg.vocabSize);
  const ids2 = ids.slice();
  ids2[8] = (ids[8] + 1) % cfg.vocabSize;
  const V = cfg.vocabSize;
  const a = gpt2ForwardRef(cfg, w, ids).logits, b = gpt2ForwardRef(cfg, w, ids2).logits;
  assert.equal(maxAbsErr(a.subarray(0, 8 * V), b.subarray(0, 8 * V)), 0);
  assert.ok(maxAbsErr(a.subarray(8 * V), b.subarray(8 * V)) > 1e-3, "last position should change");
  // A prefix run gives the same logits as the corresponding rows of the full run.
  const pre = gpt2ForwardRef(cfg, w, ids.slice(0, 4)).logits;
  assert.equal(maxAbsErr(pre, a.subarray(0, 4 * V)), 0);
});

Deno.test("captured sites: shapes, stream identities, residual decomposition", () => {
  const cfg: ModelConfig = {
    nLayer: 3,
    nHead: 2,
    nEmbd: 10,
    vocabSize: 23,
    nPositions: 12,
    nInner: 40,
    layerNormEpsilon: 1e-5,
  };
  const w = randomGPT2(cfg, 9);
  const ids = randomIds(rng(9), 6, cfg.vocabSize);
  const T = ids.length, C = cfg.nEmbd;
  const sites = hookSiteNames(cfg.nLayer);
  // The GPU model adds the per-head site head_out.L (checked against the family reference in families_test).
  assert.deepEqual(
    sites,
    modelHookSiteNames(cfg.nLayer).filter((s) => !s.startsWith("head_out.")),
    "reference and GPU model use the same site names",
  );
  assert.equal(sites.length, 2 + 5 * cfg.nLayer);
  const { cache, logits } = gpt2ForwardRef(cfg, w, ids, { hooks: { capture: new Set(sites) } });
  assert.deepEqual(Object.keys(cache).sort(), [...sites].sort());
  for (const s of sites) assert.equal(cache[s].length, T * (s.startsWith("mlp_post") ? cfg.nInner : C), s);
  assert.deepEqual(cache["resid_pre.0"], cache["embed"]);
  for (let l = 0; l < cfg.nLayer; l++) {
    if (l + 1 < cfg.nLayer) assert.deepEqual(cache[`resid_post.${l}`], cache[`resid_pre.${l + 1}`]);
    const sum = cache[`resid_pre.${l}`].map((x, i) =>
      x + cache[`attn_out.${l}`][i] + cache[`mlp_out.${l}`][i]
    );
    assert.ok(maxAbsErr(cache[`resid_post.${l}`], sum) < 1e-12, `layer ${l}`);
    // mlp_out = mlp_post @ W_proj + b, recomputed here in the opposite loop order.
    const Wp = w.get(`h.${l}.mlp.c_proj.weight`)!.data, bp = w.get(`h.${l}.mlp.c_proj.bias`)!.data;
    const post = cache[`mlp_post.${l}`];
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        let acc = bp[c];
        for (let i = 0; i < cfg.nInner; i++) acc += post[t * cfg.nInner + i] * Wp[i * C + c];
        assert.ok(Math.abs(acc - cache[`mlp_out.${l}`][t * C + c]) < 1e-12);
      }
    }
  }
  // ln_f rows, with the affine map undone, have mean 0 and variance ~1 (eps shrinks it slightly).
  const g = w.get("ln_f.weight")!.data, b = w.get("ln_f.bias")!.data;
  for (let t = 0; t < T; t++) {
    const z = Array.from({ length: C }, (_, c) => (cache["ln_f"][t * C + c] - b[c]) / g[c]);
    const mean = z.reduce((a, v) => a + v, 0) / C;
    const v = z.reduce((a, x) => a + (x - mean) ** 2, 0) / C;
    assert.ok(Math.abs(mean) < 1e-12 && Math.abs(v - 1) < 1e-3, `ln_f row ${t}: mean ${mean} var ${v}`);
  }
  // logits = ln_f @ wte^T.
  const wte = w.get("wte.weight")!.data;
  const V = cfg.vocabSize;
  for (const [t, v] of [[0, 0], [T - 1, V - 1], [2, 7]]) {
    let dot = 0;
    for (let c = 0; c < C; c++) dot += cache["ln_f"][t * C + c] * wte[v * C + c];
    assert.ok(Math.abs(dot - logits[t * V + v]) < 1e-12);
  }
});

Deno.test("patching: identity patch is a no-op, zeroing mlp_post changes output, patches flow downstream", () => {
  const cfg: ModelConfig = {
    nLayer: 2,
    nHead: 2,
    nEmbd: 8,
    vocabSize: 31,
    nPositions: 12,
    nInner: 32,
    layerNormEpsilon: 1e-5,
  };
  const w = randomGPT2(cfg, 21);
  const ids = randomIds(rng(21), 7, cfg.vocabSize);
  const clean = gpt2ForwardRef(cfg, w, ids, { hooks: { capture: new Set(hookSiteNames(cfg.nLayer)) } });
  for (const site of hookSiteNames(cfg.nLayer)) {
    let seen: number[] = [];
    const same = gpt2ForwardRef(cfg, w, ids, {
      hooks: {
        patch: { [site]: (v, T, width) => ((seen = [v.length, T, width]), v.set(clean.cache[site])) },
      },
    });
    const width = site.startsWith("mlp_post") ? cfg.nInner : cfg.nEmbd;
    assert.deepEqual(seen, [ids.length * width, ids.length, width], site);
    assert.equal(maxAbsErr(same.logits, clean.logits), 0, `identity patch at ${site}`);
  }
  const zeroed = gpt2ForwardRef(cfg, w, ids, {
    hooks: {
      patch: { "mlp_post.0": (v) => v.fill(0) },
      capture: new Set(["mlp_post.0", "mlp_out.0", "resid_post.0"]),
    },
  });
  assert.ok(maxAbsErr(zeroed.logprobsLast, clean.logprobsLast) > 1e-3);
  assert.ok(zeroed.cache["mlp_post.0"].every((x) => x === 0), "capture sees the patched value");
  // With zero neurons, mlp_out is exactly the c_proj bias in every row.
  const bias = w.get("h.0.mlp.c_proj.bias")!.data;
  zeroed.cache["mlp_out.0"].forEach((x, i) => assert.equal(x, bias[i % cfg.nEmbd]));
  // Patching resid_post.0 replaces the stream: it equals patching resid_pre.1 with the same value.
  const C = cfg.nEmbd;
  const edit = (v: Float64Array) => v.fill(0.5, 2 * C, 3 * C);
  const a = gpt2ForwardRef(cfg, w, ids, { hooks: { patch: { "resid_post.0": edit } } });
  const b = gpt2ForwardRef(cfg, w, ids, { hooks: { patch: { "resid_pre.1": edit } } });
  assert.equal(maxAbsErr(a.logits, b.logits), 0);
  assert.ok(maxAbsErr(a.logits, clean.logits) > 1e-3);
  // ... and only positions >= 2 change.
  assert.equal(
    maxAbsErr(a.logits.subarray(0, 2 * cfg.vocabSize), clean.logits.subarray(0, 2 * cfg.vocabSize)),
    0,
  );
  // Zeroing attn_out removes attention from the residual: resid_post.0 = resid_pre.0 + mlp_out.0.
  const noAttn = gpt2ForwardRef(cfg, w, ids, {
    hooks: {
      patch: { "attn_out.0": (v) => v.fill(0) },
      capture: new Set(["resid_pre.0", "mlp_out.0", "resid_post.0"]),
    },
  });
  const s = noAttn.cache["resid_pre.0"].map((x, i) => x + noAttn.cache["mlp_out.0"][i]);
  assert.ok(maxAbsErr(noAttn.cache["resid_post.0"], s) < 1e-12);
});

Deno.test("log-probs of the last position are a normalized log-softmax of its logits", () => {
  for (const seed of [1, 2, 3]) {
    const cfg = randomConfig(seed);
    const w = randomGPT2(cfg, seed);
    const ids = randomIds(rng(seed), Math.min(cfg.nPositions, 10), cfg.vocabSize);
    const { logits, logprobsLast } = gpt2ForwardRef(cfg, w, ids);
    const V = cfg.vocabSize, T = ids.length;
    let sum = 0;
    for (const x of logprobsLast) sum += Math.exp(x);
    assert.ok(Math.abs(sum - 1) < 1e-12, `sum ${sum}`);
    // Differences of log-probs equal differences of logits.
    for (let v = 1; v < V; v++) {
      const d1 = logprobsLast[v] - logprobsLast[0], d2 = logits[(T - 1) * V + v] - logits[(T - 1) * V];
      assert.ok(Math.abs(d1 - d2) < 1e-12);
    }
  }
});

Deno.test("permuting heads consistently in c_attn and c_proj leaves the output unchanged", () => {
  const cfg: ModelConfig = {
    nLayer: 2,
    nHead: 3,
    nEmbd: 9,
    vocabSize: 19,
    nPositions: 8,
    nInner: 36,
    layerNormEpsilon: 1e-5,
  };
  const w = randomGPT2(cfg, 4);
  const ids = randomIds(rng(4), 6, cfg.vocabSize);
  const base = gpt2ForwardRef(cfg, w, ids).logits;
  const perm = [2, 0, 1];
  const C = cfg.nEmbd, D = C / cfg.nHead;
  const p = cloneWeights(w);
  for (let l = 0; l < cfg.nLayer; l++) {
    const ca = w.get(`h.${l}.attn.c_attn.weight`)!.data, cb = w.get(`h.${l}.attn.c_attn.bias`)!.data;
    const cp = w.get(`h.${l}.attn.c_proj.weight`)!.data;
    const pa = p.get(`h.${l}.attn.c_attn.weight`)!.data, pb = p.get(`h.${l}.attn.c_attn.bias`)!.data;
    const pp = p.get(`h.${l}.attn.c_proj.weight`)!.data;
    for (let h = 0; h < cfg.nHead; h++) {
      const src = perm[h];
      for (let d = 0; d < D; d++) {
        for (let part = 0; part < 3; part++) {
          const to = part * C + h * D + d, from = part * C + src * D + d;
          pb[to] = cb[from];
          for (let i = 0; i < C; i++) pa[i * 3 * C + to] = ca[i * 3 * C + from];
        }
        // Rows of c_proj are indexed by the merged-head dimension.
        for (let j = 0; j < C; j++) pp[(h * D + d) * C + j] = cp[(src * D + d) * C + j];
      }
    }
  }
  const permuted = gpt2ForwardRef(cfg, p, ids).logits;
  assert.ok(relErr(permuted, base) < 1e-12);
  // Permuting only c_attn (not c_proj) must change the output: the test is not vacuous.
  const q = cloneWeights(p);
  q.set("h.0.attn.c_proj.weight", w.get("h.0.attn.c_proj.weight")!);
  assert.ok(relErr(gpt2ForwardRef(cfg, q, ids).logits, base) > 1e-4);
});

Deno.test("untied head: lm_head.weight is used when present", () => {
  const cfg: ModelConfig = {
    nLayer: 1,
    nHead: 2,
    nEmbd: 6,
    vocabSize: 13,
    nPositions: 8,
    nInner: 24,
    layerNormEpsilon: 1e-5,
  };
  const w = randomGPT2(cfg, 8);
  const ids = [1, 5, 12];
  const tied = gpt2ForwardRef(cfg, w, ids);
  const same = cloneWeights(w);
  same.set("lm_head.weight", { shape: [13, 6], data: w.get("wte.weight")!.data.slice() });
  assert.equal(maxAbsErr(gpt2ForwardRef(cfg, same, ids).logits, tied.logits), 0);
  const un = randomGPT2(cfg, 8, { untiedHead: true });
  assert.ok(un.has("lm_head.weight"));
  const r = gpt2ForwardRef(cfg, un, ids, { hooks: { capture: new Set(["ln_f"]) } });
  const head = un.get("lm_head.weight")!.data;
  let dot = 0;
  for (let c = 0; c < 6; c++) dot += r.cache["ln_f"][2 * 6 + c] * head[4 * 6 + c];
  assert.ok(Math.abs(dot - r.logits[2 * 13 + 4]) < 1e-12);
  assert.throws(
    () =>
      gpt2ForwardRef(
        cfg,
        new Map([...w, ["lm_head.weight", { shape: [6, 13], data: new Float32Array(78) }]]),
        ids,
      ),
    {
      name: "ShapeError",
    },
  );
});

Deno.test("bad inputs are typed errors", () => {
  const cfg: ModelConfig = {
    nLayer: 1,
    nHead: 1,
    nEmbd: 4,
    vocabSize: 11,
    nPositions: 4,
    nInner: 16,
    layerNormEpsilon: 1e-5,
  };
  const w = randomGPT2(cfg, 1);
  assert.throws(() => gpt2ForwardRef(cfg, w, []), { name: "InputError", message: /empty prompt/ });
  assert.throws(() => gpt2ForwardRef(cfg, w, [1, 2, 3, 4, 5]), {
    name: "InputError",
    message: /context of 4/,
  });
  assert.throws(() => gpt2ForwardRef(cfg, w, [1, 11]), {
    name: "InputError",
    message: /token id 11 out of range/,
  });
  assert.throws(() => gpt2ForwardRef(cfg, w, [1], { hooks: { capture: new Set(["mlp_post.1"]) } }), {
    name: "InputError",
    message: /layer 1 out of range/,
  });
  assert.throws(() => gpt2ForwardRef(cfg, w, [1], { hooks: { patch: { "mlp_pre.0": () => {} } } }), {
    name: "InputError",
    message: /unknown hook site/,
  });
  const missing = cloneWeights(w);
  missing.delete("h.0.ln_2.bias");
  assert.throws(() => gpt2ForwardRef(cfg, missing, [1]), { name: "ShapeError", message: /h\.0\.ln_2\.bias/ });
});

Deno.test("randomGPT2 / randomConfig: deterministic, valid, and not near-uniform", () => {
  for (let seed = 0; seed < 200; seed++) {
    const c = randomConfig(seed);
    assert.ok(c.nLayer >= 1 && c.nLayer <= 3);
    assert.ok(c.nHead >= 1 && c.nHead <= 4);
    const D = c.nEmbd / c.nHead;
    assert.ok(Number.isInteger(D) && D >= 1 && D <= 8);
    assert.ok(c.vocabSize >= 5 && c.vocabSize <= 300 && c.vocabSize % 2 === 1);
    assert.ok(c.nPositions >= 8 && c.nPositions <= 64);
    assert.equal(c.nInner, 4 * c.nEmbd);
  }
  assert.deepEqual(randomConfig(42), randomConfig(42));
  const seen = new Set(Array.from({ length: 50 }, (_, s) => JSON.stringify(randomConfig(s))));
  assert.ok(seen.size > 40, "configs vary with the seed");

  const cfg: ModelConfig = {
    nLayer: 2,
    nHead: 4,
    nEmbd: 32,
    vocabSize: 101,
    nPositions: 16,
    nInner: 128,
    layerNormEpsilon: 1e-5,
  };
  const a = randomGPT2(cfg, 3), b = randomGPT2(cfg, 3), c = randomGPT2(cfg, 4);
  const shapes = weightShapes(cfg);
  assert.deepEqual([...a.keys()], [...shapes.keys()]);
  for (const [name, shape] of shapes) {
    const t = a.get(name)!;
    assert.deepEqual(t.shape, shape);
    assert.ok(t.data instanceof Float32Array);
    assert.deepEqual(t.data, b.get(name)!.data, `${name} deterministic`);
    assert.notDeepEqual(t.data, c.get(name)!.data, `${name} depends on seed`);
    assert.ok(t.data.every((x) => x !== 0 && Number.isFinite(x)), `${name} has no zeros`);
    if (/ln_(1|2|f)\.weight$/.test(name)) assert.ok(t.data.every((x) => x > 0.5 && x < 1.5), name);
  }
  // std option scales the matrices.
  const big = randomGPT2(cfg, 3, { std: 0.5 }).get("h.0.mlp.c_fc.weight")!.data;
  const rms = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  assert.ok(
    Math.abs(rms(big) - 0.5) < 0.03 && Math.abs(rms(a.get("h.0.mlp.c_fc.weight")!.data) - 0.2) < 0.02,
  );
  // Next-token distribution is far from uniform.
  const lp = gpt2ForwardRef(cfg, a, [1, 2, 3, 4]).logprobsLast;
  assert.ok(Math.max(...lp) - Math.min(...lp) > 2, `log-prob range ${Math.max(...lp) - Math.min(...lp)}`);
});
