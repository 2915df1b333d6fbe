import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { rmsNorm } from "../src/gpu/rmsnorm.ts";
import { rmsNormBackward } from "../src/gpu/rmsnorm_backward.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import {
  rmsNormBackwardRef,
  rmsNormRef,
  type RmsNormRefAddressing,
  rowStarts,
} from "../src/reference/rmsnorm.ts";
import { assertClose, freshSeed, randn, relErr, rng } from "./_util.ts";

// [rows, cols]: cols below, at and above the workgroup size (64), a Llama-ish width, cols 1.
const SHAPES: Array<[number, number]> = [[1, 1], [3, 7], [5, 64], [4, 65], [2, 129], [3, 1031]];

/**
 * Addressed layouts: R token rows of width W holding heads of width D. Qwen3-like q heads (H = 3,
 * D = 7, W = 37, offset 5), and one with gaps between heads (rowStride > cols).
 */
const LAYOUTS: Array<{ R: number; W: number; H: number; D: number; a: RmsNormRefAddressing }> = [
  { R: 4, W: 37, H: 3, D: 7, a: { offset: 5, rowsPerGroup: 3, groupStride: 37, rowStride: 7 } },
  { R: 5, W: 41, H: 2, D: 9, a: { offset: 3, rowsPerGroup: 2, groupStride: 41, rowStride: 13 } },
  { R: 1, W: 70, H: 1, D: 65, a: { offset: 2 } },
];

const plus = (a: ArrayLike<number>, d: ArrayLike<number>) => Float64Array.from(d, (v, i) => v + a[i]);

Deno.test("rmsNorm matches float64 twin (out and stats) on odd sizes", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { out: 0, stats: 0 };
  for (const [rows, cols] of SHAPES) {
    // Rows of very different scales: rstd must be per row.
    const x = randn(r, rows * cols, 2);
    for (let i = 0; i < rows; i++) {
      const s = Math.exp((r() - 0.5) * 6);
      for (let c = 0; c < cols; c++) x[i * cols + c] *= s;
    }
    const w = randn(r, cols);
    const eps = 1e-6;
    const ref = rmsNormRef(x, w, rows, cols, eps);
    const tx = createTensor(gpu, [rows, cols], { name: "x", data: x });
    const tw = createTensor(gpu, [cols], { name: "weight", data: w });
    const out = createTensor(gpu, [rows, cols], { name: "out" });
    const stats = createTensor(gpu, [rows], { name: "stats" });
    const what = `rows=${rows} cols=${cols}`;

    poison(out);
    await rmsNorm(gpu, tx, tw, out, { rows, cols });
    worst.out = Math.max(worst.out, assertClose(await readTensor(out), ref.out, 2e-6, `out ${what}`, seed));

    poison(out);
    poison(stats);
    await rmsNorm(gpu, tx, tw, out, { rows, cols, eps, stats });
    worst.out = Math.max(
      worst.out,
      assertClose(await readTensor(out), ref.out, 2e-6, `out+stats ${what}`, seed),
    );
    // Elementwise relative error of rstd (rows have different scales).
    const st = await readTensor(stats);
    const e = Math.max(...Array.from(st, (v, i) => Math.abs(v - ref.stats[i]) / ref.stats[i]));
    assert.ok(e <= 2e-6, `stats ${what}: relative error ${e} (seed ${seed})`);
    worst.stats = Math.max(worst.stats, e);
    for (const t of [tx, tw, out, stats]) t.destroy();
  }
  console.log(
    `rmsNorm worst relative error: out ${worst.out.toExponential(2)}, stats ${worst.stats.toExponential(2)}`,
  );
});

Deno.test("rmsNorm on heads inside a wider buffer writes only the addressed elements", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  for (const { R, W, H, D, a } of LAYOUTS) {
    const rows = R * H, n = R * W, eps = 1e-6;
    const x = randn(r, n, 3), w = randn(r, D), base = randn(r, n);
    const ref = rmsNormRef(x, w, rows, D, eps, { addressing: a, base });
    const tx = createTensor(gpu, [R, W], { name: "qkv", data: x });
    const tw = createTensor(gpu, [D], { name: "q_norm.weight", data: w });
    const out = createTensor(gpu, [R, W], { name: "qkv.normed", data: base });
    const stats = createTensor(gpu, [rows], { name: "stats" });
    poison(stats);
    await rmsNorm(gpu, tx, tw, out, { rows, cols: D, eps, stats, addressing: a });
    const got = await readTensor(out);
    const what = `R=${R} W=${W} H=${H} D=${D} ${JSON.stringify(a)}`;
    worst = Math.max(worst, assertClose(got, ref.out, 2e-6, `addressed out ${what}`, seed));
    // Elements outside the heads are bit-for-bit untouched.
    const covered = new Set(rowStarts(rows, D, a).flatMap((o) => Array.from({ length: D }, (_, c) => o + c)));
    for (let i = 0; i < n; i++) {
      if (!covered.has(i)) assert.equal(got[i], base[i], `element ${i} changed (${what})`);
    }
    assertClose(await readTensor(stats), ref.stats, 2e-6, `addressed stats ${what}`, seed);
    for (const t of [tx, tw, out, stats]) t.destroy();
  }
  console.log(`rmsNorm addressed worst relative error: ${worst.toExponential(2)}`);
});

Deno.test("rmsNorm handles more rows than one grid dimension (grid split over y)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const rows = gpu.device.limits.maxComputeWorkgroupsPerDimension + 3, cols = 3;
  const x = randn(r, rows * cols), w = randn(r, cols);
  const ref = rmsNormRef(x, w, rows, cols, 1e-5);
  const tx = createTensor(gpu, [rows, cols], { data: x }), tw = createTensor(gpu, [cols], { data: w });
  const out = createTensor(gpu, [rows, cols]);
  poison(out);
  await rmsNorm(gpu, tx, tw, out, { rows, cols, eps: 1e-5 });
  assertClose(await readTensor(out), ref.out, 2e-6, `rows=${rows} cols=${cols}`, seed);
  for (const t of [tx, tw, out]) t.destroy();
});

/** Central finite difference of sum(dout * f(p)) with respect to every entry of p (modified in place, restored). */
function fdGrad(
  p: Float64Array,
  dout: ArrayLike<number>,
  f: () => ArrayLike<number>,
  h = 1e-5,
): Float64Array {
  const loss = () => {
    const y = f();
    let s = 0;
    for (let i = 0; i < y.length; i++) s += dout[i] * y[i];
    return s;
  };
  const g = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const v = p[i];
    p[i] = v + h;
    const lp = loss();
    p[i] = v - h;
    const lm = loss();
    p[i] = v;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

Deno.test("rmsNormBackwardRef matches central finite differences of rmsNormRef (dense and addressed)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  // [rows, cols, elements, eps, addressing]. cols = 1 with a large eps: with eps = 1e-6 the function is
  // nearly constant (w * sign(x)) and its derivative drowns in the differences' rounding.
  const cases: Array<[number, number, number, number, RmsNormRefAddressing | undefined]> = [
    [2, 1, 2, 0.5, undefined],
    [3, 5, 15, 1e-6, undefined],
    [4, 16, 64, 1e-6, undefined],
    // 2 token rows of width 37 with 3 heads of 7 at offset 5.
    [6, 7, 74, 1e-6, { offset: 5, rowsPerGroup: 3, groupStride: 37, rowStride: 7 }],
  ];
  let worst = 0;
  for (const [rows, cols, n, eps, a] of cases) {
    const x = Float64Array.from(randn(r, n, 2)), w = Float64Array.from(randn(r, cols));
    const dout = randn(r, n);
    const ref = rmsNormBackwardRef(dout, x, w, rows, cols, eps, a);
    const fwd = () => rmsNormRef(x, w, rows, cols, eps, { addressing: a }).out;
    const what = `rows=${rows} cols=${cols} ${JSON.stringify(a)} (seed ${seed})`;
    const edx = relErr(ref.dx, fdGrad(x, dout, fwd)), edw = relErr(ref.dweight, fdGrad(w, dout, fwd));
    assert.ok(edx <= 1e-6 && edw <= 1e-6, `vs finite differences ${what}: dx ${edx}, dweight ${edw}`);
    worst = Math.max(worst, edx, edw);
  }
  console.log(`rmsNormBackwardRef vs central FD, worst relative error ${worst.toExponential(2)}`);
});

Deno.test("rmsNormBackward matches float64 twin on odd sizes, overwrite and accumulate", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { dx: 0, dweight: 0 };
  const shapes: Array<[number, number]> = [];
  for (const rows of [1, 7, 33]) for (const cols of [1, 5, 64, 97]) shapes.push([rows, cols]);
  shapes.push([3, 1031]);
  for (const [rows, cols] of shapes) {
    const eps = 1e-6;
    const x = randn(r, rows * cols, 2), w = randn(r, cols), dout = randn(r, rows * cols);
    const ref = rmsNormBackwardRef(dout, x, w, rows, cols, eps);
    const tx = createTensor(gpu, [rows, cols], { name: "x", data: x });
    const tw = createTensor(gpu, [cols], { name: "weight", data: w });
    const tdout = createTensor(gpu, [rows, cols], { name: "dout", data: dout });
    const out = createTensor(gpu, [rows, cols], { name: "out" });
    const stats = createTensor(gpu, [rows], { name: "stats" });
    const dx = createTensor(gpu, [rows, cols], { name: "dx" });
    const dw = createTensor(gpu, [cols], { name: "dweight" });
    await rmsNorm(gpu, tx, tw, out, { rows, cols, eps, stats });
    const what = `rows=${rows} cols=${cols}`;

    poison(dx);
    poison(dw);
    await rmsNormBackward(gpu, tdout, tx, tw, stats, dx, dw, { rows, cols });
    // cols = 1: y = w x / sqrt(x^2 + eps) is nearly constant and dx = rstd g (1 - xhat^2) cancels to
    // ~eps / x^2 of its terms, so f32 can only be measured against the size of those terms, rstd * |g|.
    const st = rmsNormRef(x, w, rows, cols, eps).stats;
    const floor = cols > 1 ? 1e-6 : Math.max(...Array.from(st, (s, i) => s * Math.abs(dout[i] * w[0])));
    const checkDx = (got: ArrayLike<number>, want: ArrayLike<number>, label: string) => {
      const e = relErr(got, want, floor);
      assert.ok(e <= 1e-5, `${label} ${what}: relative error ${e.toExponential(3)} (seed ${seed})`);
      worst.dx = Math.max(worst.dx, e);
    };
    checkDx(await readTensor(dx), ref.dx, "dx");
    worst.dweight = Math.max(
      worst.dweight,
      assertClose(await readTensor(dw), ref.dweight, 1e-5, `dweight ${what}`, seed),
    );

    const px = randn(r, rows * cols), pw = randn(r, cols);
    const dx2 = createTensor(gpu, [rows, cols], { name: "dx", data: px });
    const dw2 = createTensor(gpu, [cols], { name: "dweight", data: pw });
    await rmsNormBackward(gpu, tdout, tx, tw, stats, dx2, dw2, { rows, cols, accumulate: true });
    checkDx(await readTensor(dx2), plus(px, ref.dx), "dx +=");
    worst.dweight = Math.max(
      worst.dweight,
      assertClose(await readTensor(dw2), plus(pw, ref.dweight), 1e-5, `dweight += ${what}`, seed),
    );
    for (const t of [tx, tw, tdout, out, stats, dx, dw, dx2, dw2]) t.destroy();
  }
  console.log(
    `rmsNormBackward GPU vs float64 twin, worst relative error: dx ${worst.dx.toExponential(2)}, dweight ${
      worst.dweight.toExponential(2)
    }`,
  );
});

Deno.test("rmsNormBackward on addressed heads: dx only at the heads, accumulate and accumulateParams", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { dx: 0, dweight: 0 };
  for (const { R, W, H, D, a } of LAYOUTS) {
    const rows = R * H, n = R * W, eps = 1e-6;
    const x = randn(r, n, 2), w = randn(r, D), dout = randn(r, n);
    const ref = rmsNormBackwardRef(dout, x, w, rows, D, eps, a);
    const tx = createTensor(gpu, [R, W], { name: "qkv", data: x });
    const tw = createTensor(gpu, [D], { name: "q_norm.weight", data: w });
    const tdout = createTensor(gpu, [R, W], { name: "dqkv.normed", data: dout });
    const out = createTensor(gpu, [R, W], { name: "qkv.normed" });
    const stats = createTensor(gpu, [rows], { name: "stats" });
    await rmsNorm(gpu, tx, tw, out, { rows, cols: D, eps, stats, addressing: a });
    const covered = new Set(rowStarts(rows, D, a).flatMap((o) => Array.from({ length: D }, (_, c) => o + c)));
    const what = `R=${R} W=${W} H=${H} D=${D} ${JSON.stringify(a)}`;
    for (const [acc, accParams] of [[false, false], [true, false], [false, true], [true, true]]) {
      const px = randn(r, n), pw = randn(r, D);
      const dx = createTensor(gpu, [R, W], { name: "dqkv", data: px });
      const dw = createTensor(gpu, [D], { name: "dweight", data: pw });
      if (!accParams) poison(dw);
      await rmsNormBackward(gpu, tdout, tx, tw, stats, dx, dw, {
        rows,
        cols: D,
        accumulate: acc,
        accumulateParams: accParams,
        addressing: a,
      });
      const got = await readTensor(dx);
      const want = Float64Array.from(px, (v, i) => covered.has(i) ? (acc ? v : 0) + ref.dx[i] : v);
      const tag = `${what} accumulate=${acc} accumulateParams=${accParams}`;
      worst.dx = Math.max(worst.dx, assertClose(got, want, 1e-5, `dx ${tag}`, seed));
      for (let i = 0; i < n; i++) {
        if (!covered.has(i)) assert.equal(got[i], px[i], `dx[${i}] changed (${tag})`);
      }
      worst.dweight = Math.max(
        worst.dweight,
        assertClose(
          await readTensor(dw),
          accParams ? plus(pw, ref.dweight) : ref.dweight,
          1e-5,
          `dw ${tag}`,
          seed,
        ),
      );
      dx.destroy();
      dw.destroy();
    }
    // Without dweight: only dx is written.
    const dx = createTensor(gpu, [R, W], { name: "dqkv" });
    poison(dx);
    await rmsNormBackward(gpu, tdout, tx, tw, stats, dx, undefined, { rows, cols: D, addressing: a });
    const got = await readTensor(dx);
    const gotHeads = Float64Array.from(got, (v, i) => covered.has(i) ? v : 0);
    assertClose(gotHeads, ref.dx, 1e-5, `dx (no dweight) ${what}`, seed);
    for (const t of [tx, tw, tdout, out, stats, dx]) t.destroy();
  }
  console.log(
    `rmsNormBackward addressed worst relative error: dx ${worst.dx.toExponential(2)}, dweight ${
      worst.dweight.toExponential(2)
    }`,
  );
});

Deno.test("rmsNorm and rmsNormBackward reject bad shapes, layouts and aliasing with ShapeError", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [2, 4], { name: "x" });
  const w = createTensor(gpu, [4], { name: "norm.weight" });
  const out = createTensor(gpu, [2, 4], { name: "norm.out" });
  const stats = createTensor(gpu, [2], { name: "norm.stats" });
  const dx = createTensor(gpu, [2, 4], { name: "dx" }), dw = createTensor(gpu, [4], { name: "dweight" });
  const bad = createTensor(gpu, [3], { name: "short.t" });
  const opts = { rows: 2, cols: 4 };
  const names = (s: string) => (e: unknown) => e instanceof ShapeError && e.message.includes(s);
  await assert.rejects(() => rmsNorm(gpu, x, bad, out, opts), names("short.t"));
  await assert.rejects(() => rmsNorm(gpu, x, w, out, { rows: 3, cols: 4 }), names("'x'"));
  await assert.rejects(() => rmsNorm(gpu, x, w, out, { ...opts, stats: bad }), names("short.t"));
  await assert.rejects(() => rmsNorm(gpu, x, w, x, opts), ShapeError);
  await assert.rejects(() => rmsNorm(gpu, x, w, out, { ...opts, eps: -1 }), names("eps"));
  // Addressed rows that overlap or leave the buffer.
  await assert.rejects(
    () => rmsNorm(gpu, x, w, out, { rows: 2, cols: 2, addressing: { rowStride: 1 } }),
    names("rowStride"),
  );
  await assert.rejects(
    () => rmsNorm(gpu, x, w, out, { rows: 4, cols: 2, addressing: { rowsPerGroup: 2, groupStride: 3 } }),
    names("groupStride"),
  );
  await assert.rejects(
    () => rmsNorm(gpu, x, bad, out, { rows: 2, cols: 3, addressing: { offset: 3, rowStride: 3 } }),
    names("'x'"),
  );
  await assert.rejects(() => rmsNormBackward(gpu, x, x, w, bad, dx, dw, opts), names("short.t"));
  await assert.rejects(() => rmsNormBackward(gpu, x, x, w, stats, dx, bad, opts), names("short.t"));
  await assert.rejects(() => rmsNormBackward(gpu, x, x, w, stats, bad, dw, opts), names("short.t"));
  await assert.rejects(() => rmsNormBackward(gpu, out, x, w, stats, out, dw, opts), names("'norm.out'"));
  await assert.rejects(() => rmsNormBackward(gpu, out, x, w, stats, dx, dx, opts), names("'dx'"));
  for (const t of [x, w, out, stats, dx, dw, bad]) t.destroy();
  await gpu.flush();
});
