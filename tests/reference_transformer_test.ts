/**
 * The float64 reference forward of every family (src/reference/transformer.ts) checked against facts
 * that do not come from itself: the separate GPT-2 reference, hand-computed special cases pinning each
 * mechanism (norms, rotary layouts and scalings, GQA, residual wiring, sliding window, heads), golden
 * erf values (Python's math.erf) and causality. Also the family-generic random weights.
 */
import assert from "node:assert/strict";
import { InputError, ShapeError } from "../src/errors.ts";
import { type ModelConfig, resolveConfig, type WeightMap } from "../src/model/config.ts";
import { familySpec, weightShapes } from "../src/model/families/mod.ts";
import type { RopeConfig } from "../src/model/rope.ts";
import {
  type FamilyVariant,
  randomConfig,
  randomFamilyConfig,
  randomGPT2,
  randomWeights,
} from "../src/model/random.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import {
  applyRotaryRef,
  erfRef,
  geluErfRef,
  ropeInvFreqRef,
  transformerForwardRef,
  transformerLossRef,
  transformerSiteNames,
} from "../src/reference/transformer.ts";
import { maxAbsErr, relErr, rng } from "./_util.ts";

const ALL_VARIANTS: [ModelConfig["family"] & string, FamilyVariant][] = [
  ["gpt2", "gpt2"],
  ["llama", "llama"],
  ["llama", "mha"],
  ["llama", "llama3"],
  ["llama", "linear"],
  ["llama", "dynamic"],
  ["llama", "qwen2"],
  ["llama", "qwen3"],
  ["llama", "mistral"],
  ["neox", "parallel"],
  ["neox", "sequential"],
  ["gptj", "gptj"],
];

function randomIds(r: () => number, T: number, V: number): number[] {
  return Array.from({ length: T }, () => Math.floor(r() * V));
}

function clone(w: WeightMap): WeightMap {
  return new Map([...w].map(([k, t]) => [k, { shape: t.shape.slice(), data: t.data.slice() }]));
}

/** Row-major [T, N] = x [T, K] · Wᵀ for nn.Linear W [N, K] (+ b). */
function linT(
  x: ArrayLike<number>,
  T: number,
  W: ArrayLike<number>,
  N: number,
  K: number,
  b?: ArrayLike<number>,
) {
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let s = b ? b[n] : 0;
      for (let k = 0; k < K; k++) s += x[t * K + k] * W[n * K + k];
      y[t * N + n] = s;
    }
  }
  return y;
}

/** Textbook layer norm over rows of width C (biased variance). */
function ln(
  x: ArrayLike<number>,
  T: number,
  C: number,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  eps: number,
) {
  const y = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    const row = Array.from({ length: C }, (_, c) => x[t * C + c]);
    const mu = row.reduce((a, v) => a + v, 0) / C;
    const va = row.reduce((a, v) => a + (v - mu) ** 2, 0) / C;
    for (let c = 0; c < C; c++) y[t * C + c] = ((row[c] - mu) / Math.sqrt(va + eps)) * w[c] + b[c];
  }
  return y;
}

/** Textbook RMS norm over rows of width C. */
function rms(x: ArrayLike<number>, T: number, C: number, w: ArrayLike<number>, eps: number) {
  const y = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    let ms = 0;
    for (let c = 0; c < C; c++) ms += x[t * C + c] ** 2 / C;
    for (let c = 0; c < C; c++) y[t * C + c] = (w[c] * x[t * C + c]) / Math.sqrt(ms + eps);
  }
  return y;
}

Deno.test("erfRef matches Python's math.erf to 1e-15 and GELU-erf follows", () => {
  const golden: [number, number][] = [
    [0, 0],
    [0.1, 0.1124629160182849],
    [-0.37, -0.39920598404299923],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [1.5, 0.9661051464753108],
    [-2, -0.9953222650189527],
    [2.9, 0.9999589021219005],
    [3, 0.9999779095030014],
    [3.2, 0.9999939742388483],
    [-4, -0.9999999845827421],
    [5.5, 0.9999999999999927],
    [7, 1],
  ];
  for (const [x, e] of golden) {
    assert.ok(Math.abs(erfRef(x) - e) <= 1e-15, `erf(${x}) = ${erfRef(x)} != ${e}`);
  }
  // erfc tail: 1 + erf(-4) = erfc(4) = 1.541725790028002e-08 to ~1e-16 absolute.
  assert.ok(Math.abs(1 + erfRef(-4) - 1.541725790028002e-8) < 2e-16);
  // x Φ(x): Φ(1) = 0.8413447460685429.
  assert.ok(Math.abs(geluErfRef(1) - 0.8413447460685429) < 1e-15);
  assert.ok(Math.abs(geluErfRef(-1) - (-1 + 0.8413447460685429)) < 1e-15);
});

Deno.test("rotary inverse frequencies: default, linear, dynamic NTK and llama3 (numpy goldens)", () => {
  const rope: RopeConfig = { dim: 6, style: "half", theta: 10000, maxPositionEmbeddings: 32 };
  const def = ropeInvFreqRef(rope, 7);
  const want = [1, 10000 ** (-2 / 6), 10000 ** (-4 / 6)];
  assert.ok(maxAbsErr(def, want) < 1e-16);
  const lin = ropeInvFreqRef({ ...rope, scaling: { type: "linear", factor: 2.5 } }, 7);
  assert.ok(maxAbsErr(lin, want.map((v) => v / 2.5)) < 1e-16);
  const dyn = { ...rope, scaling: { type: "dynamic" as const, factor: 3, originalMaxPositionEmbeddings: 5 } };
  // Up to the original context: the default frequencies; beyond: theta rescaled with seqLen (numpy).
  assert.ok(maxAbsErr(ropeInvFreqRef(dyn, 5), want) < 1e-16);
  assert.ok(maxAbsErr(ropeInvFreqRef(dyn, 7), [1, 0.031293585532326564, 0.0009792884954690382]) < 1e-15);
  const l3 = ropeInvFreqRef({
    ...rope,
    scaling: {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 256,
    },
  }, 7);
  // Wavelengths 6.28 (kept), 135.4 (smoothed), 2916 (divided by 8), from a numpy transcription of HF.
  assert.ok(maxAbsErr(l3, [1, 0.017866392087025194, 0.00026930433625398553]) < 1e-15);
});

Deno.test("applyRotaryRef: identity at position 0, complex rotation of the right pairs otherwise", () => {
  const r = rng(11);
  const D = 10;
  for (const style of ["half", "interleaved"] as const) {
    const rope: RopeConfig = { dim: 6, style, theta: 100, maxPositionEmbeddings: 64 };
    const inv = ropeInvFreqRef(rope, 8);
    const x = Float64Array.from({ length: D + 3 }, () => r() - 0.5);
    const y0 = x.slice();
    applyRotaryRef(y0, 3, rope, inv, 0);
    assert.deepEqual(y0, x);
    const p = 5;
    const y = x.slice();
    applyRotaryRef(y, 3, rope, inv, p);
    const want = x.slice();
    for (let i = 0; i < 3; i++) {
      // Pair (a, b) as the complex number a + ib times e^{i p inv_i}.
      const [a, b] = style === "half" ? [3 + i, 3 + i + 3] : [3 + 2 * i, 3 + 2 * i + 1];
      const re = x[a], im = x[b], c = Math.cos(p * inv[i]), s = Math.sin(p * inv[i]);
      want[a] = re * c - im * s;
      want[b] = re * s + im * c;
    }
    assert.ok(maxAbsErr(y, want) < 1e-15, style);
    // Dims 6..9 of the head (partial rotary) and the 3 values before it are untouched.
    for (const i of [0, 1, 2, 9, 10, 11, 12]) assert.equal(y[i], x[i]);
  }
});

Deno.test("GPT-2: transformerForwardRef equals the separate GPT-2 reference (logits and every shared site)", () => {
  for (let seed = 1; seed <= 6; seed++) {
    const cfg = randomConfig(seed);
    const w = randomGPT2(cfg, 100 + seed, { untiedHead: seed % 2 === 0 });
    const ids = randomIds(rng(seed), Math.min(cfg.nPositions, 5 + seed), cfg.vocabSize);
    const shared = transformerSiteNames(cfg.nLayer).filter((s) => !/^(attn_pattern|head_out)\./.test(s));
    const a = transformerForwardRef(cfg, w, ids, { capture: shared });
    const b = gpt2ForwardRef(cfg, w, ids, { hooks: { capture: new Set(shared) } });
    assert.ok(relErr(a.logits, b.logits) < 1e-12, `seed ${seed}: logits ${relErr(a.logits, b.logits)}`);
    for (const s of shared) {
      const e = relErr(a.sites.get(s)!, b.cache[s]);
      assert.ok(e < 1e-12, `seed ${seed} site ${s}: ${e}`);
    }
  }
});

Deno.test("every family: causal, finite, sites shaped, patterns row-stochastic", () => {
  for (const [fam, v] of ALL_VARIANTS) {
    const cfg = randomFamilyConfig(fam as "gpt2", 3, v);
    const w = randomWeights(cfg, 17, { untiedHead: v === "mha" });
    const T = 8, r = rng(5);
    const ids = randomIds(r, T, cfg.vocabSize);
    const sites = transformerSiteNames(cfg.nLayer);
    const a = transformerForwardRef(cfg, w, ids, { capture: sites });
    const ids2 = ids.slice();
    ids2[T - 1] = (ids[T - 1] + 1) % cfg.vocabSize;
    const b = transformerForwardRef(cfg, w, ids2);
    const V = cfg.vocabSize;
    assert.ok(a.logits.every(Number.isFinite), `${v}: finite`);
    assert.ok(
      maxAbsErr(a.logits.subarray(0, (T - 1) * V), b.logits.subarray(0, (T - 1) * V)) === 0,
      `${v}: causal`,
    );
    assert.ok(
      maxAbsErr(a.logits.subarray((T - 1) * V), b.logits.subarray((T - 1) * V)) > 1e-6,
      `${v}: last moves`,
    );
    const H = cfg.nHead, D = cfg.headDim ?? cfg.nEmbd / cfg.nHead;
    for (let l = 0; l < cfg.nLayer; l++) {
      const p = a.sites.get(`attn_pattern.${l}`)!;
      assert.equal(p.length, H * T * T);
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < T; t++) {
          let sum = 0;
          for (let s = 0; s < T; s++) {
            const val = p[(h * T + t) * T + s];
            if (s > t || (cfg.slidingWindow && t - s >= cfg.slidingWindow)) assert.equal(val, 0);
            sum += val;
          }
          assert.ok(Math.abs(sum - 1) < 1e-14, `${v}: row sum ${sum}`);
        }
      }
      assert.equal(a.sites.get(`head_out.${l}`)!.length, T * H * D);
      assert.equal(a.sites.get(`mlp_post.${l}`)!.length, T * cfg.nInner);
      // The residual stream leaving block l enters block l + 1.
      if (l + 1 < cfg.nLayer) {
        assert.deepEqual(a.sites.get(`resid_post.${l}`), a.sites.get(`resid_pre.${l + 1}`));
      }
    }
  }
});

Deno.test("RMS norm and layer norm of a constant residual (all block weights zero)", () => {
  for (const [fam, v] of [["llama", "llama"], ["neox", "sequential"]] as const) {
    const cfg = randomFamilyConfig(fam, 4, v);
    const w = randomWeights(cfg, 9);
    const spec = familySpec(cfg);
    const C = cfg.nEmbd, c0 = Math.fround(-0.7);
    // Zero every projection and bias so each block adds nothing; the embedding row is the constant c0.
    for (const [name, t] of w) {
      if (name === spec.embed) t.data.fill(c0);
      else if (
        name !== spec.finalNorm.weight && name !== spec.finalNorm.bias && !/norm\.weight$/.test(name)
      ) {
        t.data.fill(0);
      }
    }
    const f = transformerForwardRef(cfg, w, [1, 2], { capture: ["ln_f"] }).sites.get("ln_f")!;
    const g = w.get(spec.finalNorm.weight)!.data;
    const b = spec.finalNorm.bias ? w.get(spec.finalNorm.bias)!.data : undefined;
    for (let c = 0; c < C; c++) {
      // RMS: g c0 / sqrt(c0² + eps); layer norm of a constant: 0 · g + bias.
      const want = b ? b[c] : (g[c] * c0) / Math.sqrt(c0 * c0 + cfg.layerNormEpsilon);
      assert.ok(Math.abs(f[c] - want) < 1e-15, `${v} c=${c}: ${f[c]} vs ${want}`);
    }
  }
});

Deno.test("GQA equals MHA with each kv head's weights repeated for its query heads", () => {
  for (const v of ["llama", "qwen2", "qwen3"] as const) {
    const gqa = randomFamilyConfig("llama", 6, v);
    const w = randomWeights(gqa, 21);
    const mha: ModelConfig = { ...gqa, nKvHead: gqa.nHead };
    const H = gqa.nHead, KV = gqa.nKvHead!, D = gqa.headDim!, C = gqa.nEmbd;
    // kv head serving query head h: floor(h / (H / KV)) (HF repeat_kv), or a wrong pairing h mod KV.
    const repeat = (pick: (h: number) => number) => {
      const wm = clone(w);
      for (let l = 0; l < gqa.nLayer; l++) {
        for (const p of ["k_proj", "v_proj"]) {
          for (const [suffix, rows] of [["weight", D * C], ["bias", D]] as const) {
            const src = w.get(`layers.${l}.self_attn.${p}.${suffix}`);
            if (!src) continue;
            const dst = new Float32Array(H * rows);
            for (let h = 0; h < H; h++) {
              dst.set(src.data.subarray(pick(h) * rows, (pick(h) + 1) * rows), h * rows);
            }
            const shape = suffix === "weight" ? [H * D, C] : [H * D];
            wm.set(`layers.${l}.self_attn.${p}.${suffix}`, { shape, data: dst });
          }
        }
      }
      return wm;
    };
    const ids = randomIds(rng(2), 7, gqa.vocabSize);
    const a = transformerForwardRef(gqa, w, ids).logits;
    const b = transformerForwardRef(mha, repeat((h) => Math.floor(h / (H / KV))), ids).logits;
    assert.ok(relErr(a, b) < 1e-14, `${v}: ${relErr(a, b)}`);
    const wrong = transformerForwardRef(mha, repeat((h) => h % KV), ids).logits;
    assert.ok(maxAbsErr(a, wrong) > 1e-6, `${v}: the pairing matters`);
  }
});

Deno.test("residual wiring: sequential, NeoX parallel (two norms), GPT-J (one norm) match the formula", () => {
  const cases = [["neox", "sequential"], ["neox", "parallel"], ["gptj", "gptj"]] as const;
  for (const [fam, v] of cases) {
    const cfg: ModelConfig = { ...randomFamilyConfig(fam, 8, v), nLayer: 1 };
    const w = randomWeights(cfg, 31);
    const ls = familySpec(cfg).layer(resolveConfig(cfg), 0);
    const ids = randomIds(rng(4), 6, cfg.vocabSize);
    const T = ids.length, C = cfg.nEmbd, I = cfg.nInner, eps = cfg.layerNormEpsilon;
    const names = ["embed", "attn_out.0", "mlp_post.0", "mlp_out.0", "resid_post.0"];
    const s = transformerForwardRef(cfg, w, ids, { capture: names }).sites;
    const x = s.get("embed")!, att = s.get("attn_out.0")!;
    const W = (n?: string) => (n ? w.get(n)!.data : undefined);
    const mlpIn = v === "sequential"
      ? ln(x.map((e, i) => e + att[i]), T, C, W(ls.ln2!.weight)!, W(ls.ln2!.bias)!, eps)
      : v === "parallel"
      ? ln(x, T, C, W(ls.ln2!.weight)!, W(ls.ln2!.bias)!, eps)
      : ln(x, T, C, W(ls.ln1.weight)!, W(ls.ln1.bias)!, eps);
    const act = v === "gptj"
      ? (z: number) => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)))
      : geluErfRef;
    const post = linT(mlpIn, T, W(ls.up.weight)!, I, C, W(ls.up.bias)).map(act);
    const out = linT(post, T, W(ls.down.weight)!, C, I, W(ls.down.bias));
    assert.ok(relErr(s.get("mlp_post.0")!, post) < 1e-13, `${v} mlp_post`);
    assert.ok(relErr(s.get("mlp_out.0")!, out) < 1e-13, `${v} mlp_out`);
    const resid = x.map((e, i) => e + att[i] + out[i]);
    assert.ok(relErr(s.get("resid_post.0")!, resid) < 1e-14, `${v} resid_post`);
  }
});

Deno.test("layer-0 attention pattern from a hand computation: NeoX partial half rotary, GPT-J interleaved, Llama", () => {
  const cases = [["neox", "parallel"], ["gptj", "gptj"], ["llama", "llama3"], ["llama", "qwen3"]] as const;
  for (const [fam, v] of cases) {
    const cfg = randomFamilyConfig(fam, 12, v);
    const w = randomWeights(cfg, 41);
    const ids = randomIds(rng(7), 7, cfg.vocabSize);
    const T = ids.length, C = cfg.nEmbd, H = cfg.nHead, KV = cfg.nKvHead!, D = cfg.headDim!;
    const eps = cfg.layerNormEpsilon, rope = cfg.rope!;
    const s = transformerForwardRef(cfg, w, ids, { capture: ["embed", "attn_pattern.0"] }).sites;
    const x = s.get("embed")!;
    const W = (n: string) => w.get(n)!.data;
    // q and k per head [T][heads][D], from the checkpoint names of each family.
    let q: number[][][], k: number[][][];
    const heads = (y: Float64Array, n: number, stride: number, off: (h: number) => number) =>
      Array.from(
        { length: T },
        (_, t) =>
          Array.from(
            { length: n },
            (_, h) => Array.from({ length: D }, (_, d) => y[t * stride + off(h) + d]),
          ),
      );
    if (fam === "neox") {
      const a = ln(x, T, C, W("layers.0.input_layernorm.weight"), W("layers.0.input_layernorm.bias"), eps);
      const y = linT(
        a,
        T,
        W("layers.0.attention.query_key_value.weight"),
        3 * C,
        C,
        W("layers.0.attention.query_key_value.bias"),
      );
      q = heads(y, H, 3 * C, (h) => 3 * D * h);
      k = heads(y, H, 3 * C, (h) => 3 * D * h + D);
    } else if (fam === "gptj") {
      const a = ln(x, T, C, W("h.0.ln_1.weight"), W("h.0.ln_1.bias"), eps);
      q = heads(linT(a, T, W("h.0.attn.q_proj.weight"), C, C), H, C, (h) => h * D);
      k = heads(linT(a, T, W("h.0.attn.k_proj.weight"), C, C), H, C, (h) => h * D);
    } else {
      const a = rms(x, T, C, W("layers.0.input_layernorm.weight"), eps);
      q = heads(linT(a, T, W("layers.0.self_attn.q_proj.weight"), H * D, C), H, H * D, (h) => h * D);
      k = heads(linT(a, T, W("layers.0.self_attn.k_proj.weight"), KV * D, C), KV, KV * D, (h) => h * D);
      if (cfg.qkNorm) {
        const nq = W("layers.0.self_attn.q_norm.weight"), nk = W("layers.0.self_attn.k_norm.weight");
        const norm = (u: number[], g: Float32Array) => Array.from(rms(u, 1, D, g, eps));
        q = q.map((r) => r.map((u) => norm(u, nq)));
        k = k.map((r) => r.map((u) => norm(u, nk)));
      }
    }
    // Rotate as complex numbers: pair j = (j, j + R/2) for rotate_half, (2j, 2j + 1) for GPT-J.
    const R = rope.dim, inv = ropeInvFreqRef(rope, T);
    const rot = (u: number[], t: number) => {
      const o = u.slice();
      for (let j = 0; j < R / 2; j++) {
        const [ia, ib] = rope.style === "half" ? [j, j + R / 2] : [2 * j, 2 * j + 1];
        const ang = t * inv[j];
        o[ia] = u[ia] * Math.cos(ang) - u[ib] * Math.sin(ang);
        o[ib] = u[ia] * Math.sin(ang) + u[ib] * Math.cos(ang);
      }
      return o;
    };
    const pat = s.get("attn_pattern.0")!;
    for (let h = 0; h < H; h++) {
      const g = Math.floor((h * KV) / H);
      for (let t = 0; t < T; t++) {
        const qt = rot(q[t][h], t);
        const sc = Array.from(
          { length: t + 1 },
          (_, j) => rot(k[j][g], j).reduce((acc, kv, d) => acc + kv * qt[d], 0) / Math.sqrt(D),
        );
        const mx = Math.max(...sc), z = sc.reduce((acc, e) => acc + Math.exp(e - mx), 0);
        for (let j = 0; j <= t; j++) {
          const want = Math.exp(sc[j] - mx) / z;
          assert.ok(Math.abs(pat[(h * T + t) * T + j] - want) < 1e-13, `${v} h${h} t${t} s${j}`);
        }
      }
    }
  }
});

Deno.test("sliding window: >= T changes nothing; 3 masks old keys; 1 makes each position read its own v", () => {
  const cfg = randomFamilyConfig("llama", 5, "mistral");
  const w = randomWeights(cfg, 51);
  const ids = randomIds(rng(8), 7, cfg.vocabSize);
  const T = ids.length;
  const none = transformerForwardRef({ ...cfg, slidingWindow: undefined }, w, ids).logits;
  assert.equal(maxAbsErr(transformerForwardRef({ ...cfg, slidingWindow: T }, w, ids).logits, none), 0);
  assert.equal(maxAbsErr(transformerForwardRef({ ...cfg, slidingWindow: T + 5 }, w, ids).logits, none), 0);
  assert.ok(maxAbsErr(transformerForwardRef(cfg, w, ids).logits, none) > 1e-4, "window 3 changes the output");
  // The first 3 positions see at most 3 keys: identical with and without the window.
  const V = cfg.vocabSize;
  assert.equal(
    maxAbsErr(transformerForwardRef(cfg, w, ids).logits.subarray(0, 3 * V), none.subarray(0, 3 * V)),
    0,
  );

  const s =
    transformerForwardRef({ ...cfg, slidingWindow: 1 }, w, ids, { capture: ["embed", "head_out.0"] }).sites;
  const C = cfg.nEmbd, H = cfg.nHead, KV = cfg.nKvHead!, D = cfg.headDim!;
  const a = rms(s.get("embed")!, T, C, w.get("layers.0.input_layernorm.weight")!.data, cfg.layerNormEpsilon);
  const vv = linT(a, T, w.get("layers.0.self_attn.v_proj.weight")!.data, KV * D, C);
  const ho = s.get("head_out.0")!;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < D; d++) {
        const want = vv[t * KV * D + Math.floor(h / (H / KV)) * D + d];
        assert.ok(Math.abs(ho[t * H * D + h * D + d] - want) < 1e-14);
      }
    }
  }
});

Deno.test("Qwen3 q/k norms make attention invariant to the scale of q_proj and k_proj", () => {
  for (const [v, invariant] of [["qwen3", true], ["llama", false]] as const) {
    const cfg = randomFamilyConfig("llama", 9, v);
    const w = randomWeights(cfg, 61);
    const ids = randomIds(rng(9), 6, cfg.vocabSize);
    const base = transformerForwardRef(cfg, w, ids).logits;
    const w2 = clone(w);
    for (let l = 0; l < cfg.nLayer; l++) {
      for (const p of ["q_proj", "k_proj"]) {
        w2.get(`layers.${l}.self_attn.${p}.weight`)!.data.forEach((_, i, a) => (a[i] *= 4));
      }
    }
    const e = relErr(transformerForwardRef(cfg, w2, ids).logits, base);
    assert.ok(invariant ? e < 1e-5 : e > 1e-3, `${v}: ${e}`);
  }
});

Deno.test("dynamic NTK equals default rope up to the original context and differs beyond it", () => {
  const dyn = randomFamilyConfig("llama", 2, "dynamic");
  const plain: ModelConfig = { ...dyn, rope: { ...dyn.rope!, scaling: undefined } };
  const w = randomWeights(dyn, 71);
  const orig = (dyn.rope!.scaling as { originalMaxPositionEmbeddings: number }).originalMaxPositionEmbeddings;
  const ids = randomIds(rng(10), orig + 3, dyn.vocabSize);
  const short = ids.slice(0, orig);
  assert.equal(
    maxAbsErr(transformerForwardRef(dyn, w, short).logits, transformerForwardRef(plain, w, short).logits),
    0,
  );
  const V = dyn.vocabSize;
  // Beyond: theta grows with T, so even position 1 (the first rotated one) changes.
  const a = transformerForwardRef(dyn, w, ids).logits, b = transformerForwardRef(plain, w, ids).logits;
  assert.ok(maxAbsErr(a.subarray(V, 2 * V), b.subarray(V, 2 * V)) > 1e-6);
  assert.equal(maxAbsErr(a.subarray(0, V), b.subarray(0, V)), 0);
});

Deno.test("heads: tied = untied with a copied head; GPT-J's lm_head bias adds to every row", () => {
  const cfg = randomFamilyConfig("llama", 3, "llama");
  const w = randomWeights(cfg, 81);
  const wu = clone(w);
  wu.set("lm_head.weight", {
    shape: [cfg.vocabSize, cfg.nEmbd],
    data: w.get("embed_tokens.weight")!.data.slice(),
  });
  const ids = randomIds(rng(11), 5, cfg.vocabSize);
  assert.equal(
    maxAbsErr(transformerForwardRef(cfg, wu, ids).logits, transformerForwardRef(cfg, w, ids).logits),
    0,
  );
  wu.get("lm_head.weight")!.data[0] += 0.5;
  assert.ok(
    maxAbsErr(transformerForwardRef(cfg, wu, ids).logits, transformerForwardRef(cfg, w, ids).logits) > 1e-3,
  );

  const j = randomFamilyConfig("gptj", 3);
  const wj = randomWeights(j, 82);
  const V = j.vocabSize;
  const with_ = transformerForwardRef(j, wj, ids.map((i) => i % V)).logits;
  const bias = wj.get("lm_head.bias")!.data.slice();
  wj.get("lm_head.bias")!.data.fill(0);
  const without = transformerForwardRef(j, wj, ids.map((i) => i % V)).logits;
  for (let i = 0; i < with_.length; i++) assert.ok(Math.abs(with_[i] - without[i] - bias[i % V]) < 1e-14);
});

Deno.test("transformerLossRef: mean cross-entropy over targets >= 0", () => {
  const cfg = randomFamilyConfig("neox", 4, "parallel");
  const w = randomWeights(cfg, 91);
  const ids = randomIds(rng(12), 6, cfg.vocabSize), V = cfg.vocabSize;
  const targets = [3, -1, 0, V - 1, -1, 2];
  const { logits } = transformerForwardRef(cfg, w, ids);
  let want = 0, n = 0;
  targets.forEach((y, t) => {
    if (y < 0) return;
    const row = Array.from(logits.subarray(t * V, (t + 1) * V));
    want += Math.log(row.reduce((a, z) => a + Math.exp(z), 0)) - row[y];
    n++;
  });
  assert.ok(Math.abs(transformerLossRef(cfg, w, ids, targets) - want / n) < 1e-13);
  assert.throws(() => transformerLossRef(cfg, w, ids, [-1, -1, -1, -1, -1, -1]), InputError);
  assert.throws(() => transformerLossRef(cfg, w, ids, [V, 0, 0, 0, 0, 0]), InputError);
});

Deno.test("bad input: missing or mis-shaped weight, unknown site, long GPT-2 prompt, bad ids", () => {
  const cfg = randomFamilyConfig("llama", 1, "qwen2");
  const w = randomWeights(cfg, 1);
  const miss = clone(w);
  miss.delete("layers.0.self_attn.q_proj.bias");
  assert.throws(() => transformerForwardRef(cfg, miss, [1]), ShapeError);
  const bad = clone(w);
  bad.set("norm.weight", { shape: [cfg.nEmbd + 1], data: new Float32Array(cfg.nEmbd + 1) });
  assert.throws(() => transformerForwardRef(cfg, bad, [1]), ShapeError);
  assert.throws(() => transformerForwardRef(cfg, w, [1], { capture: ["attn_pattern.9"] }), InputError);
  assert.throws(() => transformerForwardRef(cfg, w, [1], { capture: ["attn.0"] }), InputError);
  assert.throws(() => transformerForwardRef(cfg, w, [cfg.vocabSize]), InputError);
  assert.throws(() => transformerForwardRef(cfg, w, []), InputError);
  const g = randomConfig(2);
  assert.throws(
    () => transformerForwardRef(g, randomGPT2(g, 1), new Array(g.nPositions + 1).fill(0)),
    InputError,
  );
});

Deno.test("randomWeights: GPT-2 identical to randomGPT2; norms near 1 by spec name for every family", () => {
  for (let seed = 0; seed < 4; seed++) {
    const c = randomConfig(seed);
    for (const untiedHead of [false, true]) {
      const a = randomGPT2(c, seed, { untiedHead, lnStd: 0.3 });
      const b = randomWeights(c, seed, { untiedHead, normStd: 0.3 });
      assert.deepEqual([...a.keys()], [...b.keys()]);
      for (const [k, t] of a) assert.deepEqual(t.data, b.get(k)!.data);
    }
  }
  for (const [fam, v] of ALL_VARIANTS) {
    const cfg = randomFamilyConfig(fam as "gpt2", 0, v);
    const w = randomWeights(cfg, 3, { normStd: 0.01 });
    assert.deepEqual([...w.keys()], [...weightShapes(cfg).keys()]);
    const spec = familySpec(cfg);
    const ls = spec.layer(resolveConfig(cfg), 0);
    for (const n of [ls.ln1, ls.ln2, ls.qNorm, ls.kNorm, spec.finalNorm]) {
      if (!n) continue;
      const d = w.get(n.weight)!.data;
      assert.ok(d.every((e) => Math.abs(e - 1) < 0.1), `${v} ${n.weight}`);
    }
    // Everything else is centred: the down projection's mean is far from 1.
    const down = w.get(ls.down.weight)!.data;
    assert.ok(Math.abs(down.reduce((a, e) => a + e, 0) / down.length) < 0.2, `${v} down`);
  }
});
