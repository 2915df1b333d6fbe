import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import {
  attention,
  type AttentionShape,
  blockedQkvLayout,
  neoxQkvLayout,
  type QkvLayout,
} from "../src/gpu/attention.ts";
import { attentionBackward } from "../src/gpu/attention_backward.ts";
import { getGpu } from "../src/gpu/device.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { attentionRef, type AttentionRefShape } from "../src/reference/attention.ts";
import { attentionBackwardRef } from "../src/reference/attention_backward.ts";
import { assertClose, freshSeed, randn, relErr, rng } from "./_util.ts";

const tag = (c: AttentionShape) => `B=${c.B} T=${c.T} C=${c.C} nHead=${c.nHead}`;

Deno.test("attentionBackwardRef matches central finite differences of attentionRef (float64)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  const configs: AttentionShape[] = [
    { B: 1, T: 3, C: 4, nHead: 2 },
    { B: 2, T: 5, C: 6, nHead: 3 },
    { B: 1, T: 4, C: 8, nHead: 1 },
  ];
  for (const c of configs) {
    const { B, T, C } = c;
    const x = Float64Array.from(randn(r, B * T * 3 * C));
    const R = randn(r, B * T * C); // loss = sum(out ⊙ R), so dout = R
    const loss = () => {
      const out = attentionRef(x, c).out;
      let s = 0;
      for (let i = 0; i < out.length; i++) s += out[i] * R[i];
      return s;
    };
    const h = 1e-5;
    const fd = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      x[i] = v + h;
      const lp = loss();
      x[i] = v - h;
      const lm = loss();
      x[i] = v;
      fd[i] = (lp - lm) / (2 * h);
    }
    for (const probs of [null, attentionRef(x, c).probs]) {
      const g = attentionBackwardRef(x, probs, R, c);
      const e = relErr(g, fd);
      assert.ok(
        e <= 1e-6,
        `twin vs FD ${tag(c)} probs ${probs ? "given" : "recomputed"}: ${e} (seed ${seed})`,
      );
      worst = Math.max(worst, e);
    }
  }
  console.log(`attentionBackwardRef vs central FD: worst relative error ${worst.toExponential(2)}`);
});

/** Blocked layout with unused columns around and between the heads (rowStride > q + k + v). */
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

/** The row columns that hold a q, k or v element of `l`. */
function headColumns(l: QkvLayout): boolean[] {
  const used = new Array<boolean>(l.rowStride).fill(false);
  const mark = (at: number) => {
    for (let d = 0; d < l.headDim; d++) used[at + d] = true;
  };
  for (let h = 0; h < l.nHead; h++) mark(l.qOffset + h * l.qHeadStride);
  for (let g = 0; g < l.nKvHead; g++) {
    mark(l.kOffset + g * l.kvHeadStride);
    mark(l.vOffset + g * l.kvHeadStride);
  }
  return used;
}

type LayoutCase = AttentionRefShape & { name: string; B: number; T: number; layout: QkvLayout };

Deno.test("attentionBackwardRef with layouts, GQA, windows and scales matches central finite differences", () => {
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  const cases: LayoutCase[] = [
    { name: "GQA H=4 KV=2 D=3 window 2", B: 2, T: 5, layout: blockedQkvLayout(4, 2, 3), window: 2 },
    { name: "GQA H=3 KV=1 D=2 scale 0.7", B: 1, T: 4, layout: blockedQkvLayout(3, 1, 2), scale: 0.7 },
    { name: "neox H=2 D=3", B: 1, T: 4, layout: neoxQkvLayout(2, 3) },
    { name: "padded H=2 KV=1 D=2 window 3", B: 1, T: 5, layout: paddedLayout(2, 1, 2), window: 3 },
  ];
  for (const c of cases) {
    const { B, T, layout } = c;
    const x = Float64Array.from(randn(r, B * T * layout.rowStride));
    const R = randn(r, B * T * layout.nHead * layout.headDim); // loss = sum(out ⊙ R), so dout = R
    const loss = () => {
      const out = attentionRef(x, c).out;
      let s = 0;
      for (let i = 0; i < out.length; i++) s += out[i] * R[i];
      return s;
    };
    const h = 1e-5;
    const fd = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      x[i] = v + h;
      const lp = loss();
      x[i] = v - h;
      const lm = loss();
      x[i] = v;
      fd[i] = (lp - lm) / (2 * h);
    }
    for (const probs of [null, attentionRef(x, c).probs]) {
      const g = attentionBackwardRef(x, probs, R, c);
      const e = relErr(g, fd);
      assert.ok(
        e <= 1e-6,
        `twin vs FD ${c.name} probs ${probs ? "given" : "recomputed"}: ${e} (seed ${seed})`,
      );
      worst = Math.max(worst, e);
    }
  }
  console.log(`attentionBackwardRef (layouts) vs central FD: worst relative error ${worst.toExponential(2)}`);
});

const GPU_LAYOUT_CASES: LayoutCase[] = [
  { name: "GQA H=6 KV=2 D=13", B: 2, T: 9, layout: blockedQkvLayout(6, 2, 13) },
  { name: "GQA H=6 KV=2 D=24 window 5", B: 1, T: 17, layout: blockedQkvLayout(6, 2, 24), window: 5 },
  { name: "neox H=3 D=24", B: 2, T: 7, layout: neoxQkvLayout(3, 24) },
  {
    name: "neox H=2 D=13 window 4 scale 0.2",
    B: 1,
    T: 13,
    layout: neoxQkvLayout(2, 13),
    window: 4,
    scale: 0.2,
  },
  { name: "padded H=4 KV=2 D=24 window 2", B: 2, T: 6, layout: paddedLayout(4, 2, 24), window: 2 },
  { name: "D=256 H=2 KV=1", B: 1, T: 5, layout: blockedQkvLayout(2, 1, 256) },
  { name: "D=255 neox window 2", B: 2, T: 4, layout: neoxQkvLayout(1, 255), window: 2 },
  {
    name: "GQA H=8 KV=2 D=4 window 33, > 1 workgroup",
    B: 1,
    T: 70,
    layout: blockedQkvLayout(8, 2, 4),
    window: 33,
  },
];

Deno.test("attentionBackward with layouts, GQA, windows and scales matches the float64 twin", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const tol = 1e-4;
  const worst = { twin: 0, twin64: 0, acc: 0 };
  for (const c of GPU_LAYOUT_CASES) {
    const { B, T, layout } = c;
    const RS = layout.rowStride, HD = layout.nHead * layout.headDim;
    const x = randn(r, B * T * RS, 2);
    const dO = randn(r, B * T * HD);
    const qkv = createTensor(gpu, [B * T, RS], { name: "qkv", data: x });
    const out = createTensor(gpu, [B * T, HD], { name: "out" });
    const probs = createTensor(gpu, [B, layout.nHead, T, T], { name: "probs" });
    const dout = createTensor(gpu, [B * T, HD], { name: "dout", data: dO });
    const dqkv = createTensor(gpu, [B * T, RS], { name: "dqkv" });
    const opts = { B, T, layout, window: c.window, scale: c.scale };
    await attention(gpu, qkv, out, { ...opts, probs });
    const p32 = await readTensor(probs);
    const ref = attentionBackwardRef(x, p32, dO, c);
    const used = headColumns(layout);
    const pick = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => used[i % RS]);

    // Overwrite: every q/k/v element replaces the NaN poison; the other columns stay untouched. The
    // scratch is poisoned too: entries of invisible pairs must never be read.
    const scratch = createTensor(gpu, [B * layout.nHead * T * T], { name: "scratch" });
    poison(scratch);
    poison(dqkv);
    await attentionBackward(gpu, qkv, probs, dout, dqkv, { ...opts, scratch });
    const g = await readTensor(dqkv);
    worst.twin = Math.max(worst.twin, assertClose(pick(g), pick(ref), tol, `dqkv ${c.name}`, seed));
    for (let i = 0; i < g.length; i++) {
      if (!used[i % RS]) assert.ok(Number.isNaN(g[i]), `${c.name}: padding column ${i % RS} written`);
    }
    // Against the twin recomputing probs (with the window) in float64: includes the forward's rounding.
    const ref64 = attentionBackwardRef(x, null, dO, c);
    worst.twin64 = Math.max(
      worst.twin64,
      assertClose(pick(g), pick(ref64), 1e-3, `vs float64 probs ${c.name}`, seed),
    );

    // The window is encoded in probs: omitting it in the backward gives the same gradient.
    if (c.window !== undefined) {
      poison(dqkv);
      await attentionBackward(gpu, qkv, probs, dout, dqkv, { ...opts, window: undefined });
      assertClose(pick(await readTensor(dqkv)), pick(g), 1e-6, `no window in the backward, ${c.name}`, seed);
    }

    // Accumulate: dqkv = base + grad.
    const base = randn(r, B * T * RS);
    const dqkv2 = createTensor(gpu, [B * T, RS], { name: "dqkv2", data: base });
    await attentionBackward(gpu, qkv, probs, dout, dqkv2, { ...opts, accumulate: true });
    const want = ref.map((v, i) => v + base[i]);
    worst.acc = Math.max(
      worst.acc,
      assertClose(await readTensor(dqkv2), want, tol, `accumulate ${c.name}`, seed),
    );

    for (const t of [qkv, out, probs, dout, dqkv, dqkv2, scratch]) t.destroy();
  }
  console.log(
    `attentionBackward layouts: worst rel. error vs twin ${
      worst.twin.toExponential(2)
    }, vs twin (float64 probs) ${worst.twin64.toExponential(2)}, accumulate ${worst.acc.toExponential(2)}`,
  );
});

const GPU_CONFIGS: AttentionShape[] = [
  { B: 1, T: 1, C: 2, nHead: 1 },
  { B: 2, T: 7, C: 12, nHead: 3 }, // D = 4
  { B: 1, T: 5, C: 6, nHead: 2 }, // D = 3 (scalar path)
  { B: 1, T: 33, C: 48, nHead: 4 }, // D = 12
  { B: 1, T: 70, C: 10, nHead: 2 }, // D = 5, more than one workgroup of rows per head
  { B: 1, T: 64, C: 64, nHead: 1 }, // D = 64
  { B: 1, T: 6, C: 128, nHead: 1 }, // D = 128 (the maximum)
];

for (const scale of [1, 3]) {
  Deno.test(`attentionBackward matches float64 twin, overwrite and accumulate, input scale ${scale}`, async () => {
    const gpu = await getGpu();
    const seed = freshSeed();
    const r = rng(seed);
    const tol = 1e-4;
    const worst = { twin: 0, twinRecomputed: 0, acc: 0 };
    for (const c of GPU_CONFIGS) {
      const { B, T, C, nHead } = c;
      const x = randn(r, B * T * 3 * C, scale);
      const dO = randn(r, B * T * C);
      const qkv = createTensor(gpu, [B * T, 3 * C], { name: "qkv", data: x });
      const out = createTensor(gpu, [B * T, C], { name: "out" });
      const probs = createTensor(gpu, [B, nHead, T, T], { name: "probs" });
      const dout = createTensor(gpu, [B * T, C], { name: "dout", data: dO });
      const dqkv = createTensor(gpu, [B * T, 3 * C], { name: "dqkv" });
      await attention(gpu, qkv, out, { ...c, probs });
      const p32 = await readTensor(probs);

      // Overwrite: the NaN poison must be fully replaced.
      poison(dqkv);
      await attentionBackward(gpu, qkv, probs, dout, dqkv, c);
      const g = await readTensor(dqkv);
      const ref = attentionBackwardRef(x, p32, dO, c);
      worst.twin = Math.max(worst.twin, assertClose(g, ref, tol, `dqkv ${tag(c)} scale ${scale}`, seed));
      // Against the twin recomputing probs in float64 (includes the forward's f32 rounding).
      const ref64 = attentionBackwardRef(x, null, dO, c);
      worst.twinRecomputed = Math.max(
        worst.twinRecomputed,
        assertClose(g, ref64, 1e-3, `dqkv vs float64 probs ${tag(c)} scale ${scale}`, seed),
      );

      // Accumulate: dqkv = base + grad.
      const base = randn(r, B * T * 3 * C);
      const dqkv2 = createTensor(gpu, [B * T, 3 * C], { name: "dqkv2", data: base });
      await attentionBackward(gpu, qkv, probs, dout, dqkv2, { ...c, accumulate: true });
      const g2 = await readTensor(dqkv2);
      const want = ref.map((v, i) => v + base[i]);
      worst.acc = Math.max(
        worst.acc,
        assertClose(g2, want, tol, `accumulate ${tag(c)} scale ${scale}`, seed),
      );

      for (const t of [qkv, out, probs, dout, dqkv, dqkv2]) t.destroy();
    }
    console.log(
      `attentionBackward scale ${scale}: worst rel. error vs twin (GPU probs) ${
        worst.twin.toExponential(2)
      }, ` +
        `vs twin (float64 probs) ${worst.twinRecomputed.toExponential(2)}, accumulate ${
          worst.acc.toExponential(2)
        }`,
    );
  });
}

Deno.test("attentionBackward is deterministic and honours an explicit (oversized) scratch", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const c = { B: 2, T: 9, C: 16, nHead: 2 };
  const { B, T, C, nHead } = c;
  const x = randn(r, B * T * 3 * C);
  const dO = randn(r, B * T * C);
  const qkv = createTensor(gpu, [B * T, 3 * C], { name: "qkv", data: x });
  const out = createTensor(gpu, [B * T, C], { name: "out" });
  const probs = createTensor(gpu, [B, nHead, T, T], { name: "probs" });
  const dout = createTensor(gpu, [B * T, C], { name: "dout", data: dO });
  const dqkv = createTensor(gpu, [B * T, 3 * C], { name: "dqkv" });
  const scratch = createTensor(gpu, [B * nHead * T * T + 37], { name: "scratch" });
  poison(scratch);
  await attention(gpu, qkv, out, { ...c, probs });
  await attentionBackward(gpu, qkv, probs, dout, dqkv, c);
  const a = await readTensor(dqkv);
  poison(dqkv);
  await attentionBackward(gpu, qkv, probs, dout, dqkv, { ...c, scratch });
  const b = await readTensor(dqkv);
  assert.equal(relErr(b, a, 1), 0, `explicit scratch changed the result (seed ${seed})`);
  poison(dqkv);
  await attentionBackward(gpu, qkv, probs, dout, dqkv, c);
  assert.deepEqual(await readTensor(dqkv), a, `not bit-reproducible (seed ${seed})`);
  for (const t of [qkv, out, probs, dout, dqkv, scratch]) t.destroy();
});

Deno.test("attentionBackward rejects wrong shapes with ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const c = { B: 2, T: 4, C: 8, nHead: 2 };
  const mk = (shape: number[], name: string) => createTensor(gpu, shape, { name });
  const qkv = mk([8, 24], "qkv");
  const probs = mk([2, 2, 4, 4], "probs");
  const dout = mk([8, 8], "dout");
  const dqkv = mk([8, 24], "dqkv");
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
  await bad(() => attentionBackward(gpu, mk([8, 23], "qkv_bad"), probs, dout, dqkv, c), "qkv_bad");
  await bad(() => attentionBackward(gpu, qkv, mk([2, 2, 4, 3], "probs_bad"), dout, dqkv, c), "probs_bad");
  await bad(() => attentionBackward(gpu, qkv, probs, mk([8, 7], "dout_bad"), dqkv, c), "dout_bad");
  await bad(() => attentionBackward(gpu, qkv, probs, dout, mk([8, 8], "dqkv_bad"), c), "dqkv_bad");
  await bad(
    () =>
      attentionBackward(
        gpu,
        qkv,
        probs,
        dout,
        createTensor(gpu, [8, 24], { name: "dqkv_u32", dtype: "u32" }),
        c,
      ),
    "dqkv_u32",
  );
  await bad(() => attentionBackward(gpu, qkv, probs, dout, qkv, c), "qkv"); // dqkv aliases qkv
  await bad(
    () => attentionBackward(gpu, qkv, probs, dout, dqkv, { ...c, scratch: mk([63], "scratch_small") }),
    "scratch_small",
  );
  await bad(() => attentionBackward(gpu, qkv, probs, dout, dqkv, { ...c, scratch: dqkv }), "dqkv");
  await bad(() => attentionBackward(gpu, qkv, probs, dout, dqkv, { ...c, nHead: 3 }), "nHead");
  await bad(() => attentionBackward(gpu, qkv, probs, dout, dqkv, { ...c, T: 0 }), "T");
  await bad(() => attentionBackward(gpu, qkv, probs, dout, dqkv, { ...c, B: 1.5 }), "B");
  await bad(
    () =>
      attentionBackward(
        gpu,
        mk([1, 3 * 258], "q"),
        mk([1, 1, 1, 1], "p"),
        mk([1, 258], "o"),
        mk([1, 3 * 258], "g"),
        {
          B: 1,
          T: 1,
          C: 258,
          nHead: 1,
        },
      ),
    "nHead",
  );
  const L = blockedQkvLayout(2, 2, 4);
  await bad(
    () => attentionBackward(gpu, qkv, probs, dout, dqkv, { B: 2, T: 4, layout: { ...L, nKvHead: 3 } }),
    "layout.nKvHead",
  );
  await bad(
    () => attentionBackward(gpu, qkv, probs, dout, dqkv, { B: 2, T: 4, layout: blockedQkvLayout(2, 1, 4) }),
    "qkv",
  );
  await bad(() => attentionBackward(gpu, qkv, probs, dout, dqkv, { ...c, window: -1 }), "window");
  // The right shapes (any shape with the right element count) are accepted.
  await attentionBackward(gpu, mk([2, 4, 24], "qkv3d"), probs, mk([2, 4, 8], "dout3d"), dqkv, c);
  await gpu.flush();
});
