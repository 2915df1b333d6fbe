/**
 * kahanAccumulate (kernels/kahan_accumulate.wgsl) against float64 sums: after many batches, sum − comp
 * stays within a few f32 roundings of the exact total where a plain f32 running sum (emulated with
 * Math.fround) is off by far more, so a compiler that folded the compensation away fails. Also run in
 * element windows with the binding limit lowered.
 */
import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { kahanAccumulate } from "../src/gpu/kahan.ts";
import { createTensor, poison, readTensor, writeTensor } from "../src/gpu/tensor.ts";
import { fill } from "../src/gpu/reduce.ts";
import { freshSeed, randn, rng } from "./_util.ts";

async function run(limit: number | undefined, n: number, batches: number) {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  // A large base then many O(1) batches: each plain f32 add of ~1 to ~1e4 loses up to ulp(1e4)/2.
  const base = Float32Array.from({ length: n }, () => 1e4 * (1 + r()));
  const exact = Float64Array.from(base);
  const plain = Float32Array.from(base);
  const sum = createTensor(gpu, [n], { name: "sum", data: base });
  const comp = createTensor(gpu, [n], { name: "comp" });
  const x = createTensor(gpu, [n], { name: "x" });
  poison(comp);
  await fill(gpu, comp, 0);
  gpu.setBindingLimit(limit);
  try {
    for (let b = 0; b < batches; b++) {
      const v = Float32Array.from(randn(r, n));
      for (let i = 0; i < n; i++) {
        exact[i] += v[i];
        plain[i] = Math.fround(plain[i] + v[i]);
      }
      writeTensor(x, v);
      await kahanAccumulate(gpu, sum, comp, x);
    }
  } finally {
    gpu.setBindingLimit(undefined);
  }
  const s = await readTensor(sum), c = await readTensor(comp);
  let errK = 0, errP = 0, scale = 0;
  for (let i = 0; i < n; i++) {
    errK = Math.max(errK, Math.abs(s[i] - c[i] - exact[i]));
    errP = Math.max(errP, Math.abs(plain[i] - exact[i]));
    scale = Math.max(scale, Math.abs(exact[i]));
  }
  for (const t of [sum, comp, x]) t.destroy();
  return { errK: errK / scale, errP: errP / scale, seed };
}

Deno.test("kahanAccumulate: sum − comp within f32 rounding of the float64 total after 400 batches", async () => {
  const { errK, errP, seed } = await run(undefined, 1001, 400);
  console.log(
    `kahan ${errK.toExponential(2)} vs plain f32 ${errP.toExponential(2)} (relative to max |total|)`,
  );
  assert.ok(errK <= 1.2e-7, `compensated error ${errK.toExponential(3)} (seed ${seed})`);
  assert.ok(errP > 10 * errK, `plain f32 ${errP.toExponential(3)} should be far worse (seed ${seed})`);
});

Deno.test("kahanAccumulate in element windows past a lowered binding limit", async () => {
  const { errK, errP, seed } = await run(2048, 1999, 60);
  assert.ok(errK <= 1.2e-7, `windowed compensated error ${errK.toExponential(3)} (seed ${seed})`);
  assert.ok(errP > 3 * errK, `plain f32 ${errP.toExponential(3)} (seed ${seed})`);
});

Deno.test("kahanAccumulate: mismatched sizes and dtypes are ShapeErrors naming the tensor", async () => {
  const gpu = await getGpu();
  const a = createTensor(gpu, [5], { name: "a" }), b = createTensor(gpu, [5], { name: "b" });
  const c = createTensor(gpu, [6], { name: "short" }),
    u = createTensor(gpu, [5], { name: "ints", dtype: "u32" });
  await assert.rejects(
    () => kahanAccumulate(gpu, a, b, c),
    (e: unknown) => e instanceof ShapeError && e.field === "short",
  );
  await assert.rejects(
    () => kahanAccumulate(gpu, a, u, b),
    (e: unknown) => e instanceof ShapeError && e.field === "ints",
  );
  for (const t of [a, b, c, u]) t.destroy();
});
