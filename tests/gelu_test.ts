import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { erf, gelu } from "../src/gpu/gelu.ts";
import { geluBackward } from "../src/gpu/gelu_backward.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { erfcRef, erfRef, geluRef } from "../src/reference/gelu.ts";
import { assertClose, freshSeed, maxAbsErr, randn, relErr, rng } from "./_util.ts";

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

Deno.test("erfRef and erfcRef (float64) match known values of erf and erfc", () => {
  // Published values (e.g. Abramowitz & Stegun tables, Wolfram), to ~16 digits.
  const erfs: Array<[number, number]> = [
    [1e-10, 1.1283791670955126e-10],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [1.5, 0.9661051464753108],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
  ];
  const erfcs: Array<[number, number]> = [
    [2, 0.004677734981047266],
    [3, 2.209049699858544e-5],
    [4, 1.541725790028002e-8],
    [5, 1.5374597944280349e-12],
    [10, 2.088487583762545e-45],
    [26, 5.663192408856143e-296],
  ];
  let worst = 0;
  for (const [x, v] of erfs) {
    for (const [got, want] of [[erfRef(x), v], [erfRef(-x), -v]]) {
      const e = Math.abs(got - want) / Math.abs(want);
      assert.ok(e <= 1e-14, `erf at ${x}: ${got} vs ${want} (relative ${e})`);
      worst = Math.max(worst, e);
    }
    // 1 - v is only as good as v's last digit: absolute.
    assert.ok(Math.abs(erfcRef(x) - (1 - v)) <= 4e-16, `erfc(${x}) = ${erfcRef(x)}, expected ${1 - v}`);
  }
  for (const [x, v] of erfcs) {
    const e = Math.abs(erfcRef(x) - v) / v;
    assert.ok(e <= 1e-13, `erfc(${x}) = ${erfcRef(x)}, expected ${v} (relative ${e})`);
    assert.ok(Math.abs(erfcRef(-x) - (2 - v)) <= 1e-16, `erfc(-${x})`);
    worst = Math.max(worst, e);
  }
  // The series / continued-fraction switch at 2 is seamless, and the limits are exact.
  // (Across 2e-12 erfc falls by 2e-12 * 2/sqrt(pi) exp(-4); below 2 it is 1 - erf, good to ~1e-16.)
  const jump = erfcRef(2 - 1e-12) - erfcRef(2 + 1e-12) - 2e-12 * (2 / Math.sqrt(Math.PI)) * Math.exp(-4);
  assert.ok(Math.abs(jump) <= 5e-16, `erfc seam at 2: ${jump}`);
  assert.equal(erfRef(0), 0);
  assert.ok(Object.is(erfRef(-0), -0));
  assert.equal(erfRef(40), 1);
  assert.equal(erfRef(-Infinity), -1);
  assert.equal(erfcRef(1e300), 0);
  console.log(`erfRef / erfcRef worst relative error vs known values ${worst.toExponential(2)}`);
});

Deno.test("erf (f32, lib/erf.wgsl) matches float64 erf over a wide range, relative near 0", async () => {
  const gpu = await getGpu();
  const xs: number[] = [];
  for (let v = -8; v <= 8; v += 0.0137) xs.push(v);
  for (
    const v of [1e-30, 1e-20, 1e-10, 1e-6, 1e-4, 0.01, 0.3, 0.999, 1, 1.001, 4.5, 6, 10, 30, 1e3, 1e30, 3e38]
  ) {
    xs.push(v, -v);
  }
  xs.push(0);
  const x = Float32Array.from(xs), n = x.length;
  const tx = createTensor(gpu, [n], { data: x }), out = createTensor(gpu, [n]);
  poison(out);
  await erf(gpu, tx, out);
  const y = await readTensor(out);
  let worstAbs = 0, worstRelSmall = 0;
  for (let i = 0; i < n; i++) {
    const want = erfRef(x[i]);
    const d = Math.abs(y[i] - want);
    assert.ok(d <= 1e-6, `erf(${x[i]}) = ${y[i]}, float64 ${want}`);
    worstAbs = Math.max(worstAbs, d);
    if (Math.abs(x[i]) < 1 && x[i] !== 0) {
      const rel = d / Math.abs(want);
      assert.ok(rel <= 1e-6, `erf(${x[i]}) = ${y[i]}, float64 ${want}: relative ${rel}`);
      worstRelSmall = Math.max(worstRelSmall, rel);
    }
  }
  assert.equal(y[n - 1], 0);
  console.log(
    `erf f32 vs float64: max abs error ${worstAbs.toExponential(2)} on [-8, 8] and beyond, max relative ${
      worstRelSmall.toExponential(2)
    } for |x| < 1`,
  );
  tx.destroy();
  out.destroy();
});

Deno.test("gelu approximate none (exact erf form) matches float64 twin on odd sizes", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  for (const [n, scale] of [[1, 1], [7, 1], [255, 3], [257, 1], [1000, 5], [4099, 2]]) {
    const x = randn(r, n, scale);
    const tx = createTensor(gpu, [n], { data: x }), out = createTensor(gpu, [n]);
    poison(out);
    await gelu(gpu, tx, out, { approximate: "none" });
    const got = await readTensor(out);
    worst = Math.max(
      worst,
      assertClose(got, geluRef(x, "none"), 2e-6, `exact gelu n=${n} scale=${scale}`, seed),
    );
    // The forms differ by up to ~1e-3 (|x| ~ 2): the option really switches the formula.
    if (n >= 255) {
      assert.ok(relErr(got, geluRef(x, "tanh")) > 1e-5, `exact gelu equals tanh form (seed ${seed})`);
    }
    tx.destroy();
    out.destroy();
  }
  console.log(`exact gelu worst relative error: ${worst.toExponential(2)}`);
});

Deno.test("gelu approximate none is finite and accurate elementwise for large |x| and near zero", async () => {
  const gpu = await getGpu();
  const xs: number[] = [0, -0, 1e-30, -1e-30, 1e-6, -1e-6, 0.5, -0.5, 1.414, -1.415, 3, -3, 5, -5, 10, -10];
  for (let v = -50; v <= 50; v += 0.37) xs.push(v);
  xs.push(15, -15, 20, -20, 42.4, -42.4, 50, -50, 1e4, -1e4, 3e38, -3e38);
  const x = new Float32Array(xs);
  const n = x.length;
  const tx = createTensor(gpu, [n], { data: x }), out = createTensor(gpu, [n]);
  poison(out);
  await gelu(gpu, tx, out, { approximate: "none" });
  const y = await readTensor(out);
  const ref = geluRef(x, "none");
  for (let i = 0; i < n; i++) {
    assert.ok(Number.isFinite(y[i]), `exact gelu(${x[i]}) = ${y[i]} is not finite`);
    // Relative where the result is not tiny; in the negative tail f32 exp(-x^2/2) itself is good to a
    // few ulps of its large argument, so a small absolute term as well.
    const tol = 2e-6 * Math.abs(ref[i]) + 1e-7;
    assert.ok(Math.abs(y[i] - ref[i]) <= tol, `exact gelu(${x[i]}) = ${y[i]}, expected ${ref[i]}`);
    if (x[i] >= 10) assert.equal(y[i], x[i], `exact gelu(${x[i]})`);
  }
  assert.ok(Object.is(y[1], -0) || y[1] === 0);
  console.log(`exact gelu max abs error on [-50, 50] grid: ${maxAbsErr(y, ref).toExponential(2)}`);
  tx.destroy();
  out.destroy();
});

Deno.test("gelu rejects an unknown approximate form with ShapeError", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [4], { name: "fc" }), out = createTensor(gpu, [4], { name: "act" });
  await assert.rejects(
    // @ts-expect-error: not a GELU form
    () => gelu(gpu, x, out, { approximate: "sigmoid" }),
    (e: unknown) => e instanceof ShapeError && e.message.includes("approximate"),
  );
  x.destroy();
  out.destroy();
  await gpu.flush();
});

Deno.test("gelu and geluBackward: the vec4 entries (n % 4 == 0) equal the scalar ones bit for bit", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const n = 4 * 1029;
  const x = randn(r, n, 4), dout = randn(r, n), acc = randn(r, n);
  for (const approximate of ["tanh", "none"] as const) {
    // The first n − 1 elements alone (odd length) take the scalar entries.
    const run = async (len: number) => {
      const tx = createTensor(gpu, [len], { data: x.subarray(0, len) });
      const td = createTensor(gpu, [len], { data: dout.subarray(0, len) });
      const out = createTensor(gpu, [len]);
      const dx = createTensor(gpu, [len], { data: acc.subarray(0, len) });
      poison(out);
      await gelu(gpu, tx, out, { approximate });
      await geluBackward(gpu, tx, td, dx, { approximate, accumulate: true });
      const res = [await readTensor(out), await readTensor(dx)];
      for (const t of [tx, td, out, dx]) t.destroy();
      return res;
    };
    const [y4, g4] = await run(n);
    const [y1, g1] = await run(n - 1);
    for (let i = 0; i < n - 1; i++) {
      assert.ok(Object.is(y4[i], y1[i]), `gelu ${approximate} [${i}]: ${y4[i]} vs ${y1[i]} (seed ${seed})`);
      assert.ok(
        Object.is(g4[i], g1[i]),
        `geluBackward ${approximate} [${i}]: ${g4[i]} vs ${g1[i]} (seed ${seed})`,
      );
    }
    assertClose(y4, geluRef(x, approximate), 2e-6, `gelu ${approximate} n=${n}`, seed);
  }
});
