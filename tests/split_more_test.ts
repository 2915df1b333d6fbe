/**
 * More launchers past the storage-binding limit (`gpu.setBindingLimit` lowered to 2 KiB): adamw in
 * aligned element windows, softmax / logSoftmax in row blocks (aligned windows or temporaries) and
 * biasGrad accumulated over row blocks, each against its float64 twin on odd sizes. At this limit the
 * unsplit launchers would throw, so a pass means the split ran. A single row over the limit is a
 * GpuError naming the tensor.
 */
import assert from "node:assert/strict";
import { GpuError } from "../src/errors.ts";
import { adamw, type AdamWOptions } from "../src/gpu/adamw.ts";
import { biasGrad } from "../src/gpu/bias_grad.ts";
import { getGpu, type Gpu } from "../src/gpu/device.ts";
import { logSoftmax, softmax } from "../src/gpu/softmax.ts";
import { createTensor, poison, readTensor, windowSlackElems } from "../src/gpu/tensor.ts";
import { adamwRef } from "../src/reference/adamw.ts";
import { biasGradRef } from "../src/reference/bias_grad.ts";
import { logSoftmaxRef, softmaxRef } from "../src/reference/softmax.ts";
import { assertClose, freshSeed, maxAbsErr, randn, rng } from "./_util.ts";

const LIMIT = 2048; // bytes

async function withLimit<T>(gpu: Gpu, bytes: number, f: () => Promise<T>): Promise<T> {
  gpu.setBindingLimit(bytes);
  try {
    return await f();
  } finally {
    gpu.setBindingLimit(undefined);
  }
}

/** Which row-block path [rows, cols] takes at LIMIT: aligned windows or temporaries. */
function rowPath(gpu: Gpu, cols: number): "windows" | "temporaries" {
  gpu.setBindingLimit(LIMIT);
  const per = Math.floor(windowSlackElems(gpu) / cols);
  gpu.setBindingLimit(undefined);
  const align = gpu.device.limits.minStorageBufferOffsetAlignment / 4;
  let a = cols, b = align;
  while (b) [a, b] = [b, a % b];
  return per >= align / a ? "windows" : "temporaries";
}

// [rows, cols], every one over 2 KiB; cols chosen so both row-block paths run (see rowPath).
const ROW_CASES: Array<[number, number]> = [[37, 7], [301, 3], [19, 64], [13, 96], [5, 301], [3, 444], [
  11,
  100,
]];

Deno.test("split adamw: aligned element windows over param, grad, m, v vs float64 twin", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { param: 0, m: 0, v: 0 };
  const cases: Array<[number, Omit<AdamWOptions, "step">]> = [
    [513, { lr: 0.05 }],
    [1001, { lr: 0.01, weightDecay: 0.1, gradScale: 0.5 }],
    [1537, { lr: 0.003, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.01 }],
  ];
  for (const [n, hyper] of cases) {
    const p0 = randn(r, n);
    const rp = Float64Array.from(p0), rm = new Float64Array(n), rv = new Float64Array(n);
    const tp = createTensor(gpu, [n], { name: "param", data: p0 });
    const tm = createTensor(gpu, [n], { name: "m", data: new Float32Array(n) });
    const tv = createTensor(gpu, [n], { name: "v", data: new Float32Array(n) });
    for (let step = 1; step <= 3; step++) {
      const g = randn(r, n);
      const tg = createTensor(gpu, [n], { name: "grad", data: g });
      await withLimit(gpu, LIMIT, () => adamw(gpu, tp, tg, tm, tv, { ...hyper, step }));
      tg.destroy();
      adamwRef(rp, g, rm, rv, { ...hyper, step });
    }
    const what = `n=${n} ${JSON.stringify(hyper)}`;
    worst.param = Math.max(worst.param, assertClose(await readTensor(tp), rp, 1e-6, `param ${what}`, seed));
    worst.m = Math.max(worst.m, assertClose(await readTensor(tm), rm, 1e-6, `m ${what}`, seed));
    worst.v = Math.max(worst.v, assertClose(await readTensor(tv), rv, 1e-5, `v ${what}`, seed));
    for (const t of [tp, tm, tv]) t.destroy();
  }
  console.log(`split adamw worst relative errors: ${JSON.stringify(worst)}`);
});

Deno.test("split softmax / logSoftmax: row blocks (windows and temporaries) vs float64 twin", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const paths = new Set<string>();
  let worstLp = 0, worstP = 0;
  for (const [rows, cols] of ROW_CASES) {
    paths.add(rowPath(gpu, cols));
    const x = randn(r, rows * cols, 3);
    const tx = createTensor(gpu, [rows, cols], { name: "x", data: x });
    const tlp = createTensor(gpu, [rows, cols], { name: "lp" });
    const tp = createTensor(gpu, [rows, cols], { name: "p" });
    poison(tlp);
    poison(tp);
    await withLimit(gpu, LIMIT, async () => {
      await logSoftmax(gpu, tx, tlp, { rows, cols });
      await softmax(gpu, tx, tp, { rows, cols });
    });
    const what = `${rows}x${cols} (${rowPath(gpu, cols)})`;
    const e = maxAbsErr(await readTensor(tlp), logSoftmaxRef(x, rows, cols));
    assert.ok(e <= 1e-5, `logSoftmax ${what}: max abs error ${e} (seed ${seed})`);
    worstLp = Math.max(worstLp, e);
    worstP = Math.max(
      worstP,
      assertClose(await readTensor(tp), softmaxRef(x, rows, cols), 1e-5, `softmax ${what}`, seed),
    );
    for (const t of [tx, tlp, tp]) t.destroy();
  }
  assert.deepEqual([...paths].sort(), ["temporaries", "windows"], "both row-block paths must be exercised");
  console.log(
    `split logSoftmax max abs error ${worstLp.toExponential(3)}, softmax rel ${worstP.toExponential(3)}`,
  );
});

Deno.test("split biasGrad: accumulated over row blocks, overwrite and accumulate vs float64 twin", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  for (const [rows, cols] of ROW_CASES) {
    for (const accumulate of [false, true]) {
      const dout = randn(r, rows * cols);
      const init = randn(r, cols);
      const td = createTensor(gpu, [rows, cols], { name: "dout", data: dout });
      const tb = createTensor(gpu, [cols], { name: "dbias", data: init });
      if (!accumulate) poison(tb);
      await withLimit(gpu, LIMIT, () => biasGrad(gpu, td, tb, { rows, cols, accumulate }));
      const want = biasGradRef(dout, rows, cols);
      if (accumulate) want.forEach((_, c) => want[c] += init[c]);
      const what = `${rows}x${cols} accumulate=${accumulate} (${rowPath(gpu, cols)})`;
      worst = Math.max(worst, assertClose(await readTensor(tb), want, 1e-5, `dbias ${what}`, seed));
      td.destroy();
      tb.destroy();
    }
  }
  console.log(`split biasGrad worst relative error ${worst.toExponential(3)}`);
});

Deno.test("split softmax / biasGrad: a single row over the binding limit is a GpuError naming the tensor", async () => {
  const gpu = await getGpu();
  const rows = 2, cols = 600; // one row is 2400 bytes > 2048
  const x = createTensor(gpu, [rows, cols], { name: "big.x", data: new Float32Array(rows * cols) });
  const out = createTensor(gpu, [rows, cols], { name: "big.out" });
  const db = createTensor(gpu, [cols], { name: "big.dbias" });
  await withLimit(gpu, LIMIT, async () => {
    for (const f of [logSoftmax, softmax]) {
      await assert.rejects(
        () => f(gpu, x, out, { rows, cols }),
        (e: unknown) => e instanceof GpuError && e.field === "big.x" && /one row/.test(e.message),
      );
    }
    await assert.rejects(
      () => biasGrad(gpu, x, db, { rows, cols }),
      (e: unknown) => e instanceof GpuError && e.field === "big.x" && /one row/.test(e.message),
    );
  });
  for (const t of [x, out, db]) t.destroy();
});
