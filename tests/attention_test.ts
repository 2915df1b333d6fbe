import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import {
  attention,
  type AttentionShape,
  blockedQkvLayout,
  neoxQkvLayout,
  type QkvLayout,
} from "../src/gpu/attention.ts";
import { getGpu } from "../src/gpu/device.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { attentionRef, visible } from "../src/reference/attention.ts";
import { assertClose, freshSeed, randn, relErr, rng } from "./_util.ts";

const CONFIGS: AttentionShape[] = [
  { B: 1, T: 1, C: 2, nHead: 1 },
  { B: 2, T: 7, C: 12, nHead: 3 }, // D = 4
  { B: 1, T: 5, C: 6, nHead: 2 }, // D = 3
  { B: 3, T: 33, C: 48, nHead: 4 }, // D = 12
  { B: 1, T: 128, C: 64, nHead: 4 }, // D = 16
  { B: 1, T: 70, C: 8, nHead: 4 }, // D = 2, more than one workgroup of rows per head
  { B: 1, T: 9, C: 128, nHead: 2 }, // D = 64 (GPT-2's head size)
  { B: 2, T: 5, C: 128, nHead: 1 }, // D = 128 (the maximum)
];

const tag = (c: AttentionShape, scale: number) =>
  `B=${c.B} T=${c.T} C=${c.C} nHead=${c.nHead} scale=${scale}`;

for (const scale of [1, 5]) {
  Deno.test(`attention matches float64 twin (out and probs), input scale ${scale}`, async () => {
    const gpu = await getGpu();
    const seed = freshSeed();
    const r = rng(seed);
    // Peaky softmax (scale 5) amplifies f32 rounding in the scores: |δp| ≈ p·|δz|, |δz| ~ 1e-7·Σ|q_d k_d|.
    const tol = scale === 1 ? 1e-5 : 1e-4;
    const worst = { out: 0, probs: 0 };
    for (const c of CONFIGS) {
      const { B, T, C, nHead } = c;
      const x = randn(r, B * T * 3 * C, scale);
      const ref = attentionRef(x, c);
      const qkv = createTensor(gpu, [B, T, 3 * C], { name: "qkv", data: x });
      const out = createTensor(gpu, [B, T, C], { name: "out" });
      const probs = createTensor(gpu, [B, nHead, T, T], { name: "probs" });

      // Without probs (entry attention_fwd).
      poison(out);
      await attention(gpu, qkv, out, c);
      const o1 = await readTensor(out);
      worst.out = Math.max(worst.out, assertClose(o1, ref.out, tol, `out (no probs) ${tag(c, scale)}`, seed));

      // With probs (entry attention_probs): both outputs.
      poison(out);
      poison(probs);
      await attention(gpu, qkv, out, { ...c, probs });
      const o2 = await readTensor(out);
      const p2 = await readTensor(probs);
      worst.out = Math.max(
        worst.out,
        assertClose(o2, ref.out, tol, `out (with probs) ${tag(c, scale)}`, seed),
      );
      worst.probs = Math.max(worst.probs, assertClose(p2, ref.probs, tol, `probs ${tag(c, scale)}`, seed));

      // Above the diagonal exactly 0; each row sums to 1.
      for (let row = 0; row < B * nHead * T; row++) {
        const t = row % T;
        let sum = 0;
        for (let s = 0; s < T; s++) {
          const v = p2[row * T + s];
          if (s > t) assert.equal(v, 0, `probs[${row}, ${s}] above the diagonal (seed ${seed})`);
          else sum += v;
        }
        // The denominator sums exps taken against the running maximum, the stored probs exps against the
        // final one; WGSL's exp is accurate to 3 + 2|x| ULP, so at scale 5 (|z − max| up to ~20) a row may
        // miss 1 by ~1e-5 (measured 1.5e-5 on llvmpipe): the row sum gets the probs' own tolerance.
        assert.ok(
          Math.abs(sum - 1) < (scale === 1 ? 1e-5 : tol),
          `probs row ${row} sums to ${sum} (${tag(c, scale)}, seed ${seed})`,
        );
      }

      // Causality sanity check independent of the twin: position 0 attends only to itself, so its
      // output is v of position 0, per sequence and head.
      const D = C / nHead;
      const v0 = new Float64Array(B * C), o0 = new Float64Array(B * C);
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < C; j++) {
          v0[b * C + j] = x[b * T * 3 * C + 2 * C + j];
          o0[b * C + j] = o2[b * T * C + j];
        }
      }
      assertClose(o0, v0, 1e-6, `out[:, 0] == v[:, 0] ${tag(c, scale)} D=${D}`, seed);

      qkv.destroy();
      out.destroy();
      probs.destroy();
    }
    console.log(
      `attention scale ${scale}: worst rel. error out ${worst.out.toExponential(2)}, probs ${
        worst.probs.toExponential(2)
      }`,
    );
  });
}

/** One generalized case: a layout, and optionally a window and a scale. */
interface LayoutCase {
  name: string;
  B: number;
  T: number;
  layout: QkvLayout;
  window?: number;
  scale?: number;
}

/** Blocked layout with unused columns around and between the parts (rowStride > q + k + v). */
function paddedLayout(nHead: number, nKvHead: number, D: number): QkvLayout {
  return {
    nHead,
    nKvHead,
    headDim: D,
    rowStride: (nHead + 2 * nKvHead) * (D + 1) + 3,
    qOffset: 2,
    kOffset: 2 + nHead * (D + 1) + 1,
    vOffset: 3 + (nHead + nKvHead) * (D + 1),
    qHeadStride: D + 1,
    kvHeadStride: D + 1,
  };
}

// Few distinct head sizes (each compiles its own pipelines): 13 and 255 take the scalar path, 24 and
// 256 the vec4 path unless the layout is unaligned.
const LAYOUT_CASES: LayoutCase[] = [
  { name: "GQA H=6 KV=2 D=13", B: 2, T: 9, layout: blockedQkvLayout(6, 2, 13) },
  { name: "GQA H=6 KV=2 D=24", B: 1, T: 17, layout: blockedQkvLayout(6, 2, 24) },
  { name: "GQA H=4 KV=1 D=24 window 3", B: 2, T: 11, layout: blockedQkvLayout(4, 1, 24), window: 3 },
  { name: "neox H=3 D=24", B: 2, T: 7, layout: neoxQkvLayout(3, 24) },
  { name: "neox H=2 D=13 window 4", B: 1, T: 13, layout: neoxQkvLayout(2, 13), window: 4 },
  { name: "MHA H=3 D=13 window 1", B: 1, T: 6, layout: blockedQkvLayout(3, 3, 13), window: 1 },
  { name: "padded H=4 KV=2 D=24 scale 0.3", B: 2, T: 5, layout: paddedLayout(4, 2, 24), scale: 0.3 },
  { name: "D=256 H=2 KV=1", B: 1, T: 5, layout: blockedQkvLayout(2, 1, 256) },
  { name: "D=256 neox window 2", B: 2, T: 3, layout: neoxQkvLayout(1, 256), window: 2 },
  { name: "D=255 GQA window 70", B: 1, T: 75, layout: blockedQkvLayout(2, 1, 255), window: 70 },
  { name: "GQA H=8 KV=2 D=4, > 1 workgroup", B: 1, T: 70, layout: blockedQkvLayout(8, 2, 4), window: 33 },
];

Deno.test("attention with layouts, GQA, windows and scales matches the float64 twin", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { out: 0, probs: 0 };
  for (const c of LAYOUT_CASES) {
    const { B, T, layout } = c;
    const H = layout.nHead, D = layout.headDim;
    const x = randn(r, B * T * layout.rowStride, 2);
    const ref = attentionRef(x, c);
    const qkv = createTensor(gpu, [B * T, layout.rowStride], { name: "qkv", data: x });
    const out = createTensor(gpu, [B * T, H * D], { name: "out" });
    const probs = createTensor(gpu, [B, H, T, T], { name: "probs" });
    const opts = { B, T, layout, window: c.window, scale: c.scale };
    poison(out);
    await attention(gpu, qkv, out, opts);
    worst.out = Math.max(worst.out, assertClose(await readTensor(out), ref.out, 2e-5, `out ${c.name}`, seed));
    poison(out);
    poison(probs);
    await attention(gpu, qkv, out, { ...opts, probs });
    worst.out = Math.max(
      worst.out,
      assertClose(await readTensor(out), ref.out, 2e-5, `out (with probs) ${c.name}`, seed),
    );
    const p = await readTensor(probs);
    worst.probs = Math.max(worst.probs, assertClose(p, ref.probs, 2e-5, `probs ${c.name}`, seed));
    // Invisible keys exactly 0 (the twin's mask is checked here without the twin).
    for (let row = 0; row < B * H * T; row++) {
      const t = row % T;
      for (let s = 0; s < T; s++) {
        if (!visible(t, s, c.window)) assert.equal(p[row * T + s], 0, `${c.name} probs[${row}, ${s}]`);
      }
    }
    // Independent of the twin: the first position of each sequence attends only to itself, so its
    // output for head h is v of kv head floor(h / group).
    const o = await readTensor(out);
    const group = H / layout.nKvHead;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const vo = b * T * layout.rowStride + layout.vOffset + Math.floor(h / group) * layout.kvHeadStride;
        const oo = b * T * H * D + h * D;
        assertClose(
          o.subarray(oo, oo + D),
          x.subarray(vo, vo + D),
          1e-6,
          `${c.name} out[b, 0, h=${h}]`,
          seed,
        );
      }
    }
    for (const t of [qkv, out, probs]) t.destroy();
  }
  console.log(
    `attention layouts: worst rel. error out ${worst.out.toExponential(2)}, probs ${
      worst.probs.toExponential(2)
    }`,
  );
});

Deno.test("attention without a layout equals blockedQkvLayout(nHead, nHead, C / nHead) bit for bit", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const c of [{ B: 2, T: 9, C: 24, nHead: 3 }, { B: 1, T: 6, C: 15, nHead: 3 }]) {
    const x = randn(r, c.B * c.T * 3 * c.C);
    const qkv = createTensor(gpu, [c.B * c.T, 3 * c.C], { name: "qkv", data: x });
    const out = createTensor(gpu, [c.B * c.T, c.C], { name: "out" });
    await attention(gpu, qkv, out, c);
    const a = await readTensor(out);
    poison(out);
    await attention(gpu, qkv, out, {
      B: c.B,
      T: c.T,
      layout: blockedQkvLayout(c.nHead, c.nHead, c.C / c.nHead),
    });
    assert.deepEqual(await readTensor(out), a, `seed ${seed}`);
    // A window of T or more is no window.
    poison(out);
    await attention(gpu, qkv, out, { ...c, window: c.T + 5 });
    assert.deepEqual(await readTensor(out), a, `window > T (seed ${seed})`);
    qkv.destroy();
    out.destroy();
  }
});

Deno.test("attention output at t does not depend on later positions", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const c = { B: 2, T: 11, C: 12, nHead: 3 };
  const x = randn(r, c.B * c.T * 3 * c.C);
  const qkv = createTensor(gpu, [c.B, c.T, 3 * c.C], { name: "qkv", data: x });
  const out = createTensor(gpu, [c.B, c.T, c.C], { name: "out" });
  await attention(gpu, qkv, out, c);
  const before = await readTensor(out);
  // Scramble the last position of every sequence (q, k and v).
  const y = x.slice();
  for (let b = 0; b < c.B; b++) {
    const o = (b * c.T + c.T - 1) * 3 * c.C;
    for (let j = 0; j < 3 * c.C; j++) y[o + j] = 100 * (r() - 0.5);
  }
  const qkv2 = createTensor(gpu, [c.B, c.T, 3 * c.C], { name: "qkv2", data: y });
  await attention(gpu, qkv2, out, c);
  const after = await readTensor(out);
  for (let b = 0; b < c.B; b++) {
    const lo = b * c.T * c.C, hi = lo + (c.T - 1) * c.C;
    assert.equal(
      relErr(after.subarray(lo, hi), before.subarray(lo, hi), 1),
      0,
      `earlier positions changed (seed ${seed})`,
    );
    assert.ok(
      relErr(after.subarray(hi, hi + c.C), before.subarray(hi, hi + c.C), 1) > 0,
      "last position unchanged",
    );
  }
  qkv.destroy();
  qkv2.destroy();
  out.destroy();
});

Deno.test("attention rejects wrong shapes with ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const c = { B: 2, T: 4, C: 8, nHead: 2 };
  const qkv = createTensor(gpu, [2, 4, 24], { name: "qkv" });
  const out = createTensor(gpu, [2, 4, 8], { name: "att" });
  const bad = async (f: () => Promise<void>, field: string) => {
    let err: unknown;
    try {
      await f();
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ShapeError, `expected ShapeError for ${field}, got ${err}`);
    assert.equal(err.field, field, err.message);
  };
  await bad(() => attention(gpu, createTensor(gpu, [2, 4, 23], { name: "qkv_bad" }), out, c), "qkv_bad");
  await bad(() => attention(gpu, qkv, createTensor(gpu, [2, 4, 7], { name: "out_bad" }), c), "out_bad");
  await bad(
    () => attention(gpu, qkv, out, { ...c, probs: createTensor(gpu, [2, 2, 4, 3], { name: "probs_bad" }) }),
    "probs_bad",
  );
  await bad(() => attention(gpu, qkv, out, { ...c, nHead: 3 }), "nHead");
  await bad(() => attention(gpu, qkv, out, { ...c, T: 0 }), "T");
  await bad(() => attention(gpu, qkv, out, { ...c, B: 1.5 }), "B");
  await bad(
    () =>
      attention(
        gpu,
        createTensor(gpu, [1, 1, 3 * 258], { name: "q" }),
        createTensor(gpu, [1, 258], { name: "o" }),
        {
          B: 1,
          T: 1,
          C: 258,
          nHead: 1,
        },
      ),
    "nHead",
  );
  // Layout and option errors name the field.
  const L = blockedQkvLayout(2, 2, 4);
  const lc = { B: 2, T: 4, layout: L };
  await bad(() => attention(gpu, qkv, out, { ...lc, layout: { ...L, nKvHead: 3 } }), "layout.nKvHead");
  await bad(() => attention(gpu, qkv, out, { ...lc, layout: { ...L, kOffset: 6 } }), "layout");
  await bad(() => attention(gpu, qkv, out, { ...lc, layout: { ...L, vOffset: 21 } }), "layout.rowStride");
  await bad(
    () => attention(gpu, qkv, out, { ...lc, layout: { ...L, qHeadStride: -4 } }),
    "layout.qHeadStride",
  );
  await bad(() => attention(gpu, qkv, out, { ...lc, layout: blockedQkvLayout(1, 1, 257) }), "layout.headDim");
  await bad(() => attention(gpu, qkv, out, { ...lc, window: 0 }), "window");
  await bad(() => attention(gpu, qkv, out, { ...lc, nHead: 4 }), "nHead");
  await bad(() => attention(gpu, qkv, out, { ...lc, scale: NaN }), "scale");
  await bad(() => attention(gpu, qkv, out, { ...lc, layout: blockedQkvLayout(2, 1, 4) }), "qkv");
  // [B*T, 3C] as the model workspace allocates it is accepted.
  await attention(
    gpu,
    createTensor(gpu, [8, 24], { name: "qkv2d" }),
    createTensor(gpu, [8, 8], { name: "o2d" }),
    c,
  );
  await gpu.flush();
});
