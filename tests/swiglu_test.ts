import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { swiglu, swigluBackward } from "../src/gpu/swiglu.ts";
import { createTensor, poison, readTensor } from "../src/gpu/tensor.ts";
import { swigluBackwardRef, swigluRef } from "../src/reference/swiglu.ts";
import { assertClose, freshSeed, randn, relErr, rng } from "./_util.ts";

/** Gate values where silu is delicate: 0, the tails, where exp(-|g|) underflows, and huge |g|. */
const SPECIAL = [
  0,
  -0,
  1e-20,
  -1e-20,
  5,
  -5,
  20,
  -20,
  90,
  -90,
  110,
  -110,
  1e4,
  -1e4,
  1e30,
  -1e30,
  3e38,
  -3e38,
];

Deno.test("swigluBackwardRef matches central finite differences of swigluRef (float64)", () => {
  const seed = freshSeed();
  const r = rng(seed);
  const gate = Float64Array.from([...randn(r, 150, 4), 0, 0.5, -0.5, 12, -12, 40, -40]);
  const up = Float64Array.from(randn(r, gate.length, 2));
  const dout = Float64Array.from(randn(r, gate.length));
  const ref = swigluBackwardRef(gate, up, dout);
  // Elementwise: perturbing gate[i] or up[i] moves only out[i]. Relative step so large |g| still moves.
  const fd = (p: Float64Array) => {
    const g = new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) {
      const v = p[i], h = 1e-5 * Math.max(1, Math.abs(v));
      p[i] = v + h;
      const yp = swigluRef(gate, up)[i];
      p[i] = v - h;
      const ym = swigluRef(gate, up)[i];
      p[i] = v;
      g[i] = dout[i] * (yp - ym) / (2 * h);
    }
    return g;
  };
  const eg = relErr(ref.dgate, fd(gate)), eu = relErr(ref.dup, fd(up));
  console.log(`swigluBackwardRef vs central FD: dgate ${eg.toExponential(2)}, dup ${eu.toExponential(2)}`);
  assert.ok(eg <= 1e-6 && eu <= 1e-6, `FD mismatch dgate ${eg} dup ${eu} (seed ${seed})`);
});

Deno.test("swiglu and swigluBackward match float64 twin on odd sizes, overwrite and accumulate", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { out: 0, dgate: 0, dup: 0 };
  for (const n of [1, 7, 255, 257, 1000, 4099]) {
    const gate = randn(r, n, 3), up = randn(r, n, 2), dout = randn(r, n);
    const ref = swigluRef(gate, up), bref = swigluBackwardRef(gate, up, dout);
    const tg = createTensor(gpu, [n], { name: "gate", data: gate });
    const tu = createTensor(gpu, [n], { name: "up", data: up });
    const td = createTensor(gpu, [n], { name: "dout", data: dout });
    const out = createTensor(gpu, [n], { name: "out" });
    const dg = createTensor(gpu, [n], { name: "dgate" }), du = createTensor(gpu, [n], { name: "dup" });
    for (const t of [out, dg, du]) poison(t);
    await swiglu(gpu, tg, tu, out);
    await swigluBackward(gpu, tg, tu, td, dg, du);
    worst.out = Math.max(worst.out, assertClose(await readTensor(out), ref, 2e-6, `out n=${n}`, seed));
    // dgate = dout·up·silu'(g), and silu' has a zero (g ≈ -1.28) where its two terms cancel: measured
    // against the size of dout·up, not of dgate itself (a single element near the zero has no scale).
    const gotG = await readTensor(dg);
    let errG = 0, scaleG = 0;
    for (let i = 0; i < n; i++) {
      errG = Math.max(errG, Math.abs(gotG[i] - bref.dgate[i]));
      scaleG = Math.max(scaleG, Math.abs(dout[i] * up[i]));
    }
    assert.ok(errG / scaleG <= 2e-6, `dgate n=${n}: error ${errG / scaleG} of |dout·up| (seed ${seed})`);
    worst.dgate = Math.max(worst.dgate, errG / scaleG);
    worst.dup = Math.max(worst.dup, assertClose(await readTensor(du), bref.dup, 2e-6, `dup n=${n}`, seed));

    const pg = randn(r, n), pu = randn(r, n);
    const ag = createTensor(gpu, [n], { name: "dgate", data: pg }),
      au = createTensor(gpu, [n], { name: "dup", data: pu });
    await swigluBackward(gpu, tg, tu, td, ag, au, { accumulate: true });
    const plus = (a: ArrayLike<number>, d: ArrayLike<number>) => Float64Array.from(d, (v, i) => v + a[i]);
    worst.dgate = Math.max(
      worst.dgate,
      assertClose(await readTensor(ag), plus(pg, bref.dgate), 2e-6, `dgate += n=${n}`, seed),
    );
    worst.dup = Math.max(
      worst.dup,
      assertClose(await readTensor(au), plus(pu, bref.dup), 2e-6, `dup += n=${n}`, seed),
    );
    for (const t of [tg, tu, td, out, dg, du, ag, au]) t.destroy();
  }
  console.log(
    `swiglu GPU vs float64 twin, worst relative error: out ${worst.out.toExponential(2)}, dgate ${
      worst.dgate.toExponential(2)
    }, dup ${worst.dup.toExponential(2)}`,
  );
});

Deno.test("swiglu is finite and accurate elementwise for large |gate| and near zero", async () => {
  const gpu = await getGpu();
  const gs = [...SPECIAL];
  for (let v = -60; v <= 60; v += 0.37) gs.push(v);
  const gate = Float32Array.from(gs), n = gate.length;
  const up = Float32Array.from({ length: n }, (_, i) => (i % 3) - 1.25);
  const ones = new Float32Array(n).fill(1);
  const tg = createTensor(gpu, [n], { data: gate }), tu = createTensor(gpu, [n], { data: up });
  const td = createTensor(gpu, [n], { data: ones });
  const out = createTensor(gpu, [n]), dg = createTensor(gpu, [n]), du = createTensor(gpu, [n]);
  for (const t of [out, dg, du]) poison(t);
  await swiglu(gpu, tg, tu, out);
  await swigluBackward(gpu, tg, tu, td, dg, du);
  const ref = swigluRef(gate, up), bref = swigluBackwardRef(gate, up, ones);
  const got = { out: await readTensor(out), dgate: await readTensor(dg), dup: await readTensor(du) };
  for (const k of ["out", "dgate", "dup"] as const) {
    const want = k === "out" ? ref : bref[k];
    for (let i = 0; i < n; i++) {
      assert.ok(Number.isFinite(got[k][i]), `${k}(${gate[i]}) = ${got[k][i]} is not finite`);
      // Relative where the value is not tiny, absolute below (f32 underflow of silu's negative tail).
      const tol = 2e-6 * Math.max(Math.abs(want[i]), 1e-6) + 1e-30;
      assert.ok(
        Math.abs(got[k][i] - want[i]) <= tol,
        `${k}(gate ${gate[i]}) = ${got[k][i]}, twin ${want[i]}`,
      );
    }
  }
  for (const t of [tg, tu, td, out, dg, du]) t.destroy();
});

Deno.test("swiglu and swigluBackward size mismatches and aliasing throw ShapeError naming the tensor", async () => {
  const gpu = await getGpu();
  const g = createTensor(gpu, [2, 4], { name: "mlp.gate" }), u = createTensor(gpu, [8], { name: "mlp.up" });
  const d = createTensor(gpu, [8], { name: "mlp.dout" }), o = createTensor(gpu, [8], { name: "mlp.act" });
  const dg = createTensor(gpu, [8], { name: "mlp.dgate" }), du = createTensor(gpu, [8], { name: "mlp.dup" });
  const bad = createTensor(gpu, [7], { name: "short.t" });
  const names = (s: string) => (e: unknown) => e instanceof ShapeError && e.message.includes(s);
  await assert.rejects(() => swiglu(gpu, g, bad, o), names("short.t"));
  await assert.rejects(() => swiglu(gpu, g, u, bad), names("short.t"));
  await assert.rejects(() => swiglu(gpu, g, u, u), names("mlp.up"));
  await assert.rejects(() => swigluBackward(gpu, g, u, bad, dg, du), names("short.t"));
  await assert.rejects(() => swigluBackward(gpu, g, u, d, d, du), names("mlp.dout"));
  await assert.rejects(() => swigluBackward(gpu, g, u, d, dg, dg), names("mlp.dgate"));
  await assert.rejects(() => swigluBackward(gpu, g, u, d, dg, g), names("mlp.gate"));
  for (const t of [g, u, d, o, dg, du, bad]) t.destroy();
  await gpu.flush();
});
