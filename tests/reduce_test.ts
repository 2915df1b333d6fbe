import assert from "node:assert/strict";
import { InputError, ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { fill, scaleInPlace, sum, sumSquares } from "../src/gpu/reduce.ts";
import { createTensor, poison, readTensor, readTensorU32 } from "../src/gpu/tensor.ts";
import { scaleRef, sumRef, sumSquaresRef } from "../src/reference/reduce.ts";
import { assertClose, freshSeed, randn, rng } from "./_util.ts";

// Sizes around the kernel's chunk (4096 elements per workgroup) and workgroup (256).
const SIZES = [1, 7, 255, 1000, 4096, 4097, 65537];

Deno.test("sumSquares matches the float64 twin on odd sizes and is deterministic", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  const out = createTensor(gpu, [1], { name: "sumsq" });
  for (const n of SIZES) {
    // Mixed magnitudes (1e-3 .. 1e2) so small terms must not be lost next to large ones.
    const x = randn(r, n);
    for (let i = 0; i < n; i++) x[i] *= 10 ** (r() * 5 - 3);
    const tx = createTensor(gpu, [n], { name: "grad", data: x });
    poison(out);
    await sumSquares(gpu, tx, out);
    const a = await readTensor(out);
    worst = Math.max(worst, assertClose(a, [sumSquaresRef(x)], 1e-6, `sumSquares n=${n}`, seed));
    poison(out);
    await sumSquares(gpu, tx, out);
    const b = await readTensor(out);
    assert.equal(b[0], a[0], `sumSquares n=${n}: two runs differ (${a[0]} vs ${b[0]})`);
    tx.destroy();
  }
  out.destroy();
  console.log(`sumSquares worst relative error ${worst.toExponential(2)}`);
});

Deno.test("sumSquares accumulates over several tensors (global gradient norm)", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const shapes = [[3, 5], [1], [769, 7], [65537]];
  const out = createTensor(gpu, [1], { name: "sumsq" });
  poison(out);
  let expect = 0;
  for (const [i, shape] of shapes.entries()) {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = randn(r, n, 0.01 * (i + 1));
    const t = createTensor(gpu, shape, { name: `grad${i}`, data: x });
    // The first call overwrites the NaN poison; later ones add.
    await sumSquares(gpu, t, out, { accumulate: i > 0 });
    expect += sumSquaresRef(x);
    t.destroy();
  }
  const e = assertClose(await readTensor(out), [expect], 1e-5, "accumulated sumSquares", seed);
  // accumulate onto a value the caller filled.
  await fill(gpu, out, 2.5);
  const x = randn(r, 1000);
  const t = createTensor(gpu, [1000], { name: "grad", data: x });
  await sumSquares(gpu, t, out, { accumulate: true });
  assertClose(await readTensor(out), [2.5 + sumSquaresRef(x)], 1e-5, "sumSquares onto fill", seed);
  // A 1-element out of a bigger tensor: only element 0 is written.
  const big = createTensor(gpu, [3], { name: "norms", data: new Float32Array([7, 8, 9]) });
  await sumSquares(gpu, t, big);
  const bb = await readTensor(big);
  assert.deepEqual([bb[1], bb[2]], [8, 9]);
  for (const z of [t, big, out]) z.destroy();
  console.log(`accumulated sumSquares relative error ${e.toExponential(2)}`);
});

Deno.test("sum matches the float64 twin relative to sum |x|", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  const out = createTensor(gpu, [1], { name: "total" });
  for (const n of SIZES) {
    const x = randn(r, n, 3);
    for (let i = 0; i < n; i++) x[i] += 1;
    const tx = createTensor(gpu, [n], { name: "losses", data: x });
    poison(out);
    await sum(gpu, tx, out);
    const got = (await readTensor(out))[0];
    const e = Math.abs(got - sumRef(x)) / sumRef(Array.from(x, Math.abs));
    assert.ok(e <= 1e-6, `sum n=${n}: error ${e} relative to sum |x| (seed ${seed})`);
    worst = Math.max(worst, e);
    tx.destroy();
  }
  out.destroy();
  console.log(`sum worst error relative to sum|x| ${worst.toExponential(2)}`);
});

Deno.test("scaleInPlace and fill on odd sizes", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  for (const n of [1, 1000, 65537]) {
    const x = randn(r, n, 2);
    const t = createTensor(gpu, [n], { name: "x", data: x });
    const alpha = 0.3 + r();
    await scaleInPlace(gpu, t, alpha);
    assertClose(await readTensor(t), scaleRef(x, Math.fround(alpha)), 1e-7, `scaleInPlace n=${n}`, seed);
    poison(t);
    await fill(gpu, t, 0);
    assert.ok((await readTensor(t)).every((v) => Object.is(v, 0)), `fill 0 n=${n}`);
    await fill(gpu, t, -1.5);
    assert.ok((await readTensor(t)).every((v) => v === -1.5), `fill -1.5 n=${n}`);
    t.destroy();
    const u = createTensor(gpu, [n], { name: "targets", dtype: "u32" });
    await fill(gpu, u, 0xffffffff);
    assert.ok((await readTensorU32(u)).every((v) => v === 0xffffffff), `fill u32 0xffffffff n=${n}`);
    u.destroy();
    const s = createTensor(gpu, [n], { name: "ids", dtype: "i32" });
    await fill(gpu, s, -7);
    const si = new Int32Array((await readTensorU32(s)).buffer);
    assert.ok(si.every((v) => v === -7), `fill i32 -7 n=${n}`);
    s.destroy();
  }
});

Deno.test("scaleInPlace and fill cover more than 65535 workgroups (2-D grid)", async () => {
  const gpu = await getGpu();
  const n = 65535 * 256 + 1000;
  const t = createTensor(gpu, [n], { name: "big" });
  await fill(gpu, t, 3);
  await scaleInPlace(gpu, t, 0.5);
  const a = await readTensor(t);
  let bad = -1;
  for (let i = 0; i < n; i++) {
    if (a[i] !== 1.5) {
      bad = i;
      break;
    }
  }
  assert.equal(bad, -1, `element ${bad} = ${a[bad]}, expected 1.5`);
  t.destroy();
  await gpu.flush();
});

Deno.test("reduce launchers reject bad tensors and values", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [5], { name: "grad" });
  const ids = createTensor(gpu, [5], { name: "ids", dtype: "u32" });
  const empty = createTensor(gpu, [0], { name: "empty" });
  const isShape = (name: string) => (e: unknown) => e instanceof ShapeError && e.message.includes(name);
  await assert.rejects(() => sumSquares(gpu, ids, x), isShape("ids"));
  await assert.rejects(() => sumSquares(gpu, x, ids), isShape("ids"));
  await assert.rejects(() => sumSquares(gpu, x, x), isShape("grad"));
  await assert.rejects(() => sumSquares(gpu, x, empty), isShape("empty"));
  await assert.rejects(() => scaleInPlace(gpu, ids, 2), isShape("ids"));
  await assert.rejects(
    () => fill(gpu, ids, -1),
    (e: unknown) => e instanceof InputError && e.message.includes("ids"),
  );
  await assert.rejects(() => fill(gpu, ids, 1.5), InputError);
  // An empty input sums to 0.
  const out = createTensor(gpu, [1], { name: "out" });
  poison(out);
  await sumSquares(gpu, empty, out);
  assert.equal((await readTensor(out))[0], 0);
  for (const t of [x, ids, empty, out]) t.destroy();
  await gpu.flush();
});
