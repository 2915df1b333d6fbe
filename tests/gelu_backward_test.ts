import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { geluBackward } from "../src/gpu/gelu_backward.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { geluRef } from "../src/reference/gelu.ts";
import { geluBackwardRef } from "../src/reference/gelu_backward.ts";
import { assertClose, freshSeed, randn, relErr, rng } from "./_util.ts";

/** Values where gelu' is delicate: 0, the saturated tails, and |x| large enough that x^3 overflows f32. */
const SPECIAL = [0, 1e-20, -1e-20, 3, -3, 8, -8, 20, -20, 1e3, -1e3, 1e13, -1e13, 1e30, -1e30, 3e38, -3e38];

Deno.test("geluBackwardRef matches central finite differences of geluRef (float64)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  // Random values spanning the curved region plus both tails.
  const x = Float64Array.from([...randn(r, 200, 3), 0, 0.5, -0.5, 10, -10, 40, -40, 1e4, -1e4]);
  const dout = Float64Array.from(randn(r, x.length));
  const ref = geluBackwardRef(x, dout);
  // Elementwise function: perturbing x[i] moves only out[i], so one 2-point FD per element of
  // sum(dout * geluRef(x)) suffices. Relative step so large |x| still moves.
  const fd = new Float64Array(x.length);
  const xp = new Float64Array(x), xm = new Float64Array(x);
  for (let i = 0; i < x.length; i++) {
    const h = 1e-5 * Math.max(1, Math.abs(x[i]));
    xp[i] = x[i] + h;
    xm[i] = x[i] - h;
  }
  const yp = geluRef(xp), ym = geluRef(xm);
  for (let i = 0; i < x.length; i++) fd[i] = (dout[i] * (yp[i] - ym[i])) / (xp[i] - xm[i]);
  const e = relErr(ref, fd);
  console.log(`geluBackwardRef vs central FD, relative error ${e.toExponential(2)} (seed ${seed})`);
  assert.ok(e <= 1e-6, `gelu' vs finite differences: relative error ${e.toExponential(3)} (seed ${seed})`);
});

Deno.test("geluBackward matches float64 twin on odd sizes, overwrite and accumulate", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  for (const n of [1, 5, 97, 257, 4 * 769]) {
    const x = randn(r, n, 3);
    x.set(SPECIAL.slice(0, Math.min(n, SPECIAL.length)), 0);
    const dout = randn(r, n);
    const ref = geluBackwardRef(x, dout);
    const tx = createTensor(gpu, [n], { name: "x", data: x });
    const td = createTensor(gpu, [n], { name: "dout", data: dout });
    const dx = createTensor(gpu, [n], { name: "dx" });
    poison(dx);
    await geluBackward(gpu, tx, td, dx);
    const got = await readTensor(dx);
    worst = Math.max(worst, assertClose(got, ref, 1e-5, `dx n=${n}`, seed));
    assert.ok(got.every(Number.isFinite), `non-finite gradient (seed ${seed})`);

    const pre = randn(r, n);
    const dx2 = createTensor(gpu, [n], { name: "dx", data: pre });
    await geluBackward(gpu, tx, td, dx2, { accumulate: true });
    const want = Float64Array.from(ref, (v, i) => v + pre[i]);
    worst = Math.max(worst, assertClose(await readTensor(dx2), want, 1e-5, `dx += n=${n}`, seed));
    for (const t of [tx, td, dx, dx2]) t.destroy();
  }
  console.log(`geluBackward GPU vs float64 twin, worst relative error ${worst.toExponential(2)}`);
});

Deno.test("geluBackward is finite and saturates to 1 / 0 for large |x|", async () => {
  const gpu = await getGpu();
  const x = Float32Array.from(SPECIAL);
  const ones = new Float32Array(x.length).fill(1);
  const tx = createTensor(gpu, [x.length], { name: "x", data: x });
  const td = createTensor(gpu, [x.length], { name: "dout", data: ones });
  const dx = createTensor(gpu, [x.length], { name: "dx" });
  poison(dx);
  await geluBackward(gpu, tx, td, dx);
  const got = await readTensor(dx);
  const ref = geluBackwardRef(x, ones);
  for (let i = 0; i < x.length; i++) {
    assert.ok(Number.isFinite(got[i]), `gelu'(${x[i]}) = ${got[i]}`);
    assert.ok(Math.abs(got[i] - ref[i]) <= 1e-6, `gelu'(${x[i]}) = ${got[i]}, twin ${ref[i]}`);
    if (Math.abs(x[i]) >= 20) assert.equal(got[i], x[i] > 0 ? 1 : 0, `gelu'(${x[i]})`);
  }
  for (const t of [tx, td, dx]) t.destroy();
});

Deno.test("geluBackward size mismatches and aliasing throw ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const x = createTensor(gpu, [2, 4], { name: "mlp.pre" });
  const d = createTensor(gpu, [8], { name: "mlp.dout" });
  const dx = createTensor(gpu, [8], { name: "mlp.dpre" });
  const bad = createTensor(gpu, [7], { name: "short.grad" });
  const names = (s: string) => (e: unknown) => e instanceof ShapeError && e.message.includes(s);
  await assert.rejects(() => geluBackward(gpu, x, d, bad), names("short.grad"));
  await assert.rejects(() => geluBackward(gpu, x, bad, dx), names("short.grad"));
  await assert.rejects(() => geluBackward(gpu, x, d, d), names("mlp.dout"));
  await assert.rejects(() => geluBackward(gpu, x, d, x), names("mlp.pre"));
  for (const t of [x, d, dx, bad]) t.destroy();
  await gpu.flush();
});

Deno.test("geluBackwardRef approximate none matches central finite differences of exact geluRef", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const x = Float64Array.from([
    ...randn(r, 200, 3),
    0,
    0.5,
    -0.5,
    1.414,
    -1.415,
    10,
    -10,
    40,
    -40,
    1e4,
    -1e4,
  ]);
  const dout = Float64Array.from(randn(r, x.length));
  const ref = geluBackwardRef(x, dout, "none");
  const xp = Float64Array.from(x, (v) => v + 1e-5 * Math.max(1, Math.abs(v)));
  const xm = Float64Array.from(x, (v) => v - 1e-5 * Math.max(1, Math.abs(v)));
  const yp = geluRef(xp, "none"), ym = geluRef(xm, "none");
  const fd = Float64Array.from(x, (_, i) => (dout[i] * (yp[i] - ym[i])) / (xp[i] - xm[i]));
  const e = relErr(ref, fd);
  console.log(`exact geluBackwardRef vs central FD, relative error ${e.toExponential(2)} (seed ${seed})`);
  assert.ok(
    e <= 1e-6,
    `exact gelu' vs finite differences: relative error ${e.toExponential(3)} (seed ${seed})`,
  );
});

Deno.test("geluBackward approximate none matches float64 twin, overwrite and accumulate, saturates", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  let worst = 0;
  for (const n of [1, 5, 97, 257, 4 * 769]) {
    const x = randn(r, n, 3);
    x.set(SPECIAL.slice(0, Math.min(n, SPECIAL.length)), 0);
    const dout = randn(r, n);
    const ref = geluBackwardRef(x, dout, "none");
    const tx = createTensor(gpu, [n], { name: "x", data: x });
    const td = createTensor(gpu, [n], { name: "dout", data: dout });
    const dx = createTensor(gpu, [n], { name: "dx" });
    poison(dx);
    await geluBackward(gpu, tx, td, dx, { approximate: "none" });
    const got = await readTensor(dx);
    worst = Math.max(worst, assertClose(got, ref, 1e-5, `exact dx n=${n}`, seed));
    assert.ok(got.every(Number.isFinite), `non-finite gradient (seed ${seed})`);
    if (n >= 97) {
      const e = relErr(got, geluBackwardRef(x, dout, "tanh"));
      assert.ok(e > 1e-5, `exact gelu' equals the tanh form's (seed ${seed})`);
    }
    const pre = randn(r, n);
    const dx2 = createTensor(gpu, [n], { name: "dx", data: pre });
    await geluBackward(gpu, tx, td, dx2, { accumulate: true, approximate: "none" });
    const want = Float64Array.from(ref, (v, i) => v + pre[i]);
    worst = Math.max(worst, assertClose(await readTensor(dx2), want, 1e-5, `exact dx += n=${n}`, seed));
    for (const t of [tx, td, dx, dx2]) t.destroy();
  }
  // Elementwise on a grid and the special values, dout = 1: gelu' itself.
  const xs = [...SPECIAL];
  for (let v = -12; v <= 12; v += 0.173) xs.push(v);
  const x = Float32Array.from(xs), ones = new Float32Array(x.length).fill(1);
  const tx = createTensor(gpu, [x.length], { name: "x", data: x });
  const td = createTensor(gpu, [x.length], { name: "dout", data: ones });
  const dx = createTensor(gpu, [x.length], { name: "dx" });
  poison(dx);
  await geluBackward(gpu, tx, td, dx, { approximate: "none" });
  const got = await readTensor(dx);
  const ref = geluBackwardRef(x, ones, "none");
  let worstAbs = 0;
  for (let i = 0; i < x.length; i++) {
    assert.ok(Number.isFinite(got[i]), `exact gelu'(${x[i]}) = ${got[i]}`);
    assert.ok(Math.abs(got[i] - ref[i]) <= 1e-6, `exact gelu'(${x[i]}) = ${got[i]}, twin ${ref[i]}`);
    worstAbs = Math.max(worstAbs, Math.abs(got[i] - ref[i]));
    if (Math.abs(x[i]) >= 20) assert.equal(got[i], x[i] > 0 ? 1 : 0, `exact gelu'(${x[i]})`);
  }
  for (const t of [tx, td, dx]) t.destroy();
  console.log(
    `exact geluBackward GPU vs float64 twin: worst relative error ${
      worst.toExponential(2)
    }, max abs error of gelu' ${worstAbs.toExponential(2)} on [-12, 12] and specials`,
  );
});
