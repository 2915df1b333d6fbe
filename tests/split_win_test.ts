/**
 * More work past the storage-binding limit (`gpu.setBindingLimit` lowered): sums of squares and sums in
 * windows (bit-identical to the unsplit reduction when windows are whole chunks, float64 twin otherwise),
 * the GPU non-finite scan in windows, attention (forward with probabilities and backward) in sequence
 * blocks, and gradient zeroing, FT-L, FT and the trainer on weights over the limit against the unsplit run.
 */
import assert from "node:assert/strict";
import { attention, blockedQkvLayout, type QkvLayout } from "../src/gpu/attention.ts";
import { attentionBackward } from "../src/gpu/attention_backward.ts";
import { getGpu, type Gpu } from "../src/gpu/device.ts";
import { embedding } from "../src/gpu/embedding.ts";
import { embeddingBackward } from "../src/gpu/embedding_backward.ts";
import { erf, gelu } from "../src/gpu/gelu.ts";
import { geluBackward } from "../src/gpu/gelu_backward.ts";
import { layerNorm } from "../src/gpu/layernorm.ts";
import { layerNormBackward } from "../src/gpu/layernorm_backward.ts";
import { residualAdd, residualAddInPlace } from "../src/gpu/residual.ts";
import { rmsNorm } from "../src/gpu/rmsnorm.ts";
import { rmsNormBackward } from "../src/gpu/rmsnorm_backward.ts";
import { rotary } from "../src/gpu/rotary.ts";
import { swiglu, swigluBackward } from "../src/gpu/swiglu.ts";
import { sum, sumSquares } from "../src/gpu/reduce.ts";
import { firstNonFinite, readWithNonFiniteCheck } from "../src/gpu/nonfinite.ts";
import { createTensor, poison, readTensor, writeTensor } from "../src/gpu/tensor.ts";
import { GpuError } from "../src/errors.ts";
import { Gradients, lossAndGradients } from "../src/model/backward.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { randomFamilyConfig, randomGPT2, randomWeights } from "../src/model/random.ts";
import { TransformerModel } from "../src/model/transformer.ts";
import { attentionRef } from "../src/reference/attention.ts";
import { attentionBackwardRef } from "../src/reference/attention_backward.ts";
import { embeddingRef } from "../src/reference/embedding.ts";
import { embeddingBackwardRef } from "../src/reference/embedding_backward.ts";
import { erfRef, geluRef } from "../src/reference/gelu.ts";
import { gpt2ForwardRef } from "../src/reference/gpt2.ts";
import { geluBackwardRef } from "../src/reference/gelu_backward.ts";
import { layerNormRef } from "../src/reference/layernorm.ts";
import { layerNormBackwardRef } from "../src/reference/layernorm_backward.ts";
import { residualAddRef } from "../src/reference/residual.ts";
import { rmsNormBackwardRef, rmsNormRef } from "../src/reference/rmsnorm.ts";
import { rotaryRef } from "../src/reference/rotary.ts";
import { transformerForwardRef } from "../src/reference/transformer.ts";
import { swigluBackwardRef, swigluRef } from "../src/reference/swiglu.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

/** Runs `f` with the binding limit lowered to `bytes`, restoring the device's limit afterwards. */
async function withLimit<T>(gpu: Gpu, bytes: number | undefined, f: () => Promise<T>): Promise<T> {
  gpu.setBindingLimit(bytes);
  try {
    return await f();
  } finally {
    gpu.setBindingLimit(undefined);
  }
}

/** All logits, the loss and every weight's gradient of `batch` under binding limit `limit`. */
function forwardAndGradients(
  gpu: Gpu,
  model: TransformerModel,
  batch: number[][],
  targets: number[][],
  limit: number | undefined,
): Promise<{ logits: Float32Array; loss: number; g: Map<string, Float32Array> }> {
  return withLimit(gpu, limit, async () => {
    const f = await model.forward(batch, { allLogits: true });
    const grads = new Gradients(model);
    const res = await lossAndGradients(model, batch, { targets }, { grads });
    const g = new Map<string, Float32Array>();
    for (const n of model.weightNames()) g.set(n, await grads.read(n));
    grads.destroy();
    return { logits: f.logits!, loss: res.loss, g };
  });
}

Deno.test("split sumSquares / sum: whole-chunk windows equal the unsplit bits; small windows vs float64", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const n = 3 * 4096 + 1237; // 66 KB: 3 + 1 chunks
  const x = randn(r, n, 3);
  const t = createTensor(gpu, [n], { name: "big", data: x });
  const out = createTensor(gpu, [3], { name: "out" });
  try {
    let sq = 0, s = 0;
    for (const v of x) (sq += v * v, s += v);
    for (const square of [true, false]) {
      const f = square ? sumSquares : sum;
      const want = square ? sq : s;
      const run = async (limit: number | undefined, accumulate: boolean, init: number) => {
        writeTensor(out, Float32Array.of(init, NaN, NaN));
        await withLimit(gpu, limit, () => f(gpu, t, out, { accumulate }));
        const got = await readTensor(out);
        assert.ok(Number.isNaN(got[1]) && Number.isNaN(got[2]), "other elements untouched");
        return got[0];
      };
      for (const accumulate of [false, true]) {
        const init = accumulate ? 1.75 : NaN;
        const base = accumulate ? 1.75 : 0;
        const whole = await run(undefined, accumulate, init);
        // 20 KiB: 5052 elements per window, so windows of one whole 4096-element chunk (4 windows).
        const chunked = await run(20 * 1024, accumulate, init);
        assert.equal(
          chunked,
          whole,
          `${f.name} acc=${accumulate}: whole-chunk windows differ (seed ${seed})`,
        );
        // 2 KiB: windows of 384 elements (36 of them), one partial each: a different order, same sum.
        const small = await run(2048, accumulate, init);
        const rel = Math.abs(small - (want + base)) /
          Math.max(1e-6, square ? want : Math.abs(x.reduce((a, v) => a + Math.abs(v), 0)));
        assert.ok(
          rel <= 1e-6,
          `${f.name} acc=${accumulate}: ${small} vs ${want + base} rel ${rel} (seed ${seed})`,
        );
        const relWhole = Math.abs(whole - (want + base)) / Math.max(1e-6, Math.abs(want + base));
        if (square) assert.ok(relWhole <= 1e-6, `unsplit ${whole} vs ${want} (seed ${seed})`);
      }
    }
  } finally {
    t.destroy();
    out.destroy();
  }
});

Deno.test("split non-finite scan: one GPU dispatch per window finds the first bad element in any window", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const n = 5 * 444 + 91; // 2 KiB limit: 384-element windows, 7 of them
  const x = randn(r, n);
  const t = createTensor(gpu, [n], { name: "logits" });
  try {
    await withLimit(gpu, 2048, async () => {
      writeTensor(t, x);
      assert.equal(await firstNonFinite(gpu, t), -1, "all finite");
      assert.equal((await readWithNonFiniteCheck(gpu, t)).first, -1);
      // Single bad values at window edges and inside, then two bad values in different windows.
      for (const bad of [[0], [383], [384], [1000], [n - 1], [2000, 900], [n - 1, 767]]) {
        const y = Float32Array.from(x);
        bad.forEach((i, k) => y[i] = [NaN, Infinity, -Infinity][(i + k) % 3]);
        writeTensor(t, y);
        const want = Math.min(...bad);
        assert.equal(await firstNonFinite(gpu, t), want, `bad at ${bad}`);
        const got = await readWithNonFiniteCheck(gpu, t);
        assert.equal(got.first, want, `read check, bad at ${bad}`);
        assert.ok(got.data.every((v, i) => Object.is(v, y[i])), "data comes back whole");
      }
    });
  } finally {
    t.destroy();
  }
});

interface AttnCase {
  name: string;
  B: number;
  T: number;
  layout: QkvLayout;
  window?: number;
  limit: number;
  /** One sequence's probabilities are over the limit: the head-block path. */
  heads?: boolean;
  /** One sequence's qkv rows are over the limit: head blocks on compact copies. */
  compact?: boolean;
}

const ATTN_CASES: AttnCase[] = [
  // Rows of 90 / 30 / 50 elements: no aligned block start fits, so blocks go through temporaries.
  { name: "temporaries, D 3", B: 11, T: 5, layout: blockedQkvLayout(2, 2, 3), limit: 2048 },
  // GQA with an unused padding column (col 12) that must survive, and a sliding window.
  {
    name: "temporaries, GQA + padding + window",
    B: 9,
    T: 6,
    layout: {
      nHead: 2,
      nKvHead: 1,
      headDim: 3,
      rowStride: 13,
      qOffset: 0,
      kOffset: 6,
      vOffset: 9,
      qHeadStride: 3,
      kvHeadStride: 3,
    },
    window: 4,
    limit: 2048,
  },
  // Rows of 192 / 64 / 256 elements: aligned windows of 3 sequences.
  { name: "windows, D 2", B: 5, T: 8, layout: blockedQkvLayout(4, 4, 2), limit: 4096 },
  // One sequence's probabilities (4 × 16 × 16) over the limit, its qkv rows (16 × 24) not: blocks of one
  // head, aligned probability windows.
  {
    name: "head blocks of 1, windows",
    B: 3,
    T: 16,
    layout: blockedQkvLayout(4, 4, 2),
    limit: 2048,
    heads: true,
  },
  // Blocks of 3 of 6 heads (T × T = 144 floats each, 444 fit); odd T.
  {
    name: "head blocks of 3, T 12",
    B: 2,
    T: 12,
    layout: blockedQkvLayout(6, 6, 2),
    limit: 2048,
    heads: true,
  },
  // GQA (2 query heads per kv head) with a padding column and a window: blocks of one group (2 heads,
  // 200 floats; 316 fit), probabilities at unaligned offsets through temporaries.
  {
    name: "head blocks, GQA + padding + window, temporaries",
    B: 3,
    T: 10,
    layout: {
      nHead: 4,
      nKvHead: 2,
      headDim: 3,
      rowStride: 25,
      qOffset: 1,
      kOffset: 13,
      vOffset: 19,
      qHeadStride: 3,
      kvHeadStride: 3,
    },
    window: 6,
    limit: 1536,
    heads: true,
  },
  // One sequence's qkv rows (16 × 96 floats) over a 4 KiB limit: blocks of 2 heads on compact copies.
  {
    name: "compact blocks, vec4",
    B: 2,
    T: 16,
    layout: blockedQkvLayout(4, 4, 8),
    limit: 4096,
    compact: true,
  },
  // GQA with wide padding (rows of 61, 10 × 61 over the span) and a window: one compact block of both
  // groups; the padding columns must survive.
  {
    name: "compact block, GQA + padding + window",
    B: 3,
    T: 10,
    layout: {
      nHead: 4,
      nKvHead: 2,
      headDim: 3,
      rowStride: 61,
      qOffset: 1,
      kOffset: 20,
      vOffset: 40,
      qHeadStride: 3,
      kvHeadStride: 3,
    },
    window: 6,
    limit: 2048,
    compact: true,
  },
];

Deno.test("split attention: forward probs and backward in sequence blocks vs float64 twins and the unsplit run", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const c of ATTN_CASES) {
    const { B, T, layout, window } = c;
    const H = layout.nHead, RS = layout.rowStride, HD = H * layout.headDim;
    const x = randn(r, B * T * RS, 2);
    const dO = randn(r, B * T * HD);
    const base = randn(r, B * T * RS);
    const qkv = createTensor(gpu, [B * T, RS], { name: "qkv", data: x });
    const out = createTensor(gpu, [B * T, HD], { name: "out" });
    const probs = createTensor(gpu, [B, H, T, T], { name: "probs" });
    const dout = createTensor(gpu, [B * T, HD], { name: "dout", data: dO });
    const dqkv = createTensor(gpu, [B * T, RS], { name: "dqkv" });
    assert.ok(probs.buffer.size > c.limit, `${c.name}: probs not over the limit`);
    // The head-block path runs iff one sequence's probabilities are over the window span.
    const span = c.limit / 4 - gpu.device.limits.minStorageBufferOffsetAlignment / 4 - 4;
    const compact = T * RS > span || T * HD > span;
    assert.equal(compact, Boolean(c.compact), `${c.name}: compact path`);
    if (!compact) assert.equal(H * T * T > span, Boolean(c.heads), `${c.name}: head-block path`);
    const opts = { B, T, layout, window };
    const run = async (limit: number | undefined) => {
      return await withLimit(gpu, limit, async () => {
        poison(out);
        poison(probs);
        await attention(gpu, qkv, out, { ...opts, probs });
        const o = await readTensor(out), p = await readTensor(probs);
        poison(dqkv);
        await attentionBackward(gpu, qkv, probs, dout, dqkv, opts);
        const g = await readTensor(dqkv);
        writeTensor(dqkv, base);
        await attentionBackward(gpu, qkv, probs, dout, dqkv, { ...opts, accumulate: true });
        return { o, p, g, acc: await readTensor(dqkv) };
      });
    };
    const split = await run(c.limit);
    const ref = attentionRef(x, c);
    assertClose(split.o, ref.out, 1e-5, `${c.name}: out`, seed);
    assertClose(split.p, ref.probs, 1e-5, `${c.name}: probs`, seed);
    const used = new Array(RS).fill(false);
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < layout.headDim; d++) used[layout.qOffset + h * layout.qHeadStride + d] = true;
    }
    for (let g = 0; g < layout.nKvHead; g++) {
      for (let d = 0; d < layout.headDim; d++) {
        used[layout.kOffset + g * layout.kvHeadStride + d] =
          used[layout.vOffset + g * layout.kvHeadStride + d] =
            true;
      }
    }
    const pick = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => used[i % RS]);
    const gref = attentionBackwardRef(x, split.p, dO, c);
    assertClose(pick(split.g), pick(gref), 1e-4, `${c.name}: dqkv`, seed);
    assertClose(split.acc, Array.from(gref, (v, i) => v + base[i]), 1e-4, `${c.name}: dqkv accumulate`, seed);
    split.g.forEach((v, i) => {
      if (!used[i % RS]) assert.ok(Number.isNaN(v), `${c.name}: padding column ${i % RS} written`);
    });
    // Sequences never mix, so the blocks compute exactly what the one dispatch does.
    const whole = await run(undefined);
    for (const k of ["o", "p", "g", "acc"] as const) {
      assert.ok(split[k].every((v, i) => Object.is(v, whole[k][i])), `${c.name}: ${k} differs from unsplit`);
    }
    for (const t of [qkv, out, probs, dout, dqkv]) t.destroy();
  }
});

Deno.test("split attention: one kv group's probabilities over the limit is a GpuError naming probs", async () => {
  const gpu = await getGpu();
  // 2 query heads per kv head, T 16: one group's probabilities are 2 × 256 floats (2 KiB), over a 2 KiB
  // limit; one sequence's qkv rows (16 × 16 floats) fit.
  const B = 2, T = 16, layout = blockedQkvLayout(4, 2, 2);
  const qkv = createTensor(gpu, [B * T, layout.rowStride], { name: "qkv", data: randn(rng(7), B * T * 16) });
  const out = createTensor(gpu, [B * T, 8], { name: "out" });
  const probs = createTensor(gpu, [B, 4, T, T], { name: "att.probs" });
  const dqkv = createTensor(gpu, [B * T, layout.rowStride], { name: "dqkv" });
  const namesProbs = (e: unknown) => e instanceof GpuError && e.field === "att.probs";
  try {
    await withLimit(gpu, 2048, async () => {
      await assert.rejects(() => attention(gpu, qkv, out, { B, T, layout, probs }), namesProbs);
      await assert.rejects(() => attentionBackward(gpu, qkv, probs, out, dqkv, { B, T, layout }), namesProbs);
      // One group's compact rows (16 × (2 + 2) × 16 floats) over the limit: the error names qkv.
      const wide = blockedQkvLayout(2, 1, 16), q2 = createTensor(gpu, [T, 64], { name: "qkv2" });
      const o2 = createTensor(gpu, [T, 32], { name: "out2" });
      try {
        await assert.rejects(
          () => attention(gpu, q2, o2, { B: 1, T, layout: wide }),
          (e: unknown) => e instanceof GpuError && e.field === "qkv2",
        );
      } finally {
        q2.destroy();
        o2.destroy();
      }
    });
  } finally {
    for (const t of [qkv, out, probs, dqkv]) t.destroy();
  }
});

Deno.test("split GPT-J head: all logits (windowed scan), lm_head.bias grad (row blocks) vs unsplit and float64", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  // A vocabulary of 301: logits / dlogits [10, 301] (12 KB), wte and lm_head over a 4 KiB limit;
  // activations (<= 10 × 54: C is 18) and the last positions' log-probs [2, 301] fit.
  const cfg: ModelConfig = { ...randomFamilyConfig("gptj", seed), vocabSize: 301 };
  const model = TransformerModel.create(gpu, cfg, randomWeights(cfg, seed));
  const V = cfg.vocabSize, B = 2, T = 5;
  const batch = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(r() * V)));
  const targets = batch.map((s) => s.map((_, t) => (t === 2 ? -1 : Math.floor(r() * V))));
  const run = (limit: number | undefined) =>
    withLimit(gpu, limit, async () => {
      const f = await model.forward(batch, { allLogits: true });
      const grads = new Gradients(model, ["lm_head.bias", "lm_head.weight"]);
      for (const g of grads.grads.values()) poison(g);
      const res = await lossAndGradients(model, batch, { targets }, { grads });
      const db = await grads.read("lm_head.bias"), dw = await grads.read("lm_head.weight");
      grads.destroy();
      return { logits: f.logits!, lp: f.logprobs, loss: res.loss, db, dw };
    });
  try {
    assert.ok(model.weight("lm_head.weight").buffer.size > 4096, "head over the limit");
    const dense = await run(undefined);
    const split = await run(4096);
    // Whole-K blocks of the head product and row-local softmaxes: the same bits.
    assert.ok(split.logits.every((v, i) => Object.is(v, dense.logits[i])), "all logits differ from unsplit");
    split.lp.forEach((l, b) => assert.ok(l.every((v, i) => Object.is(v, dense.lp[b][i])), `log-probs ${b}`));
    assert.ok(Math.abs(split.loss - dense.loss) <= 1e-6 * dense.loss, `loss ${split.loss} vs ${dense.loss}`);
    assertClose(split.dw, dense.dw, 1e-6, "lm_head.weight grad vs unsplit", seed);
    // Independent: d loss / d bias_v = mean over counted rows of softmax(logits)_v − [v = target], in float64.
    const want = new Float64Array(V);
    let count = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        if (targets[b][t] < 0) continue;
        count++;
        const off = (b * T + t) * V;
        let m = -Infinity, s = 0;
        for (let v = 0; v < V; v++) m = Math.max(m, split.logits[off + v]);
        for (let v = 0; v < V; v++) s += Math.exp(split.logits[off + v] - m);
        for (let v = 0; v < V; v++) want[v] += Math.exp(split.logits[off + v] - m) / s;
        want[targets[b][t]] -= 1;
      }
    }
    const e = assertClose(split.db, want.map((v) => v / count), 1e-5, "lm_head.bias grad vs float64", seed);
    console.log(
      `split GPT-J head: lm_head.bias grad rel error vs float64 ${e.toExponential(2)} (seed ${seed})`,
    );
  } finally {
    model.destroy();
  }
});

Deno.test("split elementwise activations: gelu, erf, geluBackward, residual adds, swiglu (+ backward) vs float64 and unsplit", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const n = 2311; // 9244 B: 7 windows of 384 at the 2 KiB limit
  const mk = (name: string, data?: Float32Array) => createTensor(gpu, [n], { name, data });
  const xs = [randn(r, n, 3), randn(r, n, 2), randn(r, n)];
  const [a, b, c] = xs.map((d, i) => mk(`in${i}`, d));
  const [o1, o2] = [mk("out1"), mk("out2")];
  const base = [randn(r, n), randn(r, n)];
  // Each case: run at a limit, read its outputs (poisoned first, or set to `base` when it accumulates).
  const cases: Array<
    [string, (acc: boolean) => Promise<void>, boolean, (acc: boolean) => ArrayLike<number>[]]
  > = [
    ["gelu tanh", () => gelu(gpu, a, o1), false, () => [geluRef(xs[0])]],
    ["gelu exact", () => gelu(gpu, a, o1, { approximate: "none" }), false, () => [geluRef(xs[0], "none")]],
    ["erf", () => erf(gpu, a, o1), false, () => [Float64Array.from(xs[0], erfRef)]],
    ["geluBackward", (acc) => geluBackward(gpu, a, b, o1, { accumulate: acc }), true, (acc) => {
      const d = geluBackwardRef(xs[0], xs[1]);
      return [acc ? d.map((v, i) => v + base[0][i]) : d];
    }],
    ["residualAdd", () => residualAdd(gpu, a, b, o1), false, () => [residualAddRef(xs[0], xs[1])]],
    ["swiglu", () => swiglu(gpu, a, b, o1), false, () => [swigluRef(xs[0], xs[1])]],
    ["swigluBackward", (acc) => swigluBackward(gpu, a, b, c, o1, o2, { accumulate: acc }), true, (acc) => {
      const { dgate, dup } = swigluBackwardRef(xs[0], xs[1], xs[2]);
      return acc ? [dgate.map((v, i) => v + base[0][i]), dup.map((v, i) => v + base[1][i])] : [dgate, dup];
    }],
  ];
  try {
    for (const [name, f, canAcc, want] of cases) {
      for (const acc of canAcc ? [false, true] : [false]) {
        const run = (limit: number | undefined) =>
          withLimit(gpu, limit, async () => {
            [o1, o2].forEach((t, i) => acc ? writeTensor(t, base[i]) : poison(t));
            await f(acc);
            return [await readTensor(o1), await readTensor(o2)];
          });
        const split = await run(2048), whole = await run(undefined);
        want(acc).forEach((w, i) => {
          assertClose(split[i], w, 2e-6, `${name} acc=${acc} output ${i}`, seed);
          assert.ok(
            split[i].every((v, j) => Object.is(v, whole[i][j])),
            `${name} acc=${acc}: differs from unsplit`,
          );
        });
      }
    }
    // In place: acc += b.
    writeTensor(o1, base[0]);
    await withLimit(gpu, 2048, () => residualAddInPlace(gpu, o1, b));
    assertClose(await readTensor(o1), residualAddRef(base[0], xs[1]), 1e-6, "residualAddInPlace", seed);
  } finally {
    for (const t of [a, b, c, o1, o2]) t.destroy();
  }
});

Deno.test("split layerNorm and layerNormBackward: row blocks (temporaries and windows) vs float64 and unsplit", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  // 37 × 29 at 2 KiB: rows of 29 never start aligned, so temporaries. 101 × 64 at 16 KiB: stats rows
  // (2 elements) start aligned every 32 rows, and 62 rows fit: aligned windows of 32 rows.
  for (const [rows, cols, limit] of [[37, 29, 2048], [101, 64, 16384]]) {
    const n = rows * cols;
    const xd = randn(r, n, 2), g = randn(r, cols), be = randn(r, cols), dOd = randn(r, n);
    const base = [randn(r, n), randn(r, cols), randn(r, cols)];
    const x = createTensor(gpu, [rows, cols], { name: "x", data: xd });
    const gamma = createTensor(gpu, [cols], { name: "gamma", data: g });
    const beta = createTensor(gpu, [cols], { name: "beta", data: be });
    const dout = createTensor(gpu, [rows, cols], { name: "dout", data: dOd });
    const out = createTensor(gpu, [rows, cols], { name: "out" });
    const stats = createTensor(gpu, [rows, 2], { name: "stats" });
    const dx = createTensor(gpu, [rows, cols], { name: "dx" });
    const dg = createTensor(gpu, [cols], { name: "dgamma" }),
      db = createTensor(gpu, [cols], { name: "dbeta" });
    assert.ok(x.buffer.size > limit, "x over the limit");
    const tag = `${rows}x${cols}`;
    const run = (lim: number | undefined, acc: boolean) =>
      withLimit(gpu, lim, async () => {
        for (const t of [out, stats]) poison(t);
        const plain = createTensor(gpu, [rows, cols], { name: "out_plain" });
        poison(plain);
        await layerNorm(gpu, x, gamma, beta, out, { rows, cols, stats });
        await layerNorm(gpu, x, gamma, beta, plain, { rows, cols });
        [dx, dg, db].forEach((t, i) => acc ? writeTensor(t, base[i]) : poison(t));
        await layerNormBackward(gpu, dout, x, gamma, stats, dx, dg, db, { rows, cols, accumulate: acc });
        const res = await Promise.all([out, plain, stats, dx, dg, db].map((t) => readTensor(t)));
        plain.destroy();
        return res;
      });
    const f = layerNormRef(xd, g, be, rows, cols);
    const bw = layerNormBackwardRef(dOd, xd, g, rows, cols);
    for (const acc of [false, true]) {
      const [o, plain, st, gx, gg, gb] = await run(limit, acc);
      assertClose(o, f.out, 1e-5, `${tag} out`, seed);
      assert.ok(plain.every((v, i) => Object.is(v, o[i])), `${tag}: out without stats differs`);
      assertClose(st, f.stats, 1e-5, `${tag} stats`, seed);
      const add = (w: Float64Array, i: number) => acc ? w.map((v, j) => v + base[i][j]) : w;
      assertClose(gx, add(bw.dx, 0), 1e-5, `${tag} dx acc=${acc}`, seed);
      assertClose(gg, add(bw.dgamma, 1), 1e-5, `${tag} dgamma acc=${acc}`, seed);
      assertClose(gb, add(bw.dbeta, 2), 1e-5, `${tag} dbeta acc=${acc}`, seed);
      // Row-local results are the unsplit bits; the parameter sums are summed per block.
      const whole = await run(undefined, acc);
      for (const k of [0, 2, 3]) {
        const got = [o, plain, st, gx][k];
        assert.ok(got.every((v, i) => Object.is(v, whole[k][i])), `${tag}: output ${k} differs from unsplit`);
      }
      assertClose(gg, whole[4], 1e-6, `${tag} dgamma vs unsplit`, seed);
    }
    for (const t of [x, gamma, beta, dout, out, stats, dx, dg, db]) t.destroy();
  }
});

Deno.test("split embedding / embeddingBackward over many tokens: out and dout in token blocks vs float64", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  // out / dout [301, 13] = 15.6 KB and wte [97, 13] = 5 KB over a 2 KiB limit: 34 tokens per block
  // (temporaries: rows of 13 never start aligned; ids and positions [301] are over it too). Many tokens
  // means a batch with explicit positions (wpe [31, 13] fits): with positionOffset + t, out is never
  // larger than wpe, whose own split is not supported.
  const [V, C, P, T] = [97, 13, 31, 301];
  const wteD = randn(r, V * C), wpeD = randn(r, P * C), doutD = randn(r, T * C);
  const ids = Array.from({ length: T }, (_, t) => (t % 7 === 0 ? V - 1 : Math.floor(r() * V)));
  const pos = Array.from({ length: T }, () => Math.floor(r() * P));
  const wte = createTensor(gpu, [V, C], { name: "wte", data: wteD });
  const wpe = createTensor(gpu, [P, C], { name: "wpe", data: wpeD });
  const out = createTensor(gpu, [T, C], { name: "out" });
  const idsT = createTensor(gpu, [T], { name: "ids", dtype: "u32", data: Uint32Array.from(ids) });
  const posT = createTensor(gpu, [T], { name: "pos", dtype: "u32", data: Uint32Array.from(pos) });
  const dout = createTensor(gpu, [T, C], { name: "dout", data: doutD });
  const dwte = createTensor(gpu, [V, C], { name: "dwte" }),
    dwpe = createTensor(gpu, [P, C], { name: "dwpe" });
  try {
    await withLimit(gpu, 2048, async () => {
      const check = async (what: string, f: () => Promise<void>, want: Float64Array) => {
        poison(out);
        await f();
        assertClose(await readTensor(out), want, 1e-6, what, seed);
      };
      await check(
        "positions (GPU)",
        () => embedding(gpu, idsT, wte, wpe, out, { T, C, positions: posT }),
        embeddingRef(ids, wteD, wpeD, C, { positions: pos }),
      );
      await check(
        "positions (host)",
        () => embedding(gpu, ids, wte, wpe, out, { T, C, positions: pos }),
        embeddingRef(ids, wteD, wpeD, C, { positions: pos }),
      );
      await check(
        "tokens",
        () => embedding(gpu, idsT, wte, null, out, { T, C }),
        embeddingRef(ids, wteD, null, C),
      );
      const ref = embeddingBackwardRef(doutD, ids, pos, V, P, C);
      poison(dwte);
      poison(dwpe);
      await embeddingBackward(gpu, dout, ids, pos, dwte, dwpe, { T, C });
      assertClose(await readTensor(dwte), ref.dwte, 1e-6, "dwte overwrite", seed);
      assertClose(await readTensor(dwpe), ref.dwpe, 1e-6, "dwpe overwrite", seed);
      const init = randn(r, V * C);
      writeTensor(dwte, init);
      poison(dwpe);
      await embeddingBackward(gpu, dout, ids, pos, dwte, dwpe, {
        T,
        C,
        accumulate: true,
        accumulatePositions: false,
      });
      assertClose(await readTensor(dwte), ref.dwte.map((g, i) => g + init[i]), 1e-6, "dwte accumulate", seed);
      assertClose(await readTensor(dwpe), ref.dwpe, 1e-6, "dwpe overwrite with dwte accumulating", seed);
    });
  } finally {
    for (const t of [wte, wpe, out, idsT, posT, dout, dwte, dwpe]) t.destroy();
  }
});

// B 4 × T 16: [64, 128] MLP activations 32 KB, [64, 32] rows 8 KB, logits [64, 61] 15.6 KB, all over a
// 7 KiB limit; one sequence's qkv rows (16 × 96 × 4 = 6 KB) fit, so attention runs a sequence per block.
// With 16 heads (head size 2) one sequence's probabilities (16 × 16 × 16 × 4 = 16 KB) are over it too:
// each sequence runs in blocks of heads. At 4 KiB one sequence's qkv rows are over it as well: blocks of
// heads on compact copies.
for (const [nHead, limit] of [[4, 7168], [16, 7168], [4, 4096]]) {
  Deno.test(`split GPT-2, ${nHead} heads, every activation over ${limit} bytes: forward and gradients vs unsplit and float64`, async () => {
    const gpu = await getGpu();
    const seed = freshSeed();
    const r = rng(seed);
    const cfg: ModelConfig = {
      nLayer: 2,
      nHead,
      nEmbd: 32,
      vocabSize: 61,
      nPositions: 16,
      nInner: 128,
      layerNormEpsilon: 1e-5,
    };
    const weights = randomGPT2(cfg, seed, { std: 0.05 });
    const model = TransformerModel.create(gpu, cfg, weights);
    const B = 4, T = 16, V = cfg.vocabSize;
    const batch = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(r() * V)));
    const targets = batch.map((s) => s.map((_, t) => (t === 3 ? -1 : Math.floor(r() * V))));
    const run = (limit: number | undefined) => forwardAndGradients(gpu, model, batch, targets, limit);
    try {
      const dense = await run(undefined);
      const split = await run(limit);
      assertClose(split.logits, dense.logits, 1e-6, "all logits vs unsplit", seed);
      assert.ok(
        Math.abs(split.loss - dense.loss) <= 1e-6 * dense.loss,
        `loss ${split.loss} vs ${dense.loss}`,
      );
      let worst = 0;
      for (const [n, g] of dense.g) {
        worst = Math.max(worst, assertClose(split.g.get(n)!, g, 1e-5, `grad ${n}`, seed));
      }
      // Independent: every sequence's logits against the float64 forward.
      let e64 = 0;
      for (let b = 0; b < B; b++) {
        const ref = gpt2ForwardRef(cfg, weights, batch[b]).logits;
        e64 = Math.max(
          e64,
          assertClose(
            split.logits.subarray(b * T * V, (b + 1) * T * V),
            ref,
            1e-5,
            `seq ${b} vs float64`,
            seed,
          ),
        );
      }
      console.log(
        `split GPT-2, ${nHead} heads (all activations over ${limit} bytes): gradients vs unsplit ${
          worst.toExponential(2)
        }, logits vs float64 ${e64.toExponential(2)}`,
      );
    } finally {
      model.destroy();
    }
  });
}

Deno.test("split strided rmsNorm (q/k norms in a fused qkv, Qwen3): blocks of whole tokens vs float64 and unsplit", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  // 37 token rows of W = 29 floats (4 q heads of 3 at 1, 2 k heads at 14, padding): x [37, 29] is 4.3 KB,
  // over a 2 KiB limit; rows of 29 never start aligned, so blocks go through temporaries. Then 130 rows
  // of 64 (4 heads of 8 at 0, 2 at 32) over 16 KiB: aligned windows of whole tokens.
  const cases = [
    { R: 37, W: 29, D: 3, norms: [[1, 4], [14, 2]], limit: 2048 },
    { R: 130, W: 64, D: 8, norms: [[0, 4], [32, 2]], limit: 16384 },
  ];
  for (const { R, W, D, norms, limit } of cases) {
    const xd = randn(r, R * W, 2), dOd = randn(r, R * W), base = randn(r, R * W);
    const x = createTensor(gpu, [R, W], { name: "qkv", data: xd });
    const dout = createTensor(gpu, [R, W], { name: "dqkv.out", data: dOd });
    const [out, dx] = ["qkv.normed", "dqkv"].map((name) => createTensor(gpu, [R, W], { name }));
    const weight = createTensor(gpu, [D], { name: "q_norm.weight", data: randn(r, D) });
    const w = await readTensor(weight);
    for (const [offset, heads] of norms) {
      const rows = R * heads, tag = `${R}x${W} norm at ${offset}`;
      const stats = createTensor(gpu, [rows], { name: "stats" });
      const addressing = { offset, rowsPerGroup: heads, groupStride: W, rowStride: D };
      const at = (i: number) => Math.floor(i / heads) * W + offset + (i % heads) * D;
      const pick = (a: ArrayLike<number>) => {
        const o = new Float64Array(rows * D);
        for (let i = 0; i < rows; i++) for (let d = 0; d < D; d++) o[i * D + d] = a[at(i) + d];
        return o;
      };
      const run = (lim: number | undefined, acc: boolean) =>
        withLimit(gpu, lim, async () => {
          poison(out);
          poison(stats);
          await rmsNorm(gpu, x, weight, out, { rows, cols: D, stats, addressing });
          acc ? writeTensor(dx, base) : poison(dx);
          await rmsNormBackward(gpu, dout, x, weight, stats, dx, null, {
            rows,
            cols: D,
            addressing,
            accumulate: acc,
          });
          return await Promise.all([out, stats, dx].map((t) => readTensor(t)));
        });
      const f = rmsNormRef(pick(xd), w, rows, D), bw = rmsNormBackwardRef(pick(dOd), pick(xd), w, rows, D);
      for (const acc of [false, true]) {
        const [o, st, gx] = await run(limit, acc);
        assertClose(pick(o), f.out, 1e-5, `${tag} out`, seed);
        assertClose(st, f.stats, 1e-5, `${tag} stats`, seed);
        const wantDx = acc ? bw.dx.map((v, j) => v + pick(base)[j]) : bw.dx;
        assertClose(pick(gx), wantDx, 1e-5, `${tag} dx acc=${acc}`, seed);
        // Unaddressed elements are never written (poison survives), and blocks equal the one dispatch.
        const whole = await run(undefined, acc);
        [o, st, gx].forEach((g, k) =>
          assert.ok(g.every((v, i) => Object.is(v, whole[k][i])), `${tag} ${k} acc=${acc} vs unsplit`)
        );
        assert.ok(Number.isNaN(o[offset === 0 ? W - 1 : 0]), `${tag}: an unaddressed element was written`);
      }
      stats.destroy();
    }
    assert.ok(x.buffer.size > limit);
    for (const t of [x, dout, out, dx, weight]) t.destroy();
  }
});

Deno.test("split rotary, rmsNorm and rmsNormBackward over many rows: row blocks vs float64 and unsplit", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  // rmsNorm: 53 × 23 (temporaries at 2 KiB) and 201 × 64 (stats rows of 1 start aligned every 64 rows:
  // windows of 64 rows at 32 KiB).
  for (const [rows, cols, limit] of [[53, 23, 2048], [201, 64, 32768]]) {
    const n = rows * cols, tag = `${rows}x${cols}`;
    const xd = randn(r, n, 2), w = randn(r, cols), dOd = randn(r, n), base = [randn(r, n), randn(r, cols)];
    const x = createTensor(gpu, [rows, cols], { name: "x", data: xd });
    const weight = createTensor(gpu, [cols], { name: "weight", data: w });
    const dout = createTensor(gpu, [rows, cols], { name: "dout", data: dOd });
    const [out, dx] = ["out", "dx"].map((name) => createTensor(gpu, [rows, cols], { name }));
    const stats = createTensor(gpu, [rows], { name: "stats" });
    const dw = createTensor(gpu, [cols], { name: "dweight" });
    assert.ok(x.buffer.size > limit);
    const run = (lim: number | undefined, acc: boolean) =>
      withLimit(gpu, lim, async () => {
        poison(out);
        poison(stats);
        await rmsNorm(gpu, x, weight, out, { rows, cols, stats });
        [dx, dw].forEach((t, i) => acc ? writeTensor(t, base[i]) : poison(t));
        await rmsNormBackward(gpu, dout, x, weight, stats, dx, dw, { rows, cols, accumulate: acc });
        return await Promise.all([out, stats, dx, dw].map((t) => readTensor(t)));
      });
    const f = rmsNormRef(xd, w, rows, cols), bw = rmsNormBackwardRef(dOd, xd, w, rows, cols);
    for (const acc of [false, true]) {
      const [o, st, gx, gw] = await run(limit, acc);
      const add = (v: Float64Array, i: number) => acc ? v.map((y, j) => y + base[i][j]) : v;
      assertClose(o, f.out, 1e-5, `${tag} rmsNorm out`, seed);
      assertClose(st, f.stats, 1e-5, `${tag} rmsNorm stats`, seed);
      assertClose(gx, add(bw.dx, 0), 1e-5, `${tag} dx acc=${acc}`, seed);
      assertClose(gw, add(bw.dweight, 1), 1e-5, `${tag} dweight acc=${acc}`, seed);
      const whole = await run(undefined, acc);
      [o, st, gx].forEach((g, k) =>
        assert.ok(g.every((v, i) => Object.is(v, whole[k][i])), `${tag} ${k} vs unsplit`)
      );
    }
    for (const t of [x, weight, dout, out, dx, stats, dw]) t.destroy();
  }
  // rotary in place on a GQA layout with a padding column, rows of 27 (temporaries) at 2 KiB.
  const layout = {
    nHead: 2,
    nKvHead: 1,
    headDim: 6,
    rowStride: 27,
    qOffset: 0,
    kOffset: 12,
    vOffset: 18,
    qHeadStride: 6,
    kvHeadStride: 6,
  };
  const rows = 61, dim = 4, nPos = 40;
  const q = randn(r, rows * layout.rowStride), cs = randn(r, nPos * 2), sn = randn(r, nPos * 2);
  const pos = Uint32Array.from({ length: rows }, () => Math.floor(r() * nPos));
  const tq = createTensor(gpu, [rows, layout.rowStride], { name: "qkv" });
  const tc = createTensor(gpu, [nPos, 2], { name: "cos", data: cs }),
    ts = createTensor(gpu, [nPos, 2], { name: "sin", data: sn });
  const tp = createTensor(gpu, [rows], { name: "positions", dtype: "u32", data: pos });
  try {
    for (const style of ["half", "interleaved"] as const) {
      const opts = { rows, layout, dim, style };
      const want = rotaryRef(q, cs, sn, pos, opts);
      const got: Float32Array[] = [];
      for (const lim of [2048, undefined]) {
        writeTensor(tq, q);
        await withLimit(gpu, lim, () => rotary(gpu, tq, tc, ts, lim ? tp : pos, opts));
        got.push(await readTensor(tq));
      }
      assertClose(got[0], want, 1e-6, `rotary ${style}`, seed);
      assert.ok(got[0].every((v, i) => Object.is(v, got[1][i])), `rotary ${style} vs unsplit`);
    }
  } finally {
    for (const t of [tq, tc, ts, tp]) t.destroy();
  }
});

// B 24 × T 16 = 384 rows: every [384, width] activation (>= 13.8 KB) is over a 6 KiB limit; one
// sequence's qkv rows (16 × <= 64 × 4 B) and attention probabilities (4 × 16 × 16 × 4 B) fit. Qwen3 adds
// per-head q/k RMSNorms inside the fused qkv (strided rows: blocks of whole tokens).
for (const variant of ["llama", "qwen3"] as const) {
  Deno.test(`split ${variant} (GQA, rotary, RMSNorm, SwiGLU) with activations over the limit vs unsplit and float64`, async () => {
    const gpu = await getGpu();
    const seed = freshSeed();
    const r = rng(seed);
    const cfg: ModelConfig = { ...randomFamilyConfig("llama", seed, variant), vocabSize: 61 };
    const weights = randomWeights(cfg, seed);
    const model = TransformerModel.create(gpu, cfg, weights);
    const B = 24, T = 16, V = cfg.vocabSize;
    const batch = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(r() * V)));
    const targets = batch.map((s) => s.map(() => Math.floor(r() * V)));
    const run = (limit: number | undefined) => forwardAndGradients(gpu, model, batch, targets, limit);
    try {
      const dense = await run(undefined);
      const split = await run(6144);
      assertClose(split.logits, dense.logits, 1e-6, "all logits vs unsplit", seed);
      assert.ok(
        Math.abs(split.loss - dense.loss) <= 1e-6 * dense.loss,
        `loss ${split.loss} vs ${dense.loss}`,
      );
      for (const [n, g] of dense.g) assertClose(split.g.get(n)!, g, 1e-5, `grad ${n}`, seed);
      for (const b of [0, B - 1]) {
        const ref = transformerForwardRef(cfg, weights, batch[b]).logits;
        assertClose(
          split.logits.subarray(b * T * V, (b + 1) * T * V),
          ref,
          2e-5,
          `seq ${b} vs float64`,
          seed,
        );
      }
    } finally {
      model.destroy();
    }
  });
}
