import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { layerNorm } from "../src/gpu/layernorm.ts";
import { layerNormBackward } from "../src/gpu/layernorm_backward.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { layerNormRef } from "../src/reference/layernorm.ts";
import { layerNormBackwardRef } from "../src/reference/layernorm_backward.ts";
import { assertClose, freshSeed, randn, relErr, rng } from "./_util.ts";

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

Deno.test("layerNormBackwardRef matches central finite differences of layerNormRef (float64)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { dx: 0, dgamma: 0, dbeta: 0 };
  for (const [rows, cols] of [[1, 1], [3, 5], [2, 7], [4, 16]] as Array<[number, number]>) {
    const eps = 1e-5;
    const x = Float64Array.from(randn(r, rows * cols, 2));
    const g = Float64Array.from(randn(r, cols)), b = Float64Array.from(randn(r, cols));
    const dout = randn(r, rows * cols);
    const ref = layerNormBackwardRef(dout, x, g, rows, cols, eps);
    const fwd = () => layerNormRef(x, g, b, rows, cols, eps).out;
    const what = `rows=${rows} cols=${cols} (seed ${seed})`;
    const e = {
      dx: relErr(ref.dx, fdGrad(x, dout, fwd)),
      dgamma: relErr(ref.dgamma, fdGrad(g, dout, fwd)),
      dbeta: relErr(ref.dbeta, fdGrad(b, dout, fwd)),
    };
    for (const k of ["dx", "dgamma", "dbeta"] as const) {
      assert.ok(e[k] <= 1e-6, `${k} vs finite differences ${what}: relative error ${e[k].toExponential(3)}`);
      worst[k] = Math.max(worst[k], e[k]);
    }
  }
  console.log(
    `layerNormBackwardRef vs central FD, worst relative error: dx ${worst.dx.toExponential(2)}, dgamma ${
      worst.dgamma.toExponential(2)
    }, dbeta ${worst.dbeta.toExponential(2)}`,
  );
});

/**
 * dgamma and dbeta are sums over rows, which can cancel to near zero in one column (cols=1, 33 rows of
 * random dout: ~1% of draws). f32 summation error scales with the sum of the terms' magnitudes, so the
 * error is measured against Σ_r |dout·xhat| and Σ_r |dout| per column instead of the cancelled result.
 */
function columnSumScales(
  dout: ArrayLike<number>,
  x: ArrayLike<number>,
  rows: number,
  cols: number,
  eps: number,
) {
  const dgamma = new Float64Array(cols), dbeta = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    let mean = 0, v = 0;
    for (let c = 0; c < cols; c++) mean += x[i * cols + c] / cols;
    for (let c = 0; c < cols; c++) v += (x[i * cols + c] - mean) ** 2 / cols;
    const rstd = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < cols; c++) {
      const d = Math.abs(dout[i * cols + c]);
      dgamma[c] += d * Math.abs((x[i * cols + c] - mean) * rstd);
      dbeta[c] += d;
    }
  }
  return { dgamma, dbeta };
}

/** max |a − b| / max scale; asserts it is within `tol` and returns it. */
function closeToScale(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  scale: ArrayLike<number>,
  tol: number,
  what: string,
  seed: number,
): number {
  let num = 0, den = 1e-6;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, scale[i]);
  }
  const e = num / den;
  assert.ok(e <= tol, `${what}: error ${e.toExponential(3)} of the summed magnitude > ${tol} (seed ${seed})`);
  return e;
}

Deno.test("layerNormBackward matches float64 twin on odd sizes, overwrite and accumulate", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { dx: 0, dgamma: 0, dbeta: 0 };
  const shapes: Array<[number, number]> = [];
  for (const rows of [1, 7, 33]) for (const cols of [1, 5, 64, 97]) shapes.push([rows, cols]);
  shapes.push([3, 768]);
  for (const [rows, cols] of shapes) {
    const eps = 1e-5;
    // A per-row offset (up to ±5) so xhat depends on the saved mean.
    const x = randn(r, rows * cols, 2);
    for (let i = 0; i < rows; i++) {
      const off = (r() - 0.5) * 10;
      for (let c = 0; c < cols; c++) x[i * cols + c] += off;
    }
    const g = randn(r, cols), b = randn(r, cols), dout = randn(r, rows * cols);
    const ref = layerNormBackwardRef(dout, x, g, rows, cols, eps);
    const tx = createTensor(gpu, [rows, cols], { name: "x", data: x });
    const tg = createTensor(gpu, [cols], { name: "gamma", data: g });
    const tb = createTensor(gpu, [cols], { name: "beta", data: b });
    const tdout = createTensor(gpu, [rows, cols], { name: "dout", data: dout });
    const out = createTensor(gpu, [rows, cols], { name: "out" });
    const stats = createTensor(gpu, [rows, 2], { name: "stats" });
    const dx = createTensor(gpu, [rows, cols], { name: "dx" });
    const dg = createTensor(gpu, [cols], { name: "dgamma" });
    const db = createTensor(gpu, [cols], { name: "dbeta" });
    await layerNorm(gpu, tx, tg, tb, out, { rows, cols, eps, stats });
    const what = `rows=${rows} cols=${cols}`;
    const scale = columnSumScales(dout, x, rows, cols, eps);

    // Overwrite: outputs poisoned with NaN must be fully written.
    for (const t of [dx, dg, db]) poison(t);
    await layerNormBackward(gpu, tdout, tx, tg, stats, dx, dg, db, { rows, cols });
    worst.dx = Math.max(worst.dx, assertClose(await readTensor(dx), ref.dx, 1e-5, `dx ${what}`, seed));
    worst.dgamma = Math.max(
      worst.dgamma,
      closeToScale(await readTensor(dg), ref.dgamma, scale.dgamma, 1e-5, `dgamma ${what}`, seed),
    );
    worst.dbeta = Math.max(
      worst.dbeta,
      closeToScale(await readTensor(db), ref.dbeta, scale.dbeta, 1e-5, `dbeta ${what}`, seed),
    );

    // Accumulate: known random pre-fills must be added to.
    const px = randn(r, rows * cols), pg = randn(r, cols), pb = randn(r, cols);
    const dx2 = createTensor(gpu, [rows, cols], { name: "dx", data: px });
    const dg2 = createTensor(gpu, [cols], { name: "dgamma", data: pg });
    const db2 = createTensor(gpu, [cols], { name: "dbeta", data: pb });
    await layerNormBackward(gpu, tdout, tx, tg, stats, dx2, dg2, db2, { rows, cols, accumulate: true });
    const plus = (a: ArrayLike<number>, d: ArrayLike<number>) => Float64Array.from(d, (v, i) => v + a[i]);
    worst.dx = Math.max(
      worst.dx,
      assertClose(await readTensor(dx2), plus(px, ref.dx), 1e-5, `dx += ${what}`, seed),
    );
    worst.dgamma = Math.max(
      worst.dgamma,
      closeToScale(
        await readTensor(dg2),
        plus(pg, ref.dgamma),
        plus(pg.map(Math.abs), scale.dgamma),
        1e-5,
        `dgamma += ${what}`,
        seed,
      ),
    );
    worst.dbeta = Math.max(
      worst.dbeta,
      closeToScale(
        await readTensor(db2),
        plus(pb, ref.dbeta),
        plus(pb.map(Math.abs), scale.dbeta),
        1e-5,
        `dbeta += ${what}`,
        seed,
      ),
    );
    for (const t of [tx, tg, tb, tdout, out, stats, dx, dg, db, dx2, dg2, db2]) t.destroy();
  }
  console.log(
    `layerNormBackward GPU vs float64 twin, worst relative error: dx ${worst.dx.toExponential(2)}, dgamma ${
      worst.dgamma.toExponential(2)
    }, dbeta ${worst.dbeta.toExponential(2)}`,
  );
});

Deno.test("layerNormBackward without dgamma/dbeta writes dx only", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const rows = 5, cols = 9;
  const x = randn(r, rows * cols), g = randn(r, cols), dout = randn(r, rows * cols);
  const ref = layerNormBackwardRef(dout, x, g, rows, cols, 1e-5);
  // Stats from the float64 forward twin, rounded to f32 (the GPU forward is exercised in the test above).
  const st = Float32Array.from(layerNormRef(x, g, g, rows, cols, 1e-5).stats);
  const stats = createTensor(gpu, [rows, 2], { name: "stats", data: st });
  const tx = createTensor(gpu, [rows, cols], { name: "x", data: x });
  const tg = createTensor(gpu, [cols], { name: "gamma", data: g });
  const tdout = createTensor(gpu, [rows, cols], { name: "dout", data: dout });
  const dx = createTensor(gpu, [rows, cols], { name: "dx" });
  poison(dx);
  await layerNormBackward(gpu, tdout, tx, tg, stats, dx, null, undefined, { rows, cols });
  assertClose(await readTensor(dx), ref.dx, 1e-5, "dx (no param grads)", seed);
  for (const t of [stats, tx, tg, tdout, dx]) t.destroy();
});

Deno.test("layerNormBackward shape mismatches throw ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [2, 4], { name: "x" });
  const dout = createTensor(gpu, [2, 4], { name: "dout" });
  const g = createTensor(gpu, [4], { name: "ln.weight" });
  const stats = createTensor(gpu, [2, 2], { name: "ln.stats" });
  const dx = createTensor(gpu, [2, 4], { name: "dx" });
  const dg = createTensor(gpu, [4], { name: "dgamma" }), db = createTensor(gpu, [4], { name: "dbeta" });
  const bad = createTensor(gpu, [3], { name: "short.grad" });
  const opts = { rows: 2, cols: 4 };
  const names = (s: string) => (e: unknown) => e instanceof ShapeError && e.message.includes(s);
  await assert.rejects(
    () => layerNormBackward(gpu, dout, x, bad, stats, dx, dg, db, opts),
    names("short.grad"),
  );
  await assert.rejects(() => layerNormBackward(gpu, dout, x, g, bad, dx, dg, db, opts), names("short.grad"));
  await assert.rejects(
    () => layerNormBackward(gpu, dout, x, g, stats, dx, bad, db, opts),
    names("short.grad"),
  );
  await assert.rejects(
    () => layerNormBackward(gpu, dout, x, g, stats, dx, dg, bad, opts),
    names("short.grad"),
  );
  await assert.rejects(
    () => layerNormBackward(gpu, dout, x, g, stats, bad, dg, db, opts),
    names("short.grad"),
  );
  await assert.rejects(() => layerNormBackward(gpu, dout, x, g, stats, dx, dg, null, opts), ShapeError);
  await assert.rejects(() => layerNormBackward(gpu, dout, x, g, stats, dout, dg, db, opts), names("'dout'"));
  await assert.rejects(
    () => layerNormBackward(gpu, dout, x, g, stats, dx, dg, db, { rows: 3, cols: 4 }),
    names("'dout'"),
  );
  for (const t of [x, dout, g, stats, dx, dg, db, bad]) t.destroy();
  await gpu.flush();
});

Deno.test("layerNormBackward accumulateParams overrides accumulate for dgamma/dbeta only", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const rows = 7, cols = 13;
  const x = randn(r, rows * cols), g = randn(r, cols), dout = randn(r, rows * cols);
  const ref = layerNormBackwardRef(dout, x, g, rows, cols, 1e-5);
  const stats = createTensor(gpu, [rows, 2], {
    name: "stats",
    data: Float32Array.from(layerNormRef(x, g, g, rows, cols, 1e-5).stats),
  });
  const tx = createTensor(gpu, [rows, cols], { name: "x", data: x });
  const tg = createTensor(gpu, [cols], { name: "gamma", data: g });
  const tdout = createTensor(gpu, [rows, cols], { name: "dout", data: dout });
  const plus = (a: ArrayLike<number>, d: ArrayLike<number>) => Float64Array.from(d, (v, i) => v + a[i]);
  for (const [acc, accParams] of [[true, false], [false, true]]) {
    const px = randn(r, rows * cols), pg = randn(r, cols), pb = randn(r, cols);
    const dx = createTensor(gpu, [rows, cols], { name: "dx", data: px });
    const dg = createTensor(gpu, [cols], { name: "dgamma", data: pg });
    const db = createTensor(gpu, [cols], { name: "dbeta", data: pb });
    if (!acc) poison(dx);
    if (!accParams) [dg, db].forEach(poison);
    await layerNormBackward(gpu, tdout, tx, tg, stats, dx, dg, db, {
      rows,
      cols,
      accumulate: acc,
      accumulateParams: accParams,
    });
    const what = `accumulate=${acc} accumulateParams=${accParams}`;
    assertClose(await readTensor(dx), acc ? plus(px, ref.dx) : ref.dx, 1e-5, `dx ${what}`, seed);
    assertClose(
      await readTensor(dg),
      accParams ? plus(pg, ref.dgamma) : ref.dgamma,
      1e-5,
      `dgamma ${what}`,
      seed,
    );
    assertClose(
      await readTensor(db),
      accParams ? plus(pb, ref.dbeta) : ref.dbeta,
      1e-5,
      `dbeta ${what}`,
      seed,
    );
    for (const t of [dx, dg, db]) t.destroy();
  }
  for (const t of [stats, tx, tg, tdout]) t.destroy();
});
