import assert from "node:assert/strict";
import { InputError, ShapeError } from "../src/errors.ts";
import { adamw, type AdamWOptions } from "../src/gpu/adamw.ts";
import { getGpu } from "../src/gpu/device.ts";
import { createTensor, readTensor } from "../src/gpu/tensor.ts";
import { adamwRef } from "../src/reference/adamw.ts";
import { assertClose, freshSeed, maxAbsErr, randn, rng } from "./_util.ts";

Deno.test("adamw matches the float64 twin over several steps on odd sizes", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const worst = { param: 0, delta: 0, m: 0, v: 0 };
  const cases: Array<[number, Omit<AdamWOptions, "step">]> = [
    [1, { lr: 0.05 }],
    [7, { lr: 0.05, weightDecay: 0.1 }],
    [1000, { lr: 0.02, weightDecay: 0.01, beta1: 0.8, beta2: 0.95, eps: 1e-6 }],
    [65537, { lr: 0.05, weightDecay: 0.1, gradScale: 0.37 }],
  ];
  for (const [n, hyper] of cases) {
    const p0 = randn(r, n, 2);
    const tp = createTensor(gpu, [n], { name: "param", data: p0 });
    const tg = createTensor(gpu, [n], { name: "grad" });
    const tm = createTensor(gpu, [n], { name: "m", data: new Float32Array(n) });
    const tv = createTensor(gpu, [n], { name: "v", data: new Float32Array(n) });
    const rp = Float64Array.from(p0), rm = new Float64Array(n), rv = new Float64Array(n);
    for (let step = 1; step <= 5; step++) {
      // Gradients of varied scale per element and step; a few exact zeros.
      const g = randn(r, n, 10 ** (r() * 4 - 3));
      if (n > 7) { for (let i = 0; i < n; i += 97) g[i] = 0; }
      const tgd = createTensor(gpu, [n], { name: "grad", data: g });
      await adamw(gpu, tp, tgd, tm, tv, { ...hyper, step });
      tgd.destroy();
      adamwRef(rp, g, rm, rv, { ...hyper, step });
    }
    const what = `n=${n} ${JSON.stringify(hyper)}`;
    const gp = await readTensor(tp);
    worst.param = Math.max(worst.param, assertClose(gp, rp, 1e-6, `param ${what}`, seed));
    // The update itself (param - param0), where a wrong step size could hide under |param|.
    const dg = gp.map((x, i) => x - p0[i]);
    const dr = rp.map((x, i) => x - p0[i]);
    // Relative to the largest update, at least lr (f32 rounding of param is ~5e-7 absolute).
    const ed = maxAbsErr(dg, dr) / Math.max(hyper.lr, ...Array.from(dr, Math.abs));
    assert.ok(ed <= 1e-4, `update ${what}: relative error ${ed} (seed ${seed})`);
    worst.delta = Math.max(worst.delta, ed);
    // m sums gradients of both signs whose scales differ by up to 1e4 between steps: in float32 the
    // cancellation can cost a few ulps of the result (seen: 1.6e-6 for n = 1), so 1e-5 here.
    worst.m = Math.max(worst.m, assertClose(await readTensor(tm), rm, 1e-5, `m ${what}`, seed));
    worst.v = Math.max(worst.v, assertClose(await readTensor(tv), rv, 1e-6, `v ${what}`, seed));
    for (const t of [tp, tg, tm, tv]) t.destroy();
  }
  console.log(
    `adamw after 5 steps, worst relative error: param ${worst.param.toExponential(2)}, update ${
      worst.delta.toExponential(2)
    }, m ${worst.m.toExponential(2)}, v ${worst.v.toExponential(2)}`,
  );
});

Deno.test("adamw first step moves each parameter by lr against the gradient's sign", async () => {
  const gpu = await getGpu();
  const seed = freshSeed();
  const r = rng(seed);
  const n = 1001, lr = 1e-3;
  for (const [wd, gradScale] of [[0, 1], [0.1, 4]]) {
    const p0 = randn(r, n, 2);
    const g = randn(r, n, 0.5);
    for (let i = 0; i < n; i++) if (Math.abs(g[i]) < 1e-3) g[i] = 1e-3; // keep eps negligible
    const tp = createTensor(gpu, [n], { name: "param", data: p0 });
    const tg = createTensor(gpu, [n], { name: "grad", data: g });
    const tm = createTensor(gpu, [n], { name: "m", data: new Float32Array(n) });
    const tv = createTensor(gpu, [n], { name: "v", data: new Float32Array(n) });
    await adamw(gpu, tp, tg, tm, tv, { lr, weightDecay: wd, step: 1, gradScale });
    // Step 1: mhat = g, vhat = g^2, so mhat / (sqrt(vhat) + eps) = sign(g) up to eps / |g| <= 1e-5.
    const expect = Array.from(p0, (p, i) => p * (1 - lr * wd) - lr * Math.sign(g[i]));
    // Error per element relative to max(1, |param|): two f32 roundings are <= 1.2e-7 of |param|.
    const got = await readTensor(tp);
    let e = 0;
    for (let i = 0; i < n; i++) e = Math.max(e, Math.abs(got[i] - expect[i]) / Math.max(1, Math.abs(p0[i])));
    assert.ok(e <= 3e-7, `first step wd=${wd}: error ${e} vs param - lr*sign(g) (seed ${seed})`);
    // m = (1 - beta1) g, v = (1 - beta2) g^2 with the scaled gradient.
    assertClose(
      await readTensor(tm),
      Array.from(g, (x) => 0.1 * gradScale * x),
      1e-6,
      "m after step 1",
      seed,
    );
    assertClose(
      await readTensor(tv),
      Array.from(g, (x) => 0.001 * (gradScale * x) ** 2),
      1e-6,
      "v after 1",
      seed,
    );
    for (const t of [tp, tg, tm, tv]) t.destroy();
    console.log(
      `first step wd=${wd}: error vs param - lr*sign(g), relative to max(1,|param|): ${e.toExponential(2)}`,
    );
  }
});

Deno.test("adamw rejects mismatched tensors and bad hyperparameters", async () => {
  const gpu = await getGpu();
  const p = createTensor(gpu, [3, 5], { name: "h.0.attn.c_attn.weight" });
  const g = createTensor(gpu, [15], { name: "grad" });
  const m = createTensor(gpu, [15], { name: "m" });
  const v = createTensor(gpu, [14], { name: "v_short" });
  const v2 = createTensor(gpu, [15], { name: "v" });
  const names = (s: string) => (e: unknown) => e instanceof ShapeError && e.message.includes(s);
  await assert.rejects(() => adamw(gpu, p, g, m, v, { lr: 1e-3, step: 1 }), names("v_short"));
  await assert.rejects(() => adamw(gpu, p, g, m, m, { lr: 1e-3, step: 1 }), names("m"));
  await assert.rejects(() => adamw(gpu, p, p, m, v2, { lr: 1e-3, step: 1 }), names("grad"));
  const field = (f: string) => (e: unknown) => e instanceof InputError && e.field === f;
  await assert.rejects(() => adamw(gpu, p, g, m, v2, { lr: 1e-3, step: 0 }), field("step"));
  await assert.rejects(() => adamw(gpu, p, g, m, v2, { lr: 1e-3, step: 1, beta2: 1 }), field("beta2"));
  await assert.rejects(() => adamw(gpu, p, g, m, v2, { lr: NaN, step: 1 }), field("lr"));
  for (const t of [p, g, m, v, v2]) t.destroy();
  await gpu.flush();
});
