/**
 * The row-reduction kernels (layer / RMS norm forward and backward, softmax, log-softmax,
 * cross-entropy) and the column sums (bias gradient, norm weight gradients) at every workgroup size an
 * adapter may get (src/gpu/row_workgroup.ts: the GPU defaults 64 / 128 and 8 row lanes, the software
 * 8 / 16 and 1, and 2, 32) against their float64 twins on odd sizes —
 * rows shorter and longer than the workgroup, a column count that is no multiple of any size.
 */
import assert from "node:assert/strict";
import { getGpu, isSoftwareAdapter } from "../src/gpu/device.ts";
import { biasGrad } from "../src/gpu/bias_grad.ts";
import { crossEntropy } from "../src/gpu/cross_entropy.ts";
import { layerNorm } from "../src/gpu/layernorm.ts";
import { layerNormBackward } from "../src/gpu/layernorm_backward.ts";
import { rmsNorm } from "../src/gpu/rmsnorm.ts";
import { rmsNormBackward } from "../src/gpu/rmsnorm_backward.ts";
import { logSoftmax, softmax } from "../src/gpu/softmax.ts";
import { rowWorkgroupConstants, setRowWorkgroup, SOFTWARE_ROW_WORKGROUP } from "../src/gpu/row_workgroup.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { biasGradRef } from "../src/reference/bias_grad.ts";
import { crossEntropyRef } from "../src/reference/cross_entropy.ts";
import { layerNormRef } from "../src/reference/layernorm.ts";
import { layerNormBackwardRef } from "../src/reference/layernorm_backward.ts";
import { rmsNormBackwardRef, rmsNormRef } from "../src/reference/rmsnorm.ts";
import { logSoftmaxRef, softmaxRef } from "../src/reference/softmax.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

const SIZES = [1, 2, 8, 16, 32, 64, 128];

Deno.test("row kernels: every workgroup size agrees with the float64 twins (norms, softmax, cross-entropy)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  try {
    for (const wg of SIZES) {
      setRowWorkgroup(gpu, wg);
      assert.deepEqual(rowWorkgroupConstants(gpu, "norm"), { WG: wg });
      assert.deepEqual(rowWorkgroupConstants(gpu, "columns"), { RS: Math.min(wg, 8) });
      for (const [rows, cols] of [[5, 3], [7, 97], [3, 301]]) {
        const what = `WG ${wg}, ${rows}x${cols} (seed ${seed})`;
        const x = randn(r, rows * cols, 2), dout = randn(r, rows * cols);
        const gamma = randn(r, cols), beta = randn(r, cols);
        const tx = createTensor(gpu, [rows, cols], { name: "x", data: x });
        const td = createTensor(gpu, [rows, cols], { name: "dout", data: dout });
        const tg = createTensor(gpu, [cols], { name: "gamma", data: gamma });
        const tb = createTensor(gpu, [cols], { name: "beta", data: beta });
        const out = createTensor(gpu, [rows, cols], { name: "out" });
        const stats = createTensor(gpu, [rows, 2], { name: "stats" });
        const dx = createTensor(gpu, [rows, cols], { name: "dx" });
        const dg = createTensor(gpu, [cols], { name: "dgamma" });
        const db = createTensor(gpu, [cols], { name: "dbeta" });
        for (const t of [out, stats, dx, dg, db]) poison(t);

        const ln = layerNormRef(x, gamma, beta, rows, cols);
        await layerNorm(gpu, tx, tg, tb, out, { rows, cols, stats });
        assertClose(await readTensor(out), ln.out, 1e-5, `layerNorm ${what}`, seed);
        assertClose(await readTensor(stats), ln.stats, 1e-5, `layerNorm stats ${what}`, seed);
        const lnb = layerNormBackwardRef(dout, x, gamma, rows, cols);
        await layerNormBackward(gpu, td, tx, tg, stats, dx, dg, db, { rows, cols });
        assertClose(await readTensor(dx), lnb.dx, 1e-5, `layerNormBackward dx ${what}`, seed);
        assertClose(await readTensor(dg), lnb.dgamma, 1e-5, `layerNormBackward dgamma ${what}`, seed);

        poison(db);
        await biasGrad(gpu, td, db, { rows, cols });
        assertClose(await readTensor(db), biasGradRef(dout, rows, cols), 1e-5, `biasGrad ${what}`, seed);

        const rstats = createTensor(gpu, [rows], { name: "rms_stats" });
        for (const t of [out, dx, dg, rstats]) poison(t);
        const rn = rmsNormRef(x, gamma, rows, cols);
        await rmsNorm(gpu, tx, tg, out, { rows, cols, stats: rstats });
        assertClose(await readTensor(out), rn.out, 1e-5, `rmsNorm ${what}`, seed);
        const rnb = rmsNormBackwardRef(dout, x, gamma, rows, cols);
        await rmsNormBackward(gpu, td, tx, tg, rstats, dx, dg, { rows, cols });
        assertClose(await readTensor(dx), rnb.dx, 1e-5, `rmsNormBackward dx ${what}`, seed);
        assertClose(await readTensor(dg), rnb.dweight, 1e-5, `rmsNormBackward dweight ${what}`, seed);

        poison(out);
        await softmax(gpu, tx, out, { rows, cols });
        assertClose(await readTensor(out), softmaxRef(x, rows, cols), 1e-5, `softmax ${what}`, seed);
        poison(out);
        await logSoftmax(gpu, tx, out, { rows, cols });
        assertClose(await readTensor(out), logSoftmaxRef(x, rows, cols), 1e-5, `logSoftmax ${what}`, seed);

        const targets = Uint32Array.from({ length: rows }, () => Math.floor(r() * cols));
        const tt = createTensor(gpu, [rows], { name: "targets", dtype: "u32", data: targets });
        const losses = createTensor(gpu, [rows], { name: "losses" });
        for (const t of [losses, dx]) poison(t);
        const ce = crossEntropyRef(x, targets, rows, cols, 0.5);
        await crossEntropy(gpu, tx, tt, losses, dx, { rows, cols, scale: 0.5 });
        assertClose(await readTensor(losses), ce.losses, 1e-5, `crossEntropy losses ${what}`, seed);
        assertClose(await readTensor(dx), ce.dlogits, 1e-5, `crossEntropy dlogits ${what}`, seed);
        for (const t of [tx, td, tg, tb, out, stats, dx, dg, db, rstats, tt, losses]) t.destroy();
      }
    }
  } finally {
    setRowWorkgroup(gpu, undefined);
  }
});

Deno.test("row kernels: the adapter's own choice (software adapters get one SIMD vector per row)", async () => {
  const gpu = await getGpu();
  const sw = isSoftwareAdapter(gpu.adapter);
  assert.deepEqual(rowWorkgroupConstants(gpu, "norm"), sw ? { WG: SOFTWARE_ROW_WORKGROUP.norm } : {});
  assert.deepEqual(rowWorkgroupConstants(gpu, "softmax"), sw ? { WG: SOFTWARE_ROW_WORKGROUP.softmax } : {});
  assert.deepEqual(rowWorkgroupConstants(gpu, "columns"), sw ? { RS: SOFTWARE_ROW_WORKGROUP.columns } : {});
  assert.throws(() => setRowWorkgroup(gpu, 48), /one of 1, 2, 4/);
});
