import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { igAccumulate } from "../src/gpu/ig_accumulate.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { igAccumulateRef } from "../src/reference/ig_accumulate.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

Deno.test("igAccumulate matches the float64 twin on odd sizes, strided layouts and accumulation", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  // n around the workgroup size (256), odd step counts, padding between steps and a leading offset.
  for (
    const [n, steps, pad, offset] of [[1, 1, 0, 0], [7, 3, 5, 2], [255, 20, 0, 13], [257, 19, 31, 0], [
      1000,
      5,
      3,
      777,
    ]]
  ) {
    const rowStride = n + pad;
    const grads = randn(r, offset + steps * rowStride);
    const weights = randn(r, steps);
    const act = randn(r, n);
    const prev = randn(r, n);
    const gT = createTensor(gpu, [grads.length], { name: "grads", data: grads });
    const wT = createTensor(gpu, [steps], { name: "weights", data: weights });
    const aT = createTensor(gpu, [n], { name: "act", data: act });
    const oT = createTensor(gpu, [n], { name: "out" });
    const layout = { n, steps, rowStride, offset };
    poison(oT);
    await igAccumulate(gpu, gT, wT, aT, oT, { ...layout, scale: 1 / steps });
    assertClose(
      await readTensor(oT),
      igAccumulateRef(grads, weights, act, layout, 1 / steps),
      1e-5,
      `ig n=${n} m=${steps}`,
      seed,
    );
    const oT2 = createTensor(gpu, [n], { name: "out2", data: prev });
    await igAccumulate(gpu, gT, wT, aT, oT2, { ...layout, scale: 0.5, accumulate: true });
    assertClose(
      await readTensor(oT2),
      igAccumulateRef(grads, weights, act, layout, 0.5, prev),
      1e-5,
      `ig accumulate n=${n}`,
      seed,
    );
    for (const t of [gT, wT, aT, oT, oT2]) t.destroy();
  }
});

Deno.test("igAccumulate rejects a gradient tensor too small for the layout, and aliasing", async () => {
  const gpu = await getGpu();
  const g = createTensor(gpu, [10], { name: "grads" });
  const w = createTensor(gpu, [3], { name: "weights" });
  const a = createTensor(gpu, [4], { name: "act" });
  const o = createTensor(gpu, [4], { name: "out" });
  await assert.rejects(
    () => igAccumulate(gpu, g, w, a, o, { n: 4, steps: 3, rowStride: 4, offset: 0, scale: 1 }),
    ShapeError,
  );
  await assert.rejects(
    () => igAccumulate(gpu, g, w, a, g, { n: 4, steps: 2, rowStride: 4, offset: 0, scale: 1 }),
    ShapeError,
  );
  for (const t of [g, w, a, o]) t.destroy();
});
