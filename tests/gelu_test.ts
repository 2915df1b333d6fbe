import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { gelu } from "../src/gpu/gelu.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { geluRef } from "../src/reference/gelu.ts";
import { assertClose, freshSeed, maxAbsErr, randn, rng } from "./_util.ts";

Deno.test("gelu matches float64 twin on odd sizes", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  for (const [n, scale] of [[1, 1], [7, 1], [255, 3], [257, 1], [1000, 5], [4099, 2]]) {
    const x = randn(r, n, scale);
    const tx = createTensor(gpu, [n], { data: x }), out = createTensor(gpu, [n]);
    poison(out);
    await gelu(gpu, tx, out);
    worst = Math.max(
      worst,
      assertClose(await readTensor(out), geluRef(x), 2e-6, `gelu n=${n} scale=${scale}`, seed),
    );
    tx.destroy();
    out.destroy();
  }
  console.log(`gelu worst relative error: ${worst.toExponential(2)}`);
});

Deno.test("gelu is finite and accurate for large |x| (up to 50) and near zero", async () => {
  const gpu = await getGpu();
  const xs: number[] = [0, -0, 1e-30, -1e-30, 1e-6, -1e-6, 0.5, -0.5, 3, -3, 5, -5, 6, -6, 10, -10];
  for (let v = -50; v <= 50; v += 0.37) xs.push(v);
  xs.push(15, -15, 20, -20, 49.99, -49.99, 50, -50, 1e4, -1e4, 3e38, -3e38);
  const x = new Float32Array(xs);
  const n = x.length;
  const tx = createTensor(gpu, [n], { data: x }), out = createTensor(gpu, [n]);
  poison(out);
  await gelu(gpu, tx, out);
  const y = await readTensor(out);
  const ref = geluRef(x);
  for (let i = 0; i < n; i++) {
    assert.ok(Number.isFinite(y[i]), `gelu(${x[i]}) = ${y[i]} is not finite`);
    // Elementwise: relative error where the result is not tiny, absolute below.
    const tol = 2e-6 * Math.max(Math.abs(ref[i]), 1e-6) + 1e-30;
    assert.ok(Math.abs(y[i] - ref[i]) <= tol, `gelu(${x[i]}) = ${y[i]}, expected ${ref[i]}`);
  }
  console.log(`gelu max abs error on [-50, 50] grid: ${maxAbsErr(y, ref).toExponential(2)}`);
  tx.destroy();
  out.destroy();
});

Deno.test("gelu size mismatch throws ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [4], { name: "fc" }), out = createTensor(gpu, [5], { name: "act" });
  await assert.rejects(
    () => gelu(gpu, x, out),
    (e: unknown) => e instanceof ShapeError && e.message.includes("act"),
  );
  await assert.rejects(() => gelu(gpu, x, x), ShapeError);
  x.destroy();
  out.destroy();
  await gpu.flush();
});
