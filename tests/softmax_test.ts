import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { logSoftmax, softmax } from "../src/gpu/softmax.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { logSoftmaxRef, softmaxRef } from "../src/reference/softmax.ts";
import { lossyRows, ROW_WG } from "./_lossy_rows.ts";
import { assertClose, freshSeed, maxAbsErr, randn, rng } from "./_util.ts";
import type { Gpu } from "../src/gpu/device.ts";

/** Runs both entries on x [rows, cols] with poisoned outputs; returns [softmax, logSoftmax]. */
async function runBoth(
  gpu: Gpu,
  x: Float32Array,
  rows: number,
  cols: number,
): Promise<[Float32Array, Float32Array]> {
  const tx = createTensor(gpu, [rows, cols], { name: "logits", data: x });
  const out = createTensor(gpu, [rows, cols], { name: "out" });
  poison(out);
  await softmax(gpu, tx, out, { rows, cols });
  const p = await readTensor(out);
  poison(out);
  await logSoftmax(gpu, tx, out, { rows, cols });
  const lp = await readTensor(out);
  tx.destroy();
  out.destroy();
  return [p, lp];
}

/** Largest |sum_c p[r, c] - 1| over rows. */
function sumErr(p: Float32Array, rows: number, cols: number): number {
  let worst = 0;
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += p[r * cols + c];
    worst = Math.max(worst, Math.abs(s - 1));
  }
  return worst;
}

Deno.test("softmax and logSoftmax match float64 twins on odd sizes", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { p: 0, lpAbs: 0 };
  // cols below, at and above the workgroup size (128), and tiny rows.
  for (
    const [rows, cols, scale] of [[1, 1, 1], [2, 3, 1], [3, 127, 3], [2, 128, 1], [3, 129, 5], [2, 1000, 10]]
  ) {
    const x = randn(r, rows * cols, scale);
    const [p, lp] = await runBoth(gpu, x, rows, cols);
    const what = `rows=${rows} cols=${cols} scale=${scale}`;
    worst.p = Math.max(worst.p, assertClose(p, softmaxRef(x, rows, cols), 1e-5, `softmax ${what}`, seed));
    const e = maxAbsErr(lp, logSoftmaxRef(x, rows, cols));
    assert.ok(e <= 1e-5, `logSoftmax ${what}: max abs error ${e} (seed ${seed})`);
    worst.lpAbs = Math.max(worst.lpAbs, e);
    assert.ok(sumErr(p, rows, cols) < 1e-5, `softmax ${what}: rows do not sum to 1`);
  }
  console.log(
    `softmax worst relative error ${worst.p.toExponential(2)}, logSoftmax worst abs error ${
      worst.lpAbs.toExponential(2)
    }`,
  );
});

Deno.test("logSoftmax over the GPT-2 vocabulary (50257) agrees with float64 to 1e-5 absolute", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  // Row 0: logits of scale 10 (log p down to ~-90); row 1: scale 0.3, a flat distribution where the
  // error is dominated by log(sum of 50257 exps).
  const rows = 2, cols = 50257;
  const x = randn(r, rows * cols, 10);
  for (let c = 0; c < cols; c++) x[cols + c] *= 0.03;
  const [p, lp] = await runBoth(gpu, x, rows, cols);
  const ref = logSoftmaxRef(x, rows, cols);
  const e = maxAbsErr(lp, ref);
  assert.ok(e <= 1e-5, `logSoftmax V=50257 scale 10: max abs error ${e} (seed ${seed})`);
  const ep = assertClose(p, softmaxRef(x, rows, cols), 1e-5, "softmax V=50257", seed);
  assert.ok(sumErr(p, rows, cols) < 1e-5, "softmax V=50257: rows do not sum to 1");
  console.log(
    `V=50257, scale 10: logSoftmax max abs error ${e.toExponential(2)}, softmax relative error ${
      ep.toExponential(2)
    }`,
  );
});

Deno.test("softmax and logSoftmax are stable for huge logits (±1e4, constant rows)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const cols = 50257, rows = 4;
  const x = new Float32Array(rows * cols);
  const row0 = randn(r, cols, 1e4); // spread ±4e4
  x.set(row0, 0);
  for (let c = 0; c < cols; c++) {
    x[cols + c] = 1e4 + (r() - 0.5); // all near +1e4: exp(x) overflows without max subtraction
    x[2 * cols + c] = -1e4 + (r() - 0.5); // all near -1e4: exp(x) underflows to 0
    x[3 * cols + c] = 7e3; // constant: uniform distribution
  }
  const [p, lp] = await runBoth(gpu, x, rows, cols);
  for (let i = 0; i < p.length; i++) {
    assert.ok(Number.isFinite(p[i]) && Number.isFinite(lp[i]), `non-finite output at ${i}`);
  }
  const ref = logSoftmaxRef(x, rows, cols);
  // Relative to the largest |log p| (~8e4 in row 0: x - max is rounded to f32 there) ...
  const rel = assertClose(lp, ref, 1e-6, "logSoftmax huge", seed);
  // ... and absolute where it matters for prediction: the likely tokens (log p > -30).
  let top = 0;
  for (let i = 0; i < ref.length; i++) if (ref[i] > -30) top = Math.max(top, Math.abs(lp[i] - ref[i]));
  assert.ok(top <= 1e-5, `logSoftmax huge: abs error ${top} on log p > -30 (seed ${seed})`);
  assertClose(p, softmaxRef(x, rows, cols), 1e-5, "softmax huge", seed);
  assert.ok(sumErr(p, rows, cols) < 1e-5, "softmax huge: rows do not sum to 1");
  console.log(
    `huge logits: logSoftmax relative error ${rel.toExponential(2)}, abs error on log p > -30 ${
      top.toExponential(2)
    }`,
  );
});

// The rows > 65535 grid split (row = wg.x + wg.y * nwg.x) is shared with layernorm.wgsl and tested
// there: 65536 softmax workgroups of 128 take ~6 s on llvmpipe.

Deno.test("softmax shape mismatches throw ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [2, 5], { name: "logits" }),
    out = createTensor(gpu, [2, 4], { name: "logprobs" });
  await assert.rejects(
    () => logSoftmax(gpu, x, out, { rows: 2, cols: 5 }),
    (e: unknown) => e instanceof ShapeError && e.message.includes("logprobs"),
  );
  await assert.rejects(
    () => softmax(gpu, x, out, { rows: 2, cols: 4 }),
    (e: unknown) => e instanceof ShapeError && e.message.includes("logits"),
  );
  await assert.rejects(() => softmax(gpu, x, x, { rows: 2, cols: 5 }), ShapeError);
  await assert.rejects(() => softmax(gpu, x, out, { rows: 0, cols: 5 }), ShapeError);
  x.destroy();
  out.destroy();
  await gpu.flush();
});

Deno.test("softmax and logSoftmax keep the Kahan compensation where a naive f32 sum loses digits", async () => {
  // Fails when the compensation is folded away (kernels/lib/kahan.wgsl: the `* one` guard): measured on
  // llvmpipe, see docs/notes/issue-11-wgsl.md. Long odd rows: ~1500 tiny terms per invocation, all dropped naively,
  // a relative loss of ~7e-5 in the denominator l.
  const gpu = await getGpu();
  const seed = freshSeed();
  const rows = 3, cols = ROW_WG * 1500 + 77;
  const { x, big } = lossyRows(rng(seed), rows, cols);
  const [p, lp] = await runBoth(gpu, x, rows, cols);
  const refLp = logSoftmaxRef(x, rows, cols);
  const refP = softmaxRef(x, rows, cols);
  const worst: number[][] = [];
  for (let row = 0; row < rows; row++) {
    const o = row * cols;
    // At a large logit (x = max) exp is exactly 1: p = 1 / l and log p = -log l isolate the denominator.
    const b = o + big[row];
    const eL = Math.abs(p[b] - refP[b]) / refP[b];
    const eLogL = Math.abs(lp[b] - refLp[b]);
    // Whole row, per element: the tiny probabilities (~4e-10) too; exp's own error adds ~1e-6 there.
    const eLp = maxAbsErr(lp.subarray(o, o + cols), refLp.subarray(o, o + cols));
    let eP = 0;
    for (let c = o; c < o + cols; c++) eP = Math.max(eP, Math.abs(p[c] - refP[c]) / refP[c]);
    console.log(
      `lossy row ${row}: 1/l relative error ${eL.toExponential(2)}, log l abs ${eLogL.toExponential(2)}; ` +
        `whole row: logSoftmax abs ${eLp.toExponential(2)}, softmax per-element relative ${
          eP.toExponential(2)
        }`,
    );
    worst.push([row, eL, eLogL, eLp, eP]);
  }
  // Asserted after every row is printed, so a failure shows all three.
  for (const [row, eL, eLogL, eLp, eP] of worst) {
    const what = `lossy row ${row} (seed ${seed})`;
    assert.ok(eL <= 5e-7, `softmax ${what}: 1/l relative error ${eL}`);
    assert.ok(eLogL <= 1e-6, `logSoftmax ${what}: log l abs error ${eLogL}`);
    assert.ok(eLp <= 5e-6, `logSoftmax ${what}: max abs error ${eLp}`);
    assert.ok(eP <= 5e-6, `softmax ${what}: max per-element relative error ${eP}`);
  }
});
