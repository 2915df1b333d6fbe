import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { layerNorm } from "../src/gpu/layernorm.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { layerNormRef } from "../src/reference/layernorm.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

// [rows, cols]: cols below, at and above the workgroup size (64), GPT-2 widths, a constant row (cols 1).
const SHAPES: Array<[number, number]> = [[1, 1], [3, 7], [5, 64], [4, 65], [2, 129], [3, 768], [2, 1600]];

Deno.test("layerNorm matches float64 twin (out and stats) on odd sizes", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { out: 0, stats: 0 };
  for (const [rows, cols] of SHAPES) {
    // A per-row offset (up to ±50) checks that the variance is not computed as E[x²] - E[x]².
    const x = randn(r, rows * cols, 2);
    for (let i = 0; i < rows; i++) {
      const off = (r() - 0.5) * 100;
      for (let c = 0; c < cols; c++) x[i * cols + c] += off;
    }
    const g = randn(r, cols), b = randn(r, cols);
    const ref = layerNormRef(x, g, b, rows, cols, 1e-5);
    const tx = createTensor(gpu, [rows, cols], { name: "x", data: x });
    const tg = createTensor(gpu, [cols], { name: "gamma", data: g });
    const tb = createTensor(gpu, [cols], { name: "beta", data: b });
    const out = createTensor(gpu, [rows, cols], { name: "out" });
    const stats = createTensor(gpu, [rows, 2], { name: "stats" });
    const what = `rows=${rows} cols=${cols}`;

    poison(out);
    await layerNorm(gpu, tx, tg, tb, out, { rows, cols });
    worst.out = Math.max(worst.out, assertClose(await readTensor(out), ref.out, 2e-5, `out ${what}`, seed));

    poison(out);
    poison(stats);
    await layerNorm(gpu, tx, tg, tb, out, { rows, cols, eps: 1e-5, stats });
    worst.out = Math.max(
      worst.out,
      assertClose(await readTensor(out), ref.out, 2e-5, `out+stats ${what}`, seed),
    );
    const st = await readTensor(stats);
    // Mean and rstd have different scales: compare each separately.
    const pick = (a: ArrayLike<number>, k: number) => Array.from({ length: rows }, (_, i) => a[2 * i + k]);
    // cols = 1: var = 0 and rstd = 1/sqrt(eps) exactly in both.
    worst.stats = Math.max(
      worst.stats,
      assertClose(pick(st, 0), pick(ref.stats, 0), 1e-6, `mean ${what}`, seed),
    );
    worst.stats = Math.max(
      worst.stats,
      assertClose(pick(st, 1), pick(ref.stats, 1), 1e-5, `rstd ${what}`, seed),
    );
    for (const t of [tx, tg, tb, out, stats]) t.destroy();
  }
  console.log(
    `layerNorm worst relative error: out ${worst.out.toExponential(2)}, stats ${
      worst.stats.toExponential(2)
    }`,
  );
});

Deno.test("layerNorm handles more rows than one grid dimension (grid split over y)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const rows = gpu.device.limits.maxComputeWorkgroupsPerDimension + 3, cols = 3;
  const x = randn(r, rows * cols), g = randn(r, cols), b = randn(r, cols);
  const ref = layerNormRef(x, g, b, rows, cols, 1e-3);
  const tx = createTensor(gpu, [rows, cols], { data: x });
  const tg = createTensor(gpu, [cols], { data: g }), tb = createTensor(gpu, [cols], { data: b });
  const out = createTensor(gpu, [rows, cols]);
  poison(out);
  await layerNorm(gpu, tx, tg, tb, out, { rows, cols, eps: 1e-3 });
  assertClose(await readTensor(out), ref.out, 2e-5, `rows=${rows} cols=${cols}`, seed);
  for (const t of [tx, tg, tb, out]) t.destroy();
});

Deno.test("layerNorm shape mismatches throw ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [2, 4], { name: "x" });
  const g = createTensor(gpu, [4], { name: "ln.weight" }), b = createTensor(gpu, [4], { name: "ln.bias" });
  const out = createTensor(gpu, [2, 4], { name: "ln.out" });
  const bad = createTensor(gpu, [3], { name: "short.weight" });
  const badStats = createTensor(gpu, [2], { name: "ln.stats" });
  await assert.rejects(() => layerNorm(gpu, x, bad, b, out, { rows: 2, cols: 4 }), (e: unknown) => {
    return e instanceof ShapeError && e.message.includes("short.weight");
  });
  await assert.rejects(() => layerNorm(gpu, x, g, b, out, { rows: 3, cols: 4 }), (e: unknown) => {
    return e instanceof ShapeError && e.message.includes("'x'");
  });
  await assert.rejects(
    () => layerNorm(gpu, x, g, b, out, { rows: 2, cols: 4, stats: badStats }),
    (e: unknown) => {
      return e instanceof ShapeError && e.message.includes("ln.stats");
    },
  );
  await assert.rejects(() => layerNorm(gpu, x, g, b, x, { rows: 2, cols: 4 }), ShapeError);
  for (const t of [x, g, b, out, bad, badStats]) t.destroy();
  await gpu.flush();
});
